"""The Anthropic adapter through the official SDK against a scripted Messages API upstream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from chatwell.llm.anthropic import AnthropicModel
from chatwell.llm.base import (
    ModelDelta,
    ModelError,
    ModelImage,
    ModelMessage,
    ModelRequest,
    ModelUsage,
)


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


class Upstream:
    def __init__(self) -> None:
        self.script: list[str] = []
        self.calls: list[dict[str, Any]] = []

    async def messages(self, request: Request) -> Any:
        self.calls.append(await request.json())
        action = self.script.pop(0) if self.script else "ok"
        if action == "529":
            return JSONResponse(
                {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
                status_code=529,
            )

        async def body():  # type: ignore[no-untyped-def]
            yield sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "model": "claude-x",
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 11, "output_tokens": 0},
                    },
                },
            )
            yield sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for word in ("Bonjour ", "[1]"):
                yield sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word},
                    },
                )
            yield sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 3},
                },
            )
            yield sse("message_stop", {"type": "message_stop"})

        return StreamingResponse(body(), media_type="text/event-stream")


@pytest.fixture
def upstream(live_server) -> tuple[Upstream, str]:  # type: ignore[no-untyped-def]
    fake = Upstream()
    app = Starlette(routes=[Route("/v1/messages", fake.messages, methods=["POST"])])
    return fake, live_server.start(app)


async def collect(model: AnthropicModel, request: ModelRequest) -> list[Any]:
    try:
        return [event async for event in model.stream(request)]
    finally:
        await model.aclose()


async def test_streams_text_and_usage_with_system_and_image(upstream: tuple[Upstream, str]) -> None:
    fake, base = upstream
    request = ModelRequest(
        messages=[
            ModelMessage("system", "Be kind."),
            ModelMessage("user", "What is this?", image=ModelImage("aGk=", "image/png")),
        ],
        model="claude-x",
        temperature=1.5,
    )
    events = await collect(AnthropicModel(model="claude-x", api_key="k", base_url=base), request)
    assert [e.text for e in events if isinstance(e, ModelDelta)] == ["Bonjour ", "[1]"]
    assert events[-1] == ModelUsage(11, 3)
    sent = fake.calls[0]
    assert (
        sent["system"] == "Be kind." and sent["temperature"] == 1.0 and sent["max_tokens"] == 1024
    )
    assert sent["messages"][0]["content"][0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "aGk="},
    }


async def test_overloaded_is_retried_then_reported(upstream: tuple[Upstream, str]) -> None:
    fake, base = upstream
    fake.script = ["529", "ok"]
    request = ModelRequest(messages=[ModelMessage("user", "hi")], model="claude-x")
    events = await collect(
        AnthropicModel(model="claude-x", api_key="k", base_url=base, backoff=0.01), request
    )
    assert len(fake.calls) == 2 and isinstance(events[-1], ModelUsage)
    fake.script = ["529", "529", "529"]
    with pytest.raises(ModelError) as failed:
        await collect(
            AnthropicModel(model="claude-x", api_key="k", base_url=base, backoff=0.01), request
        )
    assert failed.value.status == 529
