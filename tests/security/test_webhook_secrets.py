"""A webhook is signed from its first delivery (issue 19 item 14: deliveries went out unsigned until
someone rotated a secret), and the receiver example of docs/webhooks.md really checks signature,
timestamp and delivery id against deliveries chatwell signs.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from chatwell.services.webhooks import WebhookWorker, delivery_headers, encode_body
from chatwell.storage.tables import Bot, WebhookDelivery, utcnow

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
DOC = Path(__file__).parents[2] / "docs" / "webhooks.md"


async def test_the_secret_comes_with_the_webhook_and_is_shown_once(
    client: httpx.AsyncClient, backend: str
) -> None:
    created = (
        await client.post(
            "/v1/bots", json={"name": "Hooked", "webhook_url": "https://hooks.example/a"}
        )
    ).json()
    secret = created["webhook_secret"]
    assert secret and secret.startswith("whsec_")  # was None: unsigned until rotated
    again = (await client.get(f"/v1/bots/{created['id']}")).json()
    assert again["webhook_secret"] is None  # never shown again
    changed = (
        await client.patch(
            f"/v1/bots/{created['id']}", json={"webhook_url": "https://hooks.example/b"}
        )
    ).json()
    assert changed["webhook_secret"] is None  # it has one: moving the URL keeps it
    plain = (await client.post("/v1/bots", json={"name": "Plain"})).json()
    assert plain["webhook_secret"] is None
    later = (
        await client.patch(
            f"/v1/bots/{plain['id']}", json={"webhook_url": "https://hooks.example/c"}
        )
    ).json()
    assert later["webhook_secret"].startswith("whsec_") and later["webhook_secret"] != secret


async def test_a_bot_stored_without_a_secret_is_signed_at_its_next_delivery(
    app: FastAPI, client: httpx.AsyncClient, backend: str
) -> None:
    bot = (
        await client.post(
            "/v1/bots", json={"name": "Legacy", "webhook_url": "https://hooks.example/x"}
        )
    ).json()
    db = app.state.runtime.db
    async with db.write() as session:  # as stored before secrets came with webhooks
        await session.execute(
            update(Bot).where(Bot.id == uuid.UUID(bot["id"])).values(webhook_secret=None)
        )
        stored = await session.get(Bot, uuid.UUID(bot["id"]))
        assert stored is not None
        delivery = WebhookDelivery(
            workspace_id=stored.workspace_id,
            bot_id=stored.id,
            event="lead.created",
            payload={"event": "lead.created"},
            status="pending",
            attempts=0,
            next_attempt_at=utcnow(),
        )
        session.add(delivery)
        await session.flush()
        delivery_id = delivery.id
    job = await WebhookWorker(db)._load(delivery_id)
    assert job is not None and job.secret and job.secret.startswith("whsec_")
    async with db.read() as session:
        assert (await session.get(Bot, uuid.UUID(bot["id"]))).webhook_secret == job.secret


def _doc_receiver() -> dict[str, Any]:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert code, "docs/webhooks.md lost its example"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def test_the_documented_receiver_accepts_a_real_delivery_once_and_refuses_replays(
    backend: str,
) -> None:
    receiver = _doc_receiver()
    verify = receiver["verify_chatwell_webhook"]
    secret, now = "whsec_test-secret", int(time.time())
    body = encode_body({"event": "lead.created", "lead": {"email": "ada@example.com"}})
    delivery = uuid.uuid4()
    headers = delivery_headers(
        delivery_id=delivery, event="lead.created", body=body, secret=secret, timestamp=now
    )
    assert verify(secret, headers, body, now=now) == str(delivery)
    with pytest.raises(ValueError, match="replayed"):  # the same request again, within the window
        verify(secret, headers, body, now=now + 10)
    with pytest.raises(ValueError, match="bad signature"):
        verify(secret, headers, body.replace(b"ada", b"eve"), now=now)
    with pytest.raises(ValueError, match="bad signature"):
        verify("whsec_other", headers, body, now=now)
    old = delivery_headers(
        delivery_id=uuid.uuid4(),
        event="lead.created",
        body=body,
        secret=secret,
        timestamp=now - 3600,
    )
    with pytest.raises(ValueError, match="stale"):  # a captured request replayed an hour later
        verify(secret, old, body, now=now)
    retry = delivery_headers(
        delivery_id=delivery, event="lead.created", body=body, secret=secret, timestamp=now + 60
    )
    with pytest.raises(
        ValueError, match="replayed"
    ):  # a retry of a handled event: acknowledge, do not redo
        verify(secret, retry, body, now=now + 60)
