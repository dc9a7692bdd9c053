"""The native chat API over the engine, on both databases: streaming events, persistence,
conversation memory, private mode, failures, filters, credits, usage, conversations, feedback."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from chatwell.chat.filters import ContentFilter
from chatwell.storage.tables import Conversation, Message, UsageEvent, Workspace
from tests.fakes import FixedRegistry, ScriptedModel
from tests.helpers import bearer, make_bot, make_key

HOURS = "Our support team answers Monday to Friday, from nine to five. Weekend questions wait for Monday."


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        if not lines:
            continue  # a keep-alive comment while a slow model thinks
        name = next(line[7:] for line in lines if line.startswith("event: "))
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        events.append((name, json.loads(data)))
    return events


async def bot_with_knowledge(
    client: httpx.AsyncClient, app: FastAPI, **fields: Any
) -> dict[str, Any]:
    bot = await make_bot(client, **fields)
    response = await client.post(
        f"/v1/bots/{bot['id']}/sources",
        json={"type": "text", "title": "Support hours", "text": HOURS},
    )
    assert response.status_code == 202
    await app.state.runtime.ingestion.idle()
    return bot


async def table_counts(app: FastAPI) -> dict[str, int]:
    counts = {}
    async with app.state.runtime.db.read() as session:
        for table in (Conversation, Message, UsageEvent):
            counts[table.__tablename__] = int(
                await session.scalar(select(func.count()).select_from(table)) or 0
            )
    return counts


def use_model(app: FastAPI, model: ScriptedModel) -> ScriptedModel:
    app.state.runtime.chat.models = FixedRegistry(model)
    return model


async def test_offline_answer_streams_events_in_order_with_citations(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_knowledge(client, app)
    response = await client.post(
        f"/v1/bots/{bot['slug']}/chat", json={"message": "When is support available?"}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/event-stream"
    )
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[0] == "status" and events[0][1] == {"stage": "retrieving"}
    assert "notice" in names and names.index("status", 1) < names.index("delta")
    assert names[-3:] == ["citations", "usage", "done"]
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert "Monday to Friday" in text and "[1]" in text
    citation = events[-3][1]["citations"][0]
    assert citation["title"] == "Support hours" and citation["index"] == 1
    done = events[-1][1]
    conversation = (await client.get(f"/v1/conversations/{done['conversation_id']}")).json()
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
    assert conversation["messages"][1]["id"] == done["message_id"]
    assert conversation["messages"][1]["citations"][0]["title"] == "Support hours"


async def test_unanswerable_question_gets_the_not_found_message(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_knowledge(client, app, answer={"not_found_message": "No idea, sorry."})
    model = use_model(app, ScriptedModel())
    reply = (
        await client.post(
            f"/v1/bots/{bot['id']}/chat",
            json={"message": "What is the boiling point of tungsten?", "stream": False},
        )
    ).json()
    assert reply["answer"] == "No idea, sorry." and reply["citations"] == []
    assert model.requests == []  # no model was asked to guess


async def test_conversation_memory_and_prompt_use_stored_turns(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_knowledge(client, app, instructions="Be brief.")
    model = use_model(app, ScriptedModel(deltas=("Nine ", "to five [1].")))
    first = (
        await client.post(
            f"/v1/bots/{bot['id']}/chat",
            json={"message": "When does support answer questions?", "stream": False},
        )
    ).json()
    assert first["answer"] == "Nine to five [1]." and first["usage"]["prompt_tokens"] == 100
    second = (
        await client.post(
            f"/v1/bots/{bot['id']}/chat",
            json={
                "message": "And at the weekend?",
                "conversation_id": first["conversation_id"],
                "stream": False,
            },
        )
    ).json()
    assert second["conversation_id"] == first["conversation_id"]
    messages = model.requests[-1].messages
    assert messages[0].role == "system" and "Be brief." in messages[0].content
    assert [(m.role, m.content) for m in messages[1:-1]] == [
        ("user", "When does support answer questions?"),
        ("assistant", "Nine to five [1]."),
    ]
    # The sources travel with the question, fenced, in the user's message (tests/security/test_prompt_injection.py).
    assert messages[-1].role == "user" and messages[-1].content.endswith(
        "My question: And at the weekend?"
    )
    assert "Title: Support hours" in messages[-1].content and HOURS in messages[-1].content
    unknown = await client.post(
        f"/v1/bots/{bot['id']}/chat",
        json={"message": "x", "conversation_id": "01a201e1-4ce8-7de6-bb10-c3883975ac62"},
    )
    assert (
        unknown.status_code == 404 and unknown.json()["error"]["code"] == "conversation_not_found"
    )


async def test_private_mode_stores_no_content(client: httpx.AsyncClient, app: FastAPI) -> None:
    bot = await bot_with_knowledge(client, app)
    use_model(app, ScriptedModel())
    before = await table_counts(app)
    reply = (
        await client.post(
            f"/v1/bots/{bot['id']}/chat",
            json={"message": "When does support answer?", "private": True, "stream": False},
        )
    ).json()
    assert reply["answer"] and reply["conversation_id"] is None
    after = await table_counts(app)
    assert (
        after["conversations"] == before["conversations"]
        and after["messages"] == before["messages"]
    )
    async with app.state.runtime.db.read() as session:
        usage = (await session.scalars(select(UsageEvent))).all()
    # Metering stays (no content in it): tokens and model only.
    assert all(u.conversation_id is None and u.message_id is None for u in usage)


async def test_failure_mid_stream_records_both_turns_with_the_error(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_knowledge(client, app)
    use_model(app, ScriptedModel(deltas=("Partial ", "answer ", "never"), fail_after=2))
    events = parse_sse(
        (
            await client.post(
                f"/v1/bots/{bot['id']}/chat", json={"message": "When does support answer?"}
            )
        ).text
    )
    assert events[-1] == (
        "error",
        {"code": "upstream_error", "message": "the model stream broke off"},
    )
    async with app.state.runtime.db.read() as session:
        rows = (await session.scalars(select(Message).order_by(Message.created_at))).all()
    assert [m.role for m in rows] == ["user", "assistant"]
    assert rows[1].error_code == "upstream_error" and rows[1].content == "Partial answer "


async def test_filters_refuse_input_and_replace_output(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_knowledge(client, app)
    use_model(app, ScriptedModel(deltas=("The launch code is 1234 [1].",)))
    app.state.runtime.chat.filter = ContentFilter([r"\bexploit\b"], [r"launch code"])
    before = await table_counts(app)
    blocked = parse_sse(
        (
            await client.post(
                f"/v1/bots/{bot['id']}/chat", json={"message": "write an EXPLOIT for me"}
            )
        ).text
    )
    assert blocked == [
        (
            "error",
            {
                "code": "content_filtered",
                "message": "The message was blocked by the content filter.",
            },
        )
    ]
    assert await table_counts(app) == before
    replaced = parse_sse(
        (
            await client.post(
                f"/v1/bots/{bot['id']}/chat", json={"message": "When does support answer?"}
            )
        ).text
    )
    names = [n for n, _ in replaced]
    assert "replace" in names and "citations" not in names
    async with app.state.runtime.db.read() as session:
        last = (await session.scalars(select(Message).order_by(Message.created_at.desc()))).first()
    assert last is not None and "launch code" not in last.content


async def test_exhausted_credits_end_the_stream_and_usage_is_charged(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_knowledge(client, app)
    use_model(app, ScriptedModel(name="gpt-4o-mini", usage=(1_000_000, 0)))
    async with app.state.runtime.db.write() as session:
        await session.execute(update(Workspace).values(credit_balance=Decimal("0.20")))
    ok = (
        await client.post(
            f"/v1/bots/{bot['id']}/chat",
            json={"message": "When does support answer?", "stream": False},
        )
    ).json()
    # The scripted model reports its name as the model: a real price applies.
    assert ok["usage"]["cost"] == pytest.approx(0.15)
    async with app.state.runtime.db.read() as session:
        balance = await session.scalar(select(Workspace.credit_balance))
    assert balance == Decimal("0.05")
    async with app.state.runtime.db.write() as session:
        await session.execute(update(Workspace).values(credit_balance=Decimal("0")))
    events = parse_sse(
        (
            await client.post(
                f"/v1/bots/{bot['id']}/chat", json={"message": "When does support answer?"}
            )
        ).text
    )
    assert events[-1][0] == "error" and events[-1][1]["code"] == "service_unavailable"


async def test_conversations_list_delete_and_feedback_respect_scope(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_knowledge(client, app)
    other = await make_bot(client, name="Other")
    use_model(app, ScriptedModel())
    reply = (
        await client.post(
            f"/v1/bots/{bot['id']}/chat",
            json={"message": "When does support answer?", "stream": False},
        )
    ).json()
    listed = (await client.get("/v1/conversations", params={"bot_id": bot["id"]})).json()["data"]
    assert [c["id"] for c in listed] == [reply["conversation_id"]]
    # Even granted reading, a key of another bot does not reach this bot's conversations.
    other_key = (await make_key(client, bot_id=other["id"], scopes=["chat", "conversations:read"]))[
        "key"
    ]
    assert (
        await client.get(f"/v1/conversations/{reply['conversation_id']}", headers=bearer(other_key))
    ).status_code == 404
    bad = await client.post(f"/v1/messages/{reply['message_id']}/feedback", json={"rating": "meh"})
    assert bad.status_code == 400
    good = await client.post(
        f"/v1/messages/{reply['message_id']}/feedback",
        json={"rating": "negative", "comment": "too short"},
    )
    assert good.status_code == 200 and good.json()["feedback"] == "negative"
    assert (await client.delete(f"/v1/conversations/{reply['conversation_id']}")).status_code == 204
    assert (await client.get(f"/v1/conversations/{reply['conversation_id']}")).status_code == 404
    counts = await table_counts(app)
    assert counts["messages"] == 0 and counts["conversations"] == 0 and counts["usage_events"] == 1


async def test_bad_chat_requests_are_4xx(client: httpx.AsyncClient, app: FastAPI) -> None:
    bot = await make_bot(client)
    for body in (
        {},
        {"message": ""},
        {"message": "x" * 9000},
        {"message": "hi", "stream": "maybe"},
        {"message": "hi", "extra": 1},
    ):
        response = await client.post(f"/v1/bots/{bot['id']}/chat", json=body)
        assert response.status_code == 400, body
    assert (await client.post("/v1/bots/nope/chat", json={"message": "hi"})).status_code == 404
    half = await client.post(
        f"/v1/bots/{bot['id']}/chat", json={"message": "hi", "image_data": "aGk="}
    )
    assert half.status_code == 400
    broken = await client.post(
        f"/v1/bots/{bot['id']}/chat",
        json={"message": "hi", "image_data": "%%%", "image_media_type": "image/png"},
    )
    assert broken.status_code == 400
    # The offline answerer reads no images: a clear refusal before anything is stored.
    refused = await client.post(
        f"/v1/bots/{bot['id']}/chat",
        json={"message": "what is this?", "image_data": "aGk=", "image_media_type": "image/png"},
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "images_not_supported"


async def test_an_image_reaches_a_model_that_takes_images(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_knowledge(client, app)
    model = use_model(app, ScriptedModel(supports_images=True))
    reply = await client.post(
        f"/v1/bots/{bot['id']}/chat",
        json={
            "message": "When does support answer this screenshot?",
            "stream": False,
            "image_data": "aGk=",
            "image_media_type": "image/png",
        },
    )
    assert reply.status_code == 200, reply.text
    last = model.requests[-1].messages[-1]
    image = last.image
    assert image is not None and image.media_type == "image/png" and image.data_base64 == "aGk="
    assert HOURS in last.content  # the image joins the question without dropping its sources
