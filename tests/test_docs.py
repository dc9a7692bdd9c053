"""The docs: the README starts with the two set-up commands, and the docs site builds with warnings
as errors (``mkdocs build --strict``, what ``make docs`` runs) with every setting on its generated
configuration page."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatwell.settings import Settings

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_setup_commands() -> None:
    head = README[:600]
    assert "make serve" in head and "make test" in head


def test_readme_stays_short_and_links_into_the_docs() -> None:
    assert len(README.encode()) <= 7_000, "the README grew: put the detail in docs/"
    for page in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / page).is_file(), f"README links to a missing {page}"


def test_every_setting_has_help_text() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no help text"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


def test_the_configuration_page_documents_every_setting(site: Path) -> None:
    page = (site / "configuration.html").read_text()
    sections = re.split(r"<h3 ", page)
    by_variable = {}
    for section in sections[1:]:
        found = re.match(r'id="(chatwell_[a-z_]+)"', section)
        if found:
            by_variable[found.group(1).upper()] = _text("<h3 " + section)
    for name, field in Settings.model_fields.items():
        variable = f"CHATWELL_{name.upper()}"
        assert variable in by_variable, f"the configuration page lacks {variable}"
        described = " ".join((field.description or "").replace("`", "").split())
        assert described in by_variable[variable], f"{variable}'s help text is not on the page"
    assert set(by_variable) == {f"CHATWELL_{name.upper()}" for name in Settings.model_fields}


def test_the_site_has_every_page_and_no_web_fonts(site: Path) -> None:
    for page in (
        "index.html",
        "getting-started.html",
        "api.html",
        "widget.html",
        "dashboard.html",
        "deployment.html",
        "performance.html",
        "architecture.html",
        "security.html",
        "dialects/chatbase.html",
        "dialects/chatiq.html",
        "dialects/chatbotiq.html",
        "dialects/chatbots-v1.html",
        "dialects/devapi.html",
        "dialects/openai.html",
        "dialects/mcp.html",
        "dialects/dify.html",
        "dialects/flowise.html",
    ):
        assert (site / page).is_file(), page
    for built in site.rglob("*.html"):
        assert "fonts.googleapis.com" not in built.read_text(), built
    security = _text((site / "security.html").read_text())
    assert "Reporting a vulnerability" in security
    deployment = _text((site / "deployment.html").read_text())
    assert "proxy_buffering off" in deployment  # deploy/nginx.conf, included whole
