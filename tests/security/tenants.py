"""A workspace with one of everything, made through the public doors, for the security tests.

``seed_tenant`` gives a fresh workspace a bot (public, with handoff and a contact form), text and
Q&A sources (ingested), a bot-scoped key and a spare workspace key, a keyed conversation and a
visitor's session conversation, feedback, an agent's reply, a lead and its webhook delivery. Every
content string carries the tenant's own marker, so a test can search any response for them
(the workspace and the spare key's labels do not: they outlive a deleted bot).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from chatwell.services import bots, keys, leads, workspaces

# Loopback on the discard port: with webhook_allow_private off, the delivery fails unsent.
WEBHOOK_URL = "http://127.0.0.1:9/hook"


@dataclass
class Tenant:
    name: str
    marker: str
    workspace_id: str
    owner_key: str
    owner_key_id: str
    bot_id: str
    bot_slug: str
    bot_key: str
    bot_key_id: str
    spare_key_id: str
    source_ids: list[str]
    conversation_id: str  # opened with the owner key (native chat)
    user_message_id: str
    message_id: str  # the assistant's answer
    session_id: str
    session_conversation_id: str  # opened by a visitor through the public widget API
    agent_message_id: str
    lead_id: str
    lead_email: str
    delivery_id: str

    def ids(self) -> list[str]:
        """Every identifier of this tenant's data (searched for in other tenants' responses)."""
        return [
            self.workspace_id,
            self.owner_key_id,
            self.bot_id,
            self.bot_slug,
            self.bot_key_id,
            self.spare_key_id,
            *self.source_ids,
            self.conversation_id,
            self.user_message_id,
            self.message_id,
            self.session_id,
            self.session_conversation_id,
            self.agent_message_id,
            self.lead_id,
            self.delivery_id,
        ]

    def texts(self) -> list[str]:
        """Names and content strings only this tenant's data contains."""
        return [self.marker, self.lead_email, self.owner_key, self.bot_key]


def client_for(app: FastAPI, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers=headers,
        timeout=60,
    )


async def wait_sources_ready(client: httpx.AsyncClient, bot: str, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = (await client.get(f"/v1/bots/{bot}/sources")).json()["data"]
        if found and all(s["status"] in ("ready", "failed") for s in found):
            assert all(s["status"] == "ready" for s in found), found
            return
        await asyncio.sleep(0.05)
    raise AssertionError("sources did not finish ingesting")


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    return response.json()


async def seed_tenant(app: FastAPI, name: str, *, owner_key: str | None = None) -> Tenant:
    """A tenant in a new workspace, or in the workspace of ``owner_key`` when given."""
    db = app.state.runtime.db
    marker = f"{name}{secrets.token_hex(4)}"
    if owner_key is None:
        _, owner_key = await workspaces.create_workspace(db, name=f"{name} workspace")
    principal = await keys.authenticate(db, owner_key)
    workspace_id, owner_key_id = principal.workspace_id, str(principal.key_id)
    slug = f"{name.lower()}-{marker[-8:]}"
    async with client_for(app, owner_key) as owner:
        bot = _ok(
            await owner.post(
                "/v1/bots",
                json={
                    "name": f"{marker} bot",
                    "slug": slug,
                    "public": True,
                    "instructions": f"{marker} instructions",
                    "welcome_message": f"{marker} welcome",
                    "handoff": {"enabled": True, "trigger": "button"},
                    "contact_form": {"enabled": True},
                    "webhook_url": WEBHOOK_URL,
                },
            ),
            201,
        )
        sources = [
            _ok(
                await owner.post(
                    f"/v1/bots/{slug}/sources",
                    json={
                        "type": "text",
                        "title": f"{marker} hours",
                        "text": f"The {marker} office opens at nine. Parcels to {marker} ship on Mondays.",
                    },
                ),
                202,
            ),
            _ok(
                await owner.post(
                    f"/v1/bots/{slug}/sources",
                    json={
                        "type": "qa",
                        "question": f"Who runs {marker}?",
                        "answer": f"{marker} is run by a cat.",
                    },
                ),
                202,
            ),
        ]
        await wait_sources_ready(owner, slug)
        bot_key = _ok(
            await owner.post("/v1/keys", json={"label": f"{marker} site", "bot_id": bot["id"]}), 201
        )
        spare = _ok(await owner.post("/v1/keys", json={"label": f"{name} spare"}), 201)
        chat = _ok(
            await owner.post(
                f"/v1/bots/{slug}/chat",
                json={"message": f"When does the {marker} office open?", "stream": False},
            )
        )
        conversation = _ok(await owner.get(f"/v1/conversations/{chat['conversation_id']}"))
        user_message = next(m for m in conversation["messages"] if m["role"] == "user")
        _ok(
            await owner.post(
                f"/v1/messages/{chat['message_id']}/feedback",
                json={"rating": "positive", "comment": f"{marker} liked it"},
            )
        )
        session_id = f"sess-{marker}"
        async with client_for(app) as visitor:
            stream = await visitor.post(
                "/v1/public/chat/stream",
                json={
                    "bot_id": bot["id"],
                    "message": f"Who runs {marker}?",
                    "session_id": session_id,
                },
            )
            assert stream.status_code == 200, stream.text
        visited = _ok(await owner.get("/v1/conversations", params={"bot_id": bot["id"]}))["data"]
        session_conversation = next(c for c in visited if c["session_id"] == session_id)
        _ok(await owner.post("/v1/agents/presence", json={"online": True}))
        async with client_for(app) as visitor:
            _ok(
                await visitor.post(
                    f"/v1/public/conversations/{session_conversation['id']}/handoff",
                    json={"session_id": session_id},
                )
            )
        agent = _ok(
            await owner.post(
                f"/v1/conversations/{session_conversation['id']}/messages",
                json={"content": f"{marker} agent here"},
            ),
            201,
        )
        async with db.read() as session:
            bot_row = await bots.find_bot(session, bot["id"])
        assert bot_row is not None
        email = f"{marker.lower()}@visitor.example"
        lead = await leads.create_lead(
            db,
            bot=bot_row,
            conversation_id=uuid.UUID(session_conversation["id"]),
            name=f"{marker} visitor",
            email=email,
            phone="+1 555 0100",
        )
        deliveries = _ok(await owner.get(f"/v1/bots/{slug}/webhook-deliveries"))["data"]
        assert deliveries, "the lead queued no webhook delivery"
    return Tenant(
        name=name,
        marker=marker,
        workspace_id=str(workspace_id),
        owner_key=owner_key,
        owner_key_id=owner_key_id,
        bot_id=bot["id"],
        bot_slug=slug,
        bot_key=bot_key["key"],
        bot_key_id=bot_key["id"],
        spare_key_id=spare["id"],
        source_ids=[s["id"] for s in sources],
        conversation_id=chat["conversation_id"],
        user_message_id=user_message["id"],
        message_id=chat["message_id"],
        session_id=session_id,
        session_conversation_id=session_conversation["id"],
        agent_message_id=agent["id"],
        lead_id=str(lead.id),
        lead_email=email,
        delivery_id=deliveries[0]["id"],
    )
