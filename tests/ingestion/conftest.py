"""Fixtures for the ingestion tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import SiteServer


@pytest.fixture
def site() -> Iterator[SiteServer]:
    server = SiteServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
