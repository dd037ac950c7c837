"""Generate the Python code for proto/ into libs/common/src (the one place generated code lives).

uv run python libs/common/scripts/generate_protos.py          # regenerate
uv run python libs/common/scripts/generate_protos.py --check  # exit 1 if the committed code drifted
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "common" / "src"
PACKAGE = "hookbay"


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Regular packages, so the generated absolute imports (`from hookbay.types.v1 import ...`) resolve
    # the same way in editable installs, wheels and images.
    for directory in [out / PACKAGE, *(p for p in (out / PACKAGE).rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()


def tree(path: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(path)): p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if the committed code differs from proto/")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        current = OUT_DIR / PACKAGE
        if check:
            want, have = tree(fresh / PACKAGE), tree(current) if current.exists() else {}
            drift = sorted(
                name
                for name in want.keys() | have.keys()
                if name not in want
                or name not in have
                or not filecmp.cmp(want[name], have[name], shallow=False)
            )
            if drift:
                print("generated code is out of date with proto/: " + ", ".join(drift), file=sys.stderr)
                print("run: uv run python libs/common/scripts/generate_protos.py", file=sys.stderr)
                return 1
            print("generated code matches proto/")
            return 0
        shutil.rmtree(current, ignore_errors=True)
        shutil.copytree(fresh / PACKAGE, current)
    print(f"generated {current.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
