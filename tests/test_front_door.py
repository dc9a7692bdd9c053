"""The first run: `/` leads to the dashboard, `/docs` is served with its assets from the package,
`/favicon.ico` answers, list settings from the environment accept commas, and a bad setting is
one line naming its variable (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from chatwell.settings import Settings

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


async def test_root_leads_to_the_dashboard(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get("/")
    assert response.status_code == 307 and response.headers["location"] == "/dashboard"


async def test_docs_use_local_assets(anon_client: httpx.AsyncClient) -> None:
    page = await anon_client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/docs/assets/swagger-ui-bundle.js" in page.text
    script = await anon_client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "application/javascript"
    )
    assert len(script.content) > 100_000
    css = await anon_client.get("/docs/assets/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert (await anon_client.get("/docs/assets/..%2Fcore.py")).status_code == 404
    assert (await anon_client.get("/docs/assets/index.html")).status_code == 404
    assert (await anon_client.get("/redoc")).headers["location"] == "/docs"


async def test_favicon(anon_client: httpx.AsyncClient, app: FastAPI) -> None:
    icon = await anon_client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in icon.content


def test_list_settings_accept_commas(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.setenv(
        "CHATWELL_CORS_ALLOWED_ORIGINS", "https://shop.example, https://admin.example"
    )
    monkeypatch.setenv("CHATWELL_BLOCKED_INPUT_PATTERNS", '["a{1,2}", "b"]')
    monkeypatch.setenv("CHATWELL_BLOCKED_OUTPUT_PATTERNS", "secret")
    settings = Settings()
    assert settings.cors_allowed_origins == ["https://shop.example", "https://admin.example"]
    assert settings.blocked_input_patterns == ["a{1,2}", "b"]
    assert settings.blocked_output_patterns == ["secret"]
    monkeypatch.setenv("CHATWELL_CORS_ALLOWED_ORIGINS", "")
    assert Settings().cors_allowed_origins == []


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        (
            "CHATWELL_CORS_ALLOWED_ORIGINS",
            "[https://shop.example",
            "CHATWELL_CORS_ALLOWED_ORIGINS: not a JSON list",
        ),
        (
            "CHATWELL_SQLITE_BUSY_TIMEOUT_MS",
            "soon",
            "CHATWELL_SQLITE_BUSY_TIMEOUT_MS: Input should be a valid integer",
        ),
        ("CHATWELL_MODEL_PRICES", "cheap", "CHATWELL_MODEL_PRICES: not valid JSON"),
        (
            "CHATWELL_ENVIRONMENT",
            "prod",
            "CHATWELL_ENVIRONMENT: Input should be 'development' or 'production'",
        ),
    ],
)
def test_a_bad_setting_is_one_line(
    tmp_path: Path, variable: str, value: str, expected: str, backend: str
) -> None:
    env = {**os.environ, variable: value, "CHATWELL_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "chatwell.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(expected), lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_a_secret_is_never_repeated(tmp_path: Path, backend: str) -> None:
    env = {
        **os.environ,
        "CHATWELL_ENVIRONMENT": "production",
        "CHATWELL_ADMIN_KEY": "changeme",
        "CHATWELL_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "chatwell.cli", "keys", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "CHATWELL_ADMIN_KEY is a placeholder" in done.stderr
    assert "changeme" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
