"""Fixtures for the knowledge integration tests: the app (on both backends) may reach loopback
URLs, and a real HTTP server on 127.0.0.1 serves the pages URL sources fetch."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from chatwell.settings import Settings
from tests.ingestion.helpers import SiteServer


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # URL sources in these tests point at the loopback test server.
    return make_settings(crawl_allow_private=True)


@pytest.fixture
def site() -> Iterator[SiteServer]:
    server = SiteServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
