"""The README documents every setting and starts with the two set-up commands."""

from __future__ import annotations

from pathlib import Path

from chatwell.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert f"`CHATWELL_{name.upper()}`" in README, f"README lacks CHATWELL_{name.upper()}"
        assert field.description, f"setting {name} has no help text"


def test_readme_starts_with_the_setup_commands() -> None:
    head = README[:600]
    assert "make serve" in head and "make test" in head
