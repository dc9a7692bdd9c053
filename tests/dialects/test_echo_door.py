"""The door recipe, proved by a new door: a trivial "echo" dialect defined here (a schema, the
shared dependencies, ``open_turn`` and an encoder), mounted on a real server, answers with the
bot's answer, streams it, keeps the conversation and refuses a wrong key like every door."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from chatwell.api.deps import PrincipalDep, RuntimeDep
from chatwell.api.dialect import caller_of
from chatwell.api.encoders import failed_reply
from chatwell.api.errors import native_error
from chatwell.api.sse import frame, sse_response
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev

# ----------------------------------------------------------------------------- the echo door
echo = APIRouter()


class EchoIn(BaseModel):
    say: str
    stream: bool = False


@echo.post("/echo/{bot}")
async def echo_chat(
    bot: str, data: EchoIn, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> Any:
    opened = await open_turn(
        runtime.chat, caller_of(request, principal), door="echo", bot=bot, question=data.say
    )
    if not data.stream:
        answer = await opened.turn.collect()
        if (failed := failed_reply(answer.error, native_error)) is not None:
            return failed
        return {"echo": answer.text, "conversation": str(answer.conversation_id)}

    async def frames() -> AsyncIterator[str]:
        async for event in opened.turn.events():
            match event:
                case ev.Delta(text=text) | ev.Replace(text=text):
                    yield frame({"piece": text, "whole": isinstance(event, ev.Replace)})
                case ev.Error(code=code):
                    yield frame({"failed": code})
                case ev.Done(conversation_id=conversation):
                    yield frame({"conversation": str(conversation)})

    return sse_response(frames())


# ----------------------------------------------------------------------------- its tests


def test_the_echo_door_answers_streams_and_refuses_a_wrong_key(world: Any) -> None:
    world.app.include_router(echo)
    question = "What are your business hours?"
    with world.client(world.bot_key) as client:
        native = client.post(
            f"/v1/bots/{world.bot_slug}/chat",
            json={"message": question, "stream": False, "private": True},
        ).json()
        replied = client.post(f"/echo/{world.bot_slug}", json={"say": question})
        assert replied.status_code == 200, replied.text
        assert replied.json()["echo"] == native["answer"]
        assert "9 AM" in native["answer"]

        text, conversation = "", None
        with client.stream(
            "POST", f"/echo/{world.bot_id}", json={"say": question, "stream": True}
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    body = json.loads(line[6:])
                    assert "failed" not in body, body
                    if "piece" in body:
                        text = body["piece"] if body["whole"] else text + body["piece"]
                    conversation = body.get("conversation", conversation)
        assert text == native["answer"]
        stored = client.get(f"/v1/conversations/{conversation}").json()
        assert stored["channel"] == "echo"
        assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]

    with world.client("not-a-key") as stranger:
        refused = stranger.post(f"/echo/{world.bot_slug}", json={"say": question})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    with world.client(world.workspace_key) as client:
        missing = client.post("/echo/no-such-bot", json={"say": question})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "bot_not_found"
