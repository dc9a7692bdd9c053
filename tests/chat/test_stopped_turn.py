"""A turn its door stops mid-answer (Dify's stop button, a client gone) is stored as cancelled, with
what was said, by the time closing its event stream returns: the door then says it ended
(``message_end``), and a history read right after shows the partial answer."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from chatwell.chat.service import ChatRequest
from chatwell.domain.events import Delta
from chatwell.services import bots as bot_service
from chatwell.storage.tables import Message
from tests.chat.test_answer_quality import bot_with_texts
from tests.fakes import FixedRegistry, ScriptedModel


async def test_a_stopped_turn_is_stored_when_its_stream_closes(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_texts(client, app, {"Hours": "Support answers Monday to Friday."})
    async with app.state.runtime.db.read() as session:
        stored = await bot_service.find_bot(session, bot["id"])
    chat = app.state.runtime.chat
    chat.models = FixedRegistry(
        ScriptedModel(deltas=tuple(f"word{i} " for i in range(100)), delay=0.02)
    )
    turn = await chat.start(ChatRequest(bot=stored, question="When does support answer?"))
    events = turn.events()
    async for event in events:
        if isinstance(event, Delta):
            break
    await events.aclose()  # no await on anything else before the check

    async with app.state.runtime.db.read() as session:
        answers = (
            await session.scalars(
                select(Message).where(
                    Message.conversation_id == uuid.UUID(str(turn.conversation_id)),
                    Message.role == "assistant",
                )
            )
        ).all()
    assert [(m.id, m.error_code) for m in answers] == [(turn.answer_id, "cancelled")]
    assert answers[0].content.startswith("word0")
