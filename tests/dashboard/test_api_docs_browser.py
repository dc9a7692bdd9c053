"""`/docs` renders in real Chromium with every request off this server refused (an offline
machine): the Swagger UI files come from the package, not a CDN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chatwell.settings import Settings
from tests.dashboard.test_dashboard_browser import shot
from tests.helpers import build_app

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def test_api_docs_render_offline(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    refused: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(chatwell):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{chatwell}/")
    assert page.url.rstrip("/").endswith(
        "/dashboard/setup"
    )  # a fresh install: / -> dashboard -> set-up
    page.goto(f"{chatwell}/docs")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() > 50
    assert "chatwell" in page.locator(".information-container").inner_text()
    assert page.locator(".opblock-summary-path", has_text="/v1/bots").count() > 0
    shot(page, "api-docs-offline")
    assert errors == []
    assert refused == [], refused  # nothing on the page even tried to leave the machine
    context.close()
