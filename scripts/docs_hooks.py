"""The docs site's generated pages (an mkdocs hook, named in mkdocs.yml).

- ``docs/configuration.md``: the marker ``<!-- settings -->`` becomes one entry per field of
  ``chatwell.settings.Settings``: its environment variable, type, default, bounds and help text.
  ``tests/test_docs.py`` checks every setting reaches the built page this way.
- ``docs/security.md``: the marker ``<!-- SECURITY.md -->`` becomes the repository's SECURITY.md,
  its links into ``docs/`` made relative to the site.

Run alone (``python scripts/docs_hooks.py``) it prints the configuration reference.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

ROOT = Path(__file__).resolve().parent.parent
# The docs describe this checkout's code, whatever chatwell the interpreter has installed.
sys.path.insert(0, str(ROOT / "src"))

from pydantic import SecretStr  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402

from chatwell.settings import Settings  # noqa: E402

SETTINGS_MARKER = "<!-- settings -->"
SECURITY_MARKER = "<!-- SECURITY.md -->"


def env_name(name: str) -> str:
    """The environment variable of a setting."""
    prefix = Settings.model_config.get("env_prefix", "")
    return f"{prefix}{name}".upper()


def _type_name(field: FieldInfo) -> str:
    if get_origin(field.annotation) is Literal:
        return "one of " + ", ".join(f"`{choice}`" for choice in get_args(field.annotation))
    text = repr(field.annotation)
    if "SecretStr" in text:
        return "secret"
    if text.startswith("<class '"):
        return text.removeprefix("<class '").removesuffix("'>").rsplit(".", 1)[-1]
    return (
        text.replace("typing.", "")
        .replace("pathlib.", "")
        .replace("Annotated[list[str], NoDecode]", "list[str]")
    )


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value == "" or value == [] or value == {}:
        return "empty"
    return f"`{value}`"


def _bounds(field: FieldInfo) -> str:
    parts = []
    for rule in field.metadata:
        for attribute, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(rule, attribute, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
    return ", ".join(parts)


def settings_markdown() -> str:
    """The configuration reference: one section per setting, in the order Settings declares them."""
    lines = [
        "| variable | default |",
        "|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        variable = env_name(name)
        lines.append(f"| [`{variable}`](#{variable.lower()}) | {_default(field)} |")
    lines.append("")
    for name, field in Settings.model_fields.items():
        variable = env_name(name)
        kind = _type_name(field)
        facts = [
            kind if kind.startswith("one of") else f"type `{kind}`",
            f"default {_default(field)}",
        ]
        if bounds := _bounds(field):
            facts.append(bounds)
        lines += [
            f"### `{variable}` {{#{variable.lower()}}}",
            "",
            " · ".join(facts),
            "",
            " ".join((field.description or "").split()),
            "",
        ]
    return "\n".join(lines)


def security_markdown() -> str:
    """SECURITY.md with its links into docs/ pointing inside the site."""
    return (ROOT / "SECURITY.md").read_text().replace("](docs/", "](")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_markdown())
    if SECURITY_MARKER in markdown:
        markdown = markdown.replace(SECURITY_MARKER, security_markdown())
    return markdown


if __name__ == "__main__":
    print(settings_markdown())
