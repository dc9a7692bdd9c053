"""Small helpers the tests share: building apps, counting rows, making bots and keys through the
public API."""

from __future__ import annotations

import functools
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from chatwell.app import create_app
from chatwell.embedders.base import Embedder
from chatwell.embedders.minilm import MiniLMOnnxEmbedder
from chatwell.settings import Settings
from chatwell.storage.tables import Base


@functools.cache
def offline_model() -> Embedder:
    """The offline MiniLM model, loaded once per process (one per xdist worker) and shared by
    every app the tests build: each app loading its own cost seconds of set-up and its memory."""
    return MiniLMOnnxEmbedder()


def build_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    """``create_app`` embedding with this process's shared offline model."""
    return create_app(settings, offline_model=offline_model(), **options)


async def count_rows(app: FastAPI, table: type[Base], **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(getattr(table, column) == value)
    async with app.state.runtime.db.read() as session:
        return int(await session.scalar(query) or 0)


async def make_bot(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Support Bot", **fields}
    response = await client.post("/v1/bots", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def make_key(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/keys", json={"label": "test", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
