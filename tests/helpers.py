"""Small helpers the tests share: counting rows, making bots and keys through the public API."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from chatwell.storage.tables import Base


async def count_rows(app: FastAPI, table: type[Base], **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(getattr(table, column) == value)
    async with app.state.db.read() as session:
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
