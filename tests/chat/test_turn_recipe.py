"""The pieces every door shares: a turn summed up (``collect``), a client's history roles mapped
once (``client_history``) and a failed turn converted to the door's error once (``failed_reply``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse

from chatwell.api.encoders import failed_reply
from chatwell.chat.answer import collect
from chatwell.chat.turns import client_history
from chatwell.domain import events as ev
from chatwell.domain.events import HistoryTurn
from chatwell.errors import ChatwellError

CONVERSATION, MESSAGE = uuid.uuid4(), uuid.uuid4()
CITATION = ev.Citation(1, uuid.uuid4(), "Hours", None, None, 0.9, "9 to 5")


async def stream(*events: ev.ChatEvent) -> AsyncIterator[ev.ChatEvent]:
    for event in events:
        yield event


def test_collect_sums_up_a_turn_and_sees_every_event_first() -> None:
    seen: list[ev.ChatEvent] = []

    async def watch(event: ev.ChatEvent) -> None:
        seen.append(event)

    events = (
        ev.Status("retrieving"),
        ev.Notice("offline_answerer", "offline", level="info"),
        ev.Delta("We open "),
        ev.Delta("at ten [1]"),
        ev.Replace("filtered"),
        ev.Delta(" and more"),
        ev.Citations((CITATION,)),
        ev.Usage(10, 4, "offline"),
        ev.Done(CONVERSATION, MESSAGE, answered=True, finish_reason="stop"),
    )
    answer = asyncio.run(collect(stream(*events), CONVERSATION, watch))
    assert seen == list(events)
    assert answer.text == "filtered and more"  # a Replace restarts the text
    assert answer.citations == (CITATION,)
    assert [n.code for n in answer.notices] == ["offline_answerer"]
    assert answer.usage == ev.Usage(10, 4, "offline")
    assert (answer.conversation_id, answer.message_id, answer.answered) == (
        CONVERSATION,
        MESSAGE,
        True,
    )
    assert answer.error is None and answer.finish_reason == "stop"


def test_collect_keeps_what_came_before_an_error() -> None:
    answer = asyncio.run(
        collect(stream(ev.Delta("partial"), ev.Error("model_error", "upstream broke")), None)
    )
    assert answer.text == "partial"
    assert answer.error == ev.Error("model_error", "upstream broke")
    assert answer.message_id is None and answer.answered is None


def test_client_history_maps_every_doors_roles_once() -> None:
    turns = client_history(
        [
            ("system", "be nice"),
            ("user", "hi"),
            ("assistant", "hello"),
            ("apiMessage", "from flowise"),
            ("userMessage", "to flowise"),
            ("ai", "an ai turn"),
            (None, "no role"),
            ("user", ""),
            ("developer", "instructions"),
            HistoryTurn("assistant", "already mapped"),
        ]
    )
    assert turns == [
        HistoryTurn("user", "hi"),
        HistoryTurn("assistant", "hello"),
        HistoryTurn("assistant", "from flowise"),
        HistoryTurn("user", "to flowise"),
        HistoryTurn("assistant", "an ai turn"),
        HistoryTurn("user", "no role"),
        HistoryTurn("assistant", "already mapped"),
    ]


def shape(error: ChatwellError, status: int) -> JSONResponse:
    return JSONResponse({"code": error.code, "message": error.message}, status_code=status)


def test_a_failed_turn_becomes_the_doors_error_once() -> None:
    assert failed_reply(None, shape) is None
    busy = failed_reply(ev.Error("database_busy", "busy"), shape, headers={"X-Door": "1"})
    assert busy is not None and busy.status_code == 503
    assert busy.headers["Retry-After"] == "1" and busy.headers["X-Door"] == "1"
    filtered = failed_reply(ev.Error("content_filtered", "blocked"), shape)
    assert filtered is not None and filtered.status_code == 400
    assert filtered.body == b'{"code":"content_filtered","message":"blocked"}'
    model = failed_reply(ev.Error("model_error", "broke"), shape)
    assert model is not None and model.status_code == 502
    chatiq = failed_reply(ev.Error("model_error", "broke"), shape, default=500)
    assert chatiq is not None and chatiq.status_code == 500
    credit = failed_reply(
        ev.Error("service_unavailable", "no credit"), shape, statuses={"service_unavailable": 402}
    )
    assert credit is not None and credit.status_code == 402
