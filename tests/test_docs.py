"""The README stays true: every setting a process reads is documented there."""

from __future__ import annotations

from pathlib import Path

from hookbay_common.settings import ActionsSettings, CliSettings, ParserSettings, ReceiverSettings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    names = {
        f"HOOKBAY_{field.upper()}"
        for cls in (ReceiverSettings, ParserSettings, ActionsSettings, CliSettings)
        for field in cls.model_fields
    }
    missing = sorted(name for name in names if f"| `{name}` |" not in README)
    assert not missing, f"settings missing from the README's configuration table: {missing}"


def test_readme_gives_the_two_commands() -> None:
    assert "uv run hookbay up" in README
    assert "uv run pytest" in README
