"""Data lifecycle: what is deleted is gone from every table, and a visitor's data can be exported.

After deleting a source, a conversation and then a whole bot, every physical table of the database
is read row by row (SQLite: every table of ``sqlite_master``; PostgreSQL: every table of the
schema, each row cast to text, so the pgvector ``embedding_vec`` and tsvector columns are read
too) and searched for the deleted ids and for marker strings only the deleted content holds. The
keyword index is also queried for the markers, and retrieval must not find them.

What may stay, by design (documented in SECURITY.md):

- ``usage_events``: one content-free row per answered request (workspace, channel, model, tokens,
  cost), kept for billing; the deleted bot, key, conversation and message are nulled in it
  (``ON DELETE SET NULL``; conversation deletion nulls them explicitly).
- ``leads``: a visitor's contact details outlive the conversation they came from (the link is
  nulled); they go with their bot, or through the export/erase of the visitor.
- After a source is deleted, past answers keep their *text* (a transcript is what the bot said),
  but their citations no longer name the source or quote it.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from chatwell.settings import Settings
from chatwell.storage.tables import UsageEvent
from tests.knowledge.helpers import keyword_hits
from tests.security.tenants import Tenant, client_for, seed_tenant, wait_sources_ready

GENEROUS = "100000/minute"


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(api_rate_limits=GENEROUS, public_rate_limits=GENEROUS)


async def physical_rows(app: FastAPI) -> dict[str, list[str]]:
    """Every row of every table, as text (bytes decoded as latin-1 so ASCII content shows)."""
    db = app.state.runtime.db
    found: dict[str, list[str]] = {}
    async with db.read() as session:
        if db.is_sqlite:
            names = (
                await session.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
            ).scalars()
            for name in list(names):
                rows = (await session.execute(text(f'SELECT * FROM "{name}"'))).all()
                found[name] = [" | ".join(_text(v) for v in row) for row in rows]
        else:
            names = (
                await session.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                        " AND table_type = 'BASE TABLE'"
                    )
                )
            ).scalars()
            for name in list(names):
                found[name] = list(
                    (await session.execute(text(f'SELECT t::text FROM "{name}" AS t'))).scalars()
                )
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


def _forms(needle: str) -> list[str]:
    """A UUID is stored as 32 hex digits by SQLite and with dashes in JSON and on PostgreSQL."""
    try:
        return [needle.lower(), uuid.UUID(needle).hex]
    except ValueError:
        return [needle.lower()]


def remnants(rows: dict[str, list[str]], needles: list[str]) -> dict[str, list[str]]:
    """``{table: [needle...]}`` for every needle found in a table (case-insensitively)."""
    hits: dict[str, list[str]] = {}
    for table, lines in rows.items():
        blob = "\n".join(lines).lower()
        present = [n for n in needles if any(form in blob for form in _forms(n))]
        if present:
            hits[table] = present
    return hits


async def add_source(owner: httpx.AsyncClient, tenant: Tenant, marker: str) -> dict[str, Any]:
    response = await owner.post(
        f"/v1/bots/{tenant.bot_id}/sources",
        json={
            "type": "text",
            "title": f"{marker} manual",
            "text": f"The {marker} valve must be closed before cleaning.",
        },
    )
    assert response.status_code == 202, response.text
    await wait_sources_ready(owner, tenant.bot_id)
    return response.json()


async def test_deleted_sources_conversations_and_bots_leave_nothing(app: FastAPI) -> None:
    tenant = await seed_tenant(app, "Doomed")
    neighbour = await seed_tenant(app, "Neighbour")
    source_marker, question_marker = (
        f"valve{uuid.uuid4().hex[:10]}",
        f"asked{uuid.uuid4().hex[:10]}",
    )
    async with client_for(app, tenant.owner_key) as owner:
        source = await add_source(owner, tenant, source_marker)
        assert len(await keyword_hits(app, tenant.bot_id, source_marker)) == 1
        # An answer that cites the source (and quotes it), in a conversation of its own.
        chat = (
            await owner.post(
                f"/v1/bots/{tenant.bot_id}/chat",
                json={
                    "message": f"What must be closed before cleaning? ({question_marker})",
                    "stream": False,
                },
            )
        ).json()
        cited = {c["source_id"] for c in chat["citations"]}
        assert source["id"] in cited, chat

        # 1. The source: its row, content, chunks, keyword and vector entries, and citations of it.
        assert (
            await owner.delete(f"/v1/bots/{tenant.bot_id}/sources/{source['id']}")
        ).status_code == 204
        rows = await physical_rows(app)
        found = remnants(rows, [source["id"], source_marker])
        # The answer's text quoted the source: a transcript keeps what the bot said, nothing else does.
        assert found == {"messages": [source_marker]}, found
        assert source["id"] not in "\n".join(rows["messages"])
        assert await keyword_hits(app, tenant.bot_id, source_marker) == {}
        search = (
            await owner.post(
                f"/v1/bots/{tenant.bot_id}/search", json={"query": f"{source_marker} valve"}
            )
        ).json()
        assert source["id"] not in str(search) and source_marker not in str(search)

        # 2. The conversation: messages, feedback, agent replies, usage links, webhook payloads.
        conversation = (
            await owner.get(f"/v1/conversations/{tenant.session_conversation_id}")
        ).json()
        message_ids = [m["id"] for m in conversation["messages"]]
        for conversation_id in (
            chat["conversation_id"],
            tenant.session_conversation_id,
            tenant.conversation_id,
        ):
            assert (await owner.delete(f"/v1/conversations/{conversation_id}")).status_code == 204
        gone = [
            chat["conversation_id"],
            chat["message_id"],
            tenant.session_conversation_id,
            tenant.conversation_id,
            tenant.message_id,
            tenant.user_message_id,
            tenant.agent_message_id,
            *message_ids,
            question_marker,
            f"{tenant.marker} agent here",
            f"{tenant.marker} liked it",
            f"When does the {tenant.marker} office open?",
            tenant.session_id,
        ]
        found = remnants(await physical_rows(app), gone)
        assert found == {}, found
        # The lead stays (contact details outlive the conversation) with its link nulled.
        leads = (await owner.get(f"/v1/bots/{tenant.bot_id}/leads")).json()["data"]
        assert [(lead["id"], lead["conversation_id"]) for lead in leads] == [(tenant.lead_id, None)]

        # 3. The bot: everything of it, keys, leads and delivery log included.
        assert (await owner.delete(f"/v1/bots/{tenant.bot_id}")).status_code == 204
    rows = await physical_rows(app)
    workspace_level = (
        tenant.workspace_id,
        tenant.owner_key_id,
        tenant.owner_key,
        tenant.spare_key_id,
    )
    found = remnants(rows, [n for n in tenant.ids() + tenant.texts() if n not in workspace_level])
    assert found == {}, found
    # Usage rows stay for billing: content-free, with the bot, keys, conversations and messages nulled.
    async with app.state.runtime.db.read() as session:
        usage = (
            await session.execute(
                select(
                    UsageEvent.bot_id,
                    UsageEvent.api_key_id,
                    UsageEvent.conversation_id,
                    UsageEvent.message_id,
                ).where(UsageEvent.workspace_id == uuid.UUID(tenant.workspace_id))
            )
        ).all()
    assert usage, "answered requests are metered"
    for bot_id, key_id, conversation_id, message_id in usage:
        assert (bot_id, conversation_id, message_id) == (None, None, None)
        assert key_id in (None, uuid.UUID(tenant.owner_key_id))  # the bot's own key went with it
    # The neighbour lost nothing.
    assert remnants(rows, neighbour.ids()).keys() >= {
        "bots",
        "sources",
        "conversations",
        "messages",
        "leads",
    }
    async with client_for(app, neighbour.owner_key) as other:
        assert len((await other.get(f"/v1/bots/{neighbour.bot_id}/sources")).json()["data"]) == 2
        assert (
            await other.get(f"/v1/conversations/{neighbour.conversation_id}")
        ).status_code == 200


# ----------------------------------------------------------------------------- GDPR export


async def test_a_visitors_data_can_be_exported_by_session_and_email(app: FastAPI) -> None:
    tenant, other = await seed_tenant(app, "Visited"), await seed_tenant(app, "Other")
    async with client_for(app, tenant.owner_key) as owner:
        by_session = await owner.get(
            "/v1/conversations/export", params={"session_id": tenant.session_id}
        )
        assert by_session.status_code == 200, by_session.text
        export = by_session.json()
        assert [c["id"] for c in export["conversations"]] == [tenant.session_conversation_id]
        messages = export["conversations"][0]["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "agent"]
        assert messages[0]["content"] == f"Who runs {tenant.marker}?"
        # The lead left from that conversation comes with it.
        assert [lead["id"] for lead in export["leads"]] == [tenant.lead_id]
        by_email = (
            await owner.get("/v1/conversations/export", params={"email": tenant.lead_email.upper()})
        ).json()
        assert by_email["conversations"] == [] and [
            lead["email"] for lead in by_email["leads"]
        ] == [tenant.lead_email]
        both = (
            await owner.get(
                "/v1/conversations/export",
                params={"session_id": tenant.session_id, "email": tenant.lead_email},
            )
        ).json()
        assert len(both["conversations"]) == 1 and len(both["leads"]) == 1
        nothing = await owner.get("/v1/conversations/export")
        assert nothing.status_code == 400 and nothing.json()["error"]["code"] == "missing_parameter"
        unknown = (
            await owner.get("/v1/conversations/export", params={"session_id": "sess-nobody"})
        ).json()
        assert unknown["conversations"] == [] and unknown["leads"] == []
    # Another workspace sees nothing of it (exactly what an unknown visitor gives), a bot key nothing at all.
    async with client_for(app, other.owner_key) as stranger:
        foreign = (
            await stranger.get(
                "/v1/conversations/export",
                params={"session_id": tenant.session_id, "email": tenant.lead_email},
            )
        ).json()
        assert foreign["conversations"] == [] and foreign["leads"] == []
    async with client_for(app, tenant.bot_key) as scoped:
        refused = await scoped.get(
            "/v1/conversations/export", params={"session_id": tenant.session_id}
        )
        assert (
            refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
        )
