"""Shared fixtures: a fresh chatwell app per test on a real SQLite file, or on a real PostgreSQL.

``backend`` is parametrised, so every test that builds an app through ``app``/``client`` runs on
both storage engines. Service fixtures (PostgreSQL, Redis, uvicorn) live in ``tests/services.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatwell.settings import Settings
from tests.helpers import build_app

pytest_plugins = ["tests.services", "tests.llm_server"]

ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh database without any table (the migration and first-start tests)."""
    if backend == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh database already migrated to head: a copy of this worker's template, so a test
    does not run every migration again (the app's start still checks the revision)."""
    if backend == "postgres":
        return request.getfixturevalue("migrated_postgres_url")
    path = tmp_path / "chatwell.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)  # with its 0600 mode
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "admin_key": ADMIN_KEY,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def announcements() -> list[str]:
    return []


@pytest.fixture
async def app(settings: Settings, announcements: list[str]) -> AsyncIterator[FastAPI]:
    application = build_app(settings, announce=announcements.append)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as c:
        yield c


@pytest.fixture
async def anon_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers ``make test-fast`` selects on: ``postgres`` for the tests on the PostgreSQL
    backend (the database is chosen at run time, so its fixture is not in the closure that
    ``tests/services.py`` marks by), ``browser`` for the tests that drive Chromium."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "postgres":
            item.add_marker(pytest.mark.postgres)
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
