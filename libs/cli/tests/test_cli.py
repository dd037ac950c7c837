"""The `hookbay` command against real processes: `hookbay up` on free ports with a temporary data
directory, the CLI run as a subprocess the way people run it, packets posted over real HTTP."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CLI = [sys.executable, "-m", "hookbay_cli.main"]
START_TIMEOUT = 90.0  # generous: the services import a lot, and CI machines are busy
UNREACHABLE = "cannot reach the admin API"
STATUSES = ("received", "parsed", "failed", "ignored")

SOURCE_KEYS = {"id", "name", "guid", "url", "status", "client", "format", "max_body", "settings"}
PACKET_KEYS = {
    "id",
    "source",
    "status",
    "content_type",
    "size",
    "sha256",
    "received_at",
    "error",
    "attempts",
    "method",
    "client_addr",
    "archived",
}


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free ports: all held open at once, so the kernel cannot hand out one twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBAY_")}
    env.update(HOOKBAY_LOG_FORMAT="json", **extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, timeout=timeout)


def child_pids(parent: int) -> list[int]:
    """Direct children of ``parent``, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            pids.append(int(entry.name))
    return pids


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_one_error_line(result: subprocess.CompletedProcess[bytes], *fragments: str) -> str:
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("hookbay: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr
    return lines[0]


class Up:
    """One `hookbay up` process on free ports, its output in files under ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.http_port, self.admin_port, self.parser_port, self.actions_port = free_ports(4)
        self.stdout_path = tmp / "up.out"
        self.stderr_path = tmp / "up.err"
        self.env = base_env(HOOKBAY_ADMIN_ADDR=f"127.0.0.1:{self.admin_port}")
        self._stdout = open(self.stdout_path, "wb")  # noqa: SIM115 - closed in stop()
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                *CLI,
                "up",
                "--data-dir",
                str(self.data_dir),
                "--http-port",
                str(self.http_port),
                "--admin-port",
                str(self.admin_port),
                "--parser-port",
                str(self.parser_port),
                "--actions-port",
                str(self.actions_port),
            ],
            env=self.env,
            stdout=self._stdout,
            stderr=self._stderr,
            cwd=tmp,
        )
        self.http = httpx.Client(timeout=15)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Until `up` prints its banner; fail at once if it exits first."""
        deadline = time.monotonic() + START_TIMEOUT
        while "Hookbay is up." not in self.stdout_path.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"`hookbay up` exited with {self.proc.returncode}:\n{self.output()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"`hookbay up` not ready after {START_TIMEOUT}s:\n{self.output()[-4000:]}"
                )
            time.sleep(0.1)
        assert self.http.get(f"{self.base_url}/readyz").status_code == 200

    def cli(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return run_cli(*args, env=self.env, stdin=stdin)

    def ok(self, *args: str, stdin: bytes | None = None) -> str:
        result = self.cli(*args, stdin=stdin)
        assert result.returncode == 0, (args, result.stderr.decode())
        return result.stdout.decode()

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def terminate(self, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in child_pids(self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(10)
            raise

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.terminate()
        self.http.close()
        self._stdout.close()
        self._stderr.close()


@contextlib.contextmanager
def running_up(tmp: Path) -> Iterator[Up]:
    up = Up(tmp)
    try:
        up.wait_ready()
        yield up
    finally:
        up.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    with running_up(tmp_path_factory.mktemp("up")) as up:
        yield up


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- sources ---------------------------------------------------------------------------------------


def test_up_keeps_its_data_in_the_data_dir(stack: Up) -> None:
    assert (stack.data_dir / "hookbay.db").is_file()
    banner = stack.stdout_path.read_text()
    assert stack.base_url in banner
    assert f"127.0.0.1:{stack.admin_port}" in banner
    assert "hookbay sources create --name" in banner


def test_sources_create_list_show_pause_resume_rotate(stack: Up) -> None:
    name = unique("shop")
    created = stack.json("sources", "create", "--name", name, "--client", "acme", "--max-body", "4096")
    assert isinstance(created, dict)
    assert created.keys() >= SOURCE_KEYS
    assert created["name"] == name
    assert created["client"] == "acme"
    assert created["format"] == "auto"
    assert created["max_body"] == 4096
    assert created["status"] == "active"
    assert created["settings"] == {}
    assert created["url"] == f"{stack.base_url}/V1/Data/{created['guid']}"
    uuid.UUID(created["id"])

    listed = stack.json("sources", "list")
    assert isinstance(listed, list)
    assert all(s.keys() >= SOURCE_KEYS for s in listed)
    assert created in [{k: s[k] for k in created} for s in listed]

    shown = stack.json("sources", "show", name)
    assert shown == created
    assert name in stack.ok("sources", "list")  # the table for people
    assert "url:" in stack.ok("sources", "show", name)

    assert stack.ok("sources", "pause", name).strip() == f"paused {name}"
    assert stack.json("sources", "show", name)["status"] == "paused"
    assert stack.http.post(created["url"], content=b"{}").status_code == 404
    assert stack.ok("sources", "resume", name).strip() == f"resumed {name}"
    assert stack.json("sources", "show", name)["status"] == "active"
    assert stack.http.post(created["url"], content=b"{}").status_code == 200

    new_url = stack.ok("sources", "rotate", name).strip()
    assert new_url != created["url"]
    rotated = stack.json("sources", "show", name)
    assert rotated["url"] == new_url
    assert rotated["guid"] != created["guid"]
    assert rotated["id"] == created["id"]
    assert stack.http.post(created["url"], content=b"{}").status_code == 404
    assert stack.http.post(new_url, content=b"{}").status_code == 200


def test_creating_a_duplicate_source_is_one_line(stack: Up) -> None:
    name = unique("dup")
    stack.ok("sources", "create", "--name", name)
    result = stack.cli("sources", "create", "--name", name)
    assert result.returncode == 1
    assert_one_error_line(result, "already exists")


def test_unknown_source_is_one_line(stack: Up) -> None:
    result = stack.cli("sources", "show", "no-such-source")
    assert result.returncode == 1
    assert_one_error_line(result, "no source with name 'no-such-source'")


# -- packets ---------------------------------------------------------------------------------------


def test_raw_bytes_are_byte_identical(stack: Up) -> None:
    name = unique("bytes")
    source = stack.json("sources", "create", "--name", name)
    body = b"\xff\xfe\x00caf\xe9 \x80\x81\r\n" + bytes(range(256)) + "Señor".encode("windows-1252")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    response = stack.http.post(
        source["url"] + "?topic=raw&x=1", content=body, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 200, response.text
    packet_id = response.json()["id"]

    raw = stack.cli("packets", "raw", packet_id)
    assert raw.returncode == 0, raw.stderr.decode()
    assert sha(raw.stdout) == sha(body)
    assert raw.stdout == body

    shown = stack.json("packets", "show", packet_id)
    assert isinstance(shown, dict)
    assert PACKET_KEYS | {"headers", "query_string"} <= shown.keys()
    assert shown["id"] == packet_id
    assert shown["sha256"] == sha(body)
    assert shown["size"] == len(body)
    assert shown["source"] == name
    # "received" while the parser answers UNIMPLEMENTED; a real parser moves it on.
    assert shown["status"] in STATUSES
    assert shown["method"] == "POST"
    assert shown["content_type"] == "application/octet-stream"
    assert shown["query_string"] == "topic=raw&x=1"
    assert ["content-type", "application/octet-stream"] in shown["headers"]
    assert shown["received_at"].endswith("Z")
    assert isinstance(shown["archived"], bool)
    assert isinstance(shown["attempts"], int)

    listed = stack.json("packets", "list", "--source", name)
    assert isinstance(listed, list)
    assert [p["id"] for p in listed] == [packet_id]
    assert listed[0].keys() >= PACKET_KEYS
    assert listed[0]["sha256"] == sha(body)
    for status in STATUSES:
        filtered = stack.json("packets", "list", "--source", name, "--status", status)
        assert all(p["status"] == status for p in filtered)
    assert packet_id in stack.ok("packets", "list", "--source", name)
    assert sha(body) in stack.ok("packets", "show", packet_id)


def test_packets_list_limit_pages(stack: Up) -> None:
    name = unique("many")
    source = stack.json("sources", "create", "--name", name)
    for i in range(3):
        assert stack.http.post(source["url"], content=b'{"n": %d}' % i).status_code == 200
    assert len(stack.json("packets", "list", "--source", name, "--limit", "2")) == 2
    assert len(stack.json("packets", "list", "--source", name)) == 3


def test_unknown_packet_id_is_one_line(stack: Up) -> None:
    missing = str(uuid.uuid4())
    for args in (("packets", "show", missing), ("packets", "raw", missing)):
        result = stack.cli(*args)
        assert result.returncode == 1
        assert result.stdout == b""
        assert_one_error_line(result, f"no packet with id {missing}")
    result = stack.cli("packets", "show", "not-an-id")
    assert result.returncode == 1
    assert_one_error_line(result, "not a packet id")


def test_records_and_action_runs_are_lists(stack: Up) -> None:
    name = unique("rec")
    stack.ok("sources", "create", "--name", name)
    # Nothing is parsed yet (the parser answers UNIMPLEMENTED), so these are empty lists for now.
    assert stack.json("records", "list", "--source", name) == []
    assert stack.json("actions", "runs", "--source", name) == []
    assert isinstance(stack.json("records", "list"), list)
    assert stack.ok("actions", "runs", "--source", name).strip() == "no action runs"


# -- apply -----------------------------------------------------------------------------------------


def test_apply_is_idempotent(stack: Up, tmp_path: Path) -> None:
    first, second = unique("apply"), unique("apply")
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"""
sources:
  - name: {first}
    client: acme
    format: json
    max_body: 2048
    settings:
      retries: 3
      tags: [a, b]
  - name: {second}
    status: paused
"""
    )
    out = stack.ok("apply", "-f", str(path)).splitlines()
    assert len(out) == 2
    assert out[0].split()[:2] == ["created", first]
    assert out[1].split()[:2] == ["created", second]

    shown = stack.json("sources", "show", first)
    assert (shown["client"], shown["format"], shown["max_body"]) == ("acme", "json", 2048)
    assert shown["settings"] == {"retries": 3, "tags": ["a", "b"]}
    assert stack.json("sources", "show", second)["status"] == "paused"

    again = stack.ok("apply", "-f", str(path)).splitlines()
    assert [line.split()[:2] for line in again] == [["unchanged", first], ["unchanged", second]]

    path.write_text(
        f"sources:\n  - name: {first}\n    max_body: 4096\n  - name: {second}\n    status: active\n"
    )
    changed = stack.ok("apply", "-f", str(path)).splitlines()
    assert [line.split()[:2] for line in changed] == [["updated", first], ["updated", second]]
    assert "max_body" in changed[0]
    shown = stack.json("sources", "show", first)
    assert shown["max_body"] == 4096
    assert shown["client"] == "acme"  # keys left out keep their values
    assert stack.json("sources", "show", second)["status"] == "active"

    from_stdin = stack.ok("apply", "-f", "-", stdin=path.read_bytes()).splitlines()
    assert [line.split()[:2] for line in from_stdin] == [["unchanged", first], ["unchanged", second]]


def test_apply_names_a_misspelt_key(stack: Up, tmp_path: Path) -> None:
    name = unique("typo")
    path = tmp_path / "sources.yaml"
    path.write_text(f"sources:\n  - name: {name}-ok\n  - name: {name}\n    formt: json\n")
    result = stack.cli("apply", "-f", str(path))
    assert result.returncode != 0
    line = assert_one_error_line(result, "sources[1].formt", "unknown key", "sources.yaml")
    assert "'format'" in line  # did you mean
    # Validation happens before anything is sent: the first, valid source was not created either.
    assert stack.cli("sources", "show", f"{name}-ok").returncode == 1


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("sources:\n  - name: a\n    max_body: 1MB\n", ["sources[0].max_body", "must be a whole number"]),
        ("sources:\n  - client: x\n", ["sources[0].name", "required"]),
        ("sources:\n  - name: a\n    status: stopped\n", ["sources[0].status", "'active' or 'paused'"]),
        ("sources:\n  - name: a\n   bad: [\n", ["invalid YAML", "line 3"]),
        ("- name: a\n", ["top level"]),
        ("", ["empty"]),
        ("sources:\n  - name: a\n  - name: a\n", ["sources[1].name", "already used"]),
        ("sources:\n  - name: a\n    settings: {n: 9007199254740993}\n", ["sources[0].settings.n", "2**53"]),
        ("sources:\n  - name: a\n    name: b\n", ["duplicate key 'name'"]),
    ],
)
def test_apply_file_mistakes_are_one_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    # No server needed: the file is checked before the first call.
    result = run_cli("apply", "-f", str(path), env=base_env(HOOKBAY_ADMIN_ADDR=f"127.0.0.1:{free_port()}"))
    assert result.returncode == 1
    assert_one_error_line(result, *fragments)


def test_apply_missing_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli("apply", "-f", str(tmp_path / "nope.yaml"), env=base_env())
    assert result.returncode == 1
    assert_one_error_line(result, "nope.yaml", "no such file")


# -- failures without a server ---------------------------------------------------------------------


def test_unreachable_admin_api_is_one_line() -> None:
    addr = f"127.0.0.1:{free_port()}"
    for args in (["sources", "list"], ["packets", "list", "--json"], ["packets", "raw", str(uuid.uuid4())]):
        result = run_cli(*args, env=base_env(HOOKBAY_ADMIN_ADDR=addr))
        assert result.returncode == 1
        line = assert_one_error_line(result, UNREACHABLE, addr, "hookbay up")
        assert line == f"hookbay: {UNREACHABLE} at {addr} — is `hookbay up` running?"


def test_usage_errors_exit_2_with_one_line() -> None:
    for args in (["sources", "create"], ["packets", "list", "--status", "weird"], ["nonsense"]):
        result = run_cli(*args, env=base_env())
        assert result.returncode == 2
        assert_one_error_line(result)


def test_up_with_its_http_port_taken_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        admin, parser, actions = free_ports(3)
        result = run_cli(
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--http-port",
            str(port),
            "--admin-port",
            str(admin),
            "--parser-port",
            str(parser),
            "--actions-port",
            str(actions),
            env=base_env(),
        )
    assert result.returncode != 0
    assert_one_error_line(result, f"port {port} is already in use (HTTP)", "--http-port")


# -- stopping --------------------------------------------------------------------------------------


def service_children(parent: int) -> dict[str, int]:
    """``{"hookbay_parser": pid, ...}`` for the services `up` runs as ``python -m <module>``."""
    found = {}
    for pid in child_pids(parent):
        with contextlib.suppress(OSError, IndexError):
            found[Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2].decode()] = pid
    return found


def test_a_dead_child_is_restarted_and_sigterm_stops_everything(tmp_path: Path) -> None:
    up = Up(tmp_path)
    try:
        up.wait_ready()
        first = service_children(up.proc.pid)
        assert sorted(first) == ["hookbay_actions", "hookbay_parser", "hookbay_receiver"]

        os.kill(first["hookbay_parser"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while service_children(up.proc.pid).get("hookbay_parser") in (None, first["hookbay_parser"]):
            assert up.proc.poll() is None, up.output()[-4000:]
            assert time.monotonic() < deadline, "the parser was not restarted"
            time.sleep(0.1)
        assert (
            "the parser exited unexpectedly (killed by SIGKILL); restarting in 1s"
            in up.stderr_path.read_text()
        )
        now = service_children(up.proc.pid)
        assert now["hookbay_receiver"] == first["hookbay_receiver"]
        assert now["hookbay_actions"] == first["hookbay_actions"]

        assert up.terminate() == 0, up.output()[-4000:]
        assert [pid for pid in now.values() if pid_exists(pid)] == []
        assert "Traceback" not in up.stderr_path.read_text()
    finally:
        up.stop()
