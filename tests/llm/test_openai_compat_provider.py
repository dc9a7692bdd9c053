"""The OpenAI-compatible adapter against a scripted upstream served by a real uvicorn: retries
before the first token, a clear error after it, malformed chunks, usage fallback."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from chatwell.llm.base import ModelDelta, ModelError, ModelMessage, ModelRequest, ModelUsage
from chatwell.llm.openai_compat import OpenAICompatibleModel, env_proxy


class Upstream:
    """Answers /v1/chat/completions from a script: one entry per call."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.peers: list[Any] = []  # the client address of each call: one per TCP connection
        self.authorization: list[str | None] = []
        self.left = (
            threading.Event()
        )  # an "endless" answer saw its reader disconnect (set on the server's thread)

    async def completions(self, request: Request) -> Any:
        self.calls.append(await request.json())
        self.peers.append(request.client)
        self.authorization.append(request.headers.get("authorization"))
        action = self.script.pop(0) if self.script else "ok"
        if action in ("429", "503"):
            return JSONResponse({"error": {"message": "busy"}}, status_code=int(action))
        if action == "400":
            return JSONResponse({"error": {"message": "bad"}}, status_code=400)

        def chunk(word: str) -> str:
            return "data: " + json.dumps(
                {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }
            )

        if action == "burst":  # every chunk in one write: one read brings them all
            return StreamingResponse(
                iter(
                    ["".join(chunk(w) + "\n\n" for w in ("Hello ", "world")) + "data: [DONE]\n\n"]
                ),
                media_type="text/event-stream",
            )
        if action == "no-newline":  # the last line ends the body without its newline
            return StreamingResponse(
                iter([chunk("Hello ") + "\n\n", chunk("world")]), media_type="text/event-stream"
            )
        if action == "one-long-line":  # 2 MiB without a newline after a first token
            return StreamingResponse(
                iter([chunk("Hello ") + "\n\n", *["x" * 65536] * 32]),
                media_type="text/event-stream",
            )
        if action == "endless":  # a token every 20 ms for 10 s, unless the reader leaves

            async def endless():  # type: ignore[no-untyped-def]
                completed = False
                try:
                    for i in range(500):
                        if await request.is_disconnected():
                            break
                        yield chunk(f"w{i} ") + "\n\n"
                        await asyncio.sleep(0.02)
                    else:
                        completed = True
                finally:  # left by a break, or cancelled by Starlette on the disconnect
                    if not completed:
                        self.left.set()

            return StreamingResponse(endless(), media_type="text/event-stream")

        async def body():  # type: ignore[no-untyped-def]
            for word in ("Hello ", "world"):
                yield (
                    "data: "
                    + json.dumps(
                        {
                            "id": "c",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": "m",
                            "choices": [
                                {"index": 0, "delta": {"content": word}, "finish_reason": None}
                            ],
                        }
                    )
                    + "\n\n"
                )
                await asyncio.sleep(0.01)
                if action == "garbage":
                    yield "data: {not json\n\n"
                    return
            if action == "ok":
                yield (
                    "data: "
                    + json.dumps(
                        {
                            "id": "c",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": "m",
                            "choices": [],
                            "usage": {
                                "prompt_tokens": 7,
                                "completion_tokens": 2,
                                "total_tokens": 9,
                            },
                        }
                    )
                    + "\n\n"
                )
            yield "data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")


@pytest.fixture
def upstream(live_server) -> tuple[Upstream, str]:  # type: ignore[no-untyped-def]
    fake = Upstream()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    return fake, live_server.start(app) + "/v1"


def request() -> ModelRequest:
    return ModelRequest(
        messages=[ModelMessage("user", "hi")], model="m", max_tokens=5, temperature=0.2
    )


async def run(model: OpenAICompatibleModel) -> list[Any]:
    try:
        return [event async for event in model.stream(request())]
    finally:
        await model.aclose()


async def test_streams_text_and_usage(upstream: tuple[Upstream, str]) -> None:
    fake, base = upstream
    events = await run(OpenAICompatibleModel(base_url=base, model="m"))
    assert [e.text for e in events if isinstance(e, ModelDelta)] == ["Hello ", "world"]
    assert events[-1] == ModelUsage(7, 2)
    assert fake.calls[0]["max_tokens"] == 5 and fake.calls[0]["stream"] is True


async def test_consecutive_answers_share_one_connection(upstream: tuple[Upstream, str]) -> None:
    """A stream read to its ``[DONE]`` is read to the end of the response too, so the connection
    goes back to the pool (stopping at ``[DONE]`` closed it: a new TCP connection per answer)."""
    fake, base = upstream
    model = OpenAICompatibleModel(base_url=base, model="m")
    try:
        for _ in range(3):
            events = [event async for event in model.stream(request())]
            assert events[-1] == ModelUsage(7, 2)
    finally:
        await model.aclose()
    assert len(fake.peers) == 3 and len(set(fake.peers)) == 1, fake.peers


async def test_retries_429_and_5xx_before_the_first_token(upstream: tuple[Upstream, str]) -> None:
    fake, base = upstream
    fake.script = ["429", "503", "ok"]
    events = await run(OpenAICompatibleModel(base_url=base, model="m", max_retries=2, backoff=0.01))
    assert len(fake.calls) == 3 and isinstance(events[-1], ModelUsage)
    fake.script = ["503", "503", "503"]
    with pytest.raises(ModelError) as failed:
        await run(OpenAICompatibleModel(base_url=base, model="m", max_retries=2, backoff=0.01))
    assert failed.value.code == "upstream_error" and failed.value.status == 503
    fake.script = ["400"]
    calls = len(fake.calls)
    with pytest.raises(ModelError):
        await run(OpenAICompatibleModel(base_url=base, model="m", max_retries=2, backoff=0.01))
    assert len(fake.calls) == calls + 1  # a 400 is not retried


async def test_malformed_chunk_after_first_token_is_an_error_not_a_retry(
    upstream: tuple[Upstream, str],
) -> None:
    fake, base = upstream
    fake.script = ["garbage"]
    seen: list[str] = []
    model = OpenAICompatibleModel(base_url=base, model="m")
    with pytest.raises(ModelError) as failed:
        async for event in model.stream(request()):
            if isinstance(event, ModelDelta):
                seen.append(event.text)
    await model.aclose()
    assert seen == ["Hello "] and failed.value.code == "upstream_error" and len(fake.calls) == 1


async def test_an_endless_line_is_a_malformed_stream(upstream: tuple[Upstream, str]) -> None:
    fake, base = upstream
    fake.script = ["one-long-line"]
    with pytest.raises(ModelError) as failed:
        await run(OpenAICompatibleModel(base_url=base, model="m"))
    assert failed.value.code == "upstream_error" and "malformed" in failed.value.message


async def test_missing_usage_is_counted_locally(upstream: tuple[Upstream, str]) -> None:
    fake, base = upstream
    fake.script = ["no-usage"]
    events = await run(OpenAICompatibleModel(base_url=base, model="m"))
    assert isinstance(events[-1], ModelUsage) and events[-1].completion_tokens > 0


async def test_unreachable_server_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    model = OpenAICompatibleModel(
        base_url="http://user:s3cret@127.0.0.1:9/v1?key=k3y", model="m", max_retries=1, backoff=0.01
    )
    with caplog.at_level("WARNING", logger="chatwell.llm"), pytest.raises(ModelError) as failed:
        await run(model)
    assert failed.value.code == "upstream_unavailable"
    assert "127.0.0.1:9" in caplog.text  # the operator learns which server, never its secrets
    assert "s3cret" not in caplog.text and "k3y" not in caplog.text


async def test_what_one_read_brings_is_one_delta(upstream: tuple[Upstream, str]) -> None:
    """Chunks that arrive together (a model server faster than the relay, or a relay behind)
    become one delta: fewer, larger events instead of a backlog of single tokens."""
    fake, base = upstream
    fake.script = ["burst"]
    events = await run(OpenAICompatibleModel(base_url=base, model="m"))
    assert [e.text for e in events if isinstance(e, ModelDelta)] == ["Hello world"]
    assert isinstance(events[-1], ModelUsage)


async def test_a_last_line_without_its_newline_is_read(upstream: tuple[Upstream, str]) -> None:
    fake, base = upstream
    fake.script = ["no-newline"]
    events = await run(OpenAICompatibleModel(base_url=base, model="m"))
    assert "".join(e.text for e in events if isinstance(e, ModelDelta)) == "Hello world"


async def test_closing_the_stream_disconnects_the_model_server(
    upstream: tuple[Upstream, str],
) -> None:
    """A visitor who leaves closes the answer's iterator; the model server must see the
    connection go, or it generates (and bills) the rest of the answer for nobody."""
    fake, base = upstream
    fake.script = ["endless", "ok"]
    model = OpenAICompatibleModel(base_url=base, model="m")
    try:
        stream = model.stream(request())
        first = await anext(stream)
        assert isinstance(first, ModelDelta) and first.text.startswith("w0")
        await stream.aclose()
        assert await asyncio.to_thread(fake.left.wait, 5)
        events = [
            event async for event in model.stream(request())
        ]  # the pool still serves the next answer
        assert isinstance(events[-1], ModelUsage)
    finally:
        await model.aclose()


def test_the_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://api.openai.com/v1/chat/completions") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.lan")
    assert env_proxy("https://api.openai.com/v1/chat/completions") == "http://proxy.internal:3128"
    assert env_proxy("http://api.openai.com/v1/chat/completions") is None  # no HTTP_PROXY
    assert env_proxy("https://llm.lan/v1/chat/completions") is None
    assert env_proxy("http://localhost:8080/v1/chat/completions") is None
    assert (
        OpenAICompatibleModel(base_url="https://api.openai.com/v1", model="m").proxy
        == "http://proxy.internal:3128"
    )
    monkeypatch.setenv("ALL_PROXY", "http://all.internal:3128")
    assert env_proxy("http://api.openai.com/v1/chat/completions") == "http://all.internal:3128"


async def test_the_key_or_the_urls_credentials_authorize(upstream: tuple[Upstream, str]) -> None:
    fake, base = upstream
    await run(OpenAICompatibleModel(base_url=base, model="m", api_key="sk-test"))
    with_credentials = base.replace("http://", "http://gate%40way:p%3Ass@")
    await run(OpenAICompatibleModel(base_url=with_credentials, model="m"))
    await run(OpenAICompatibleModel(base_url=with_credentials, model="m", api_key="sk-test"))
    basic = "Basic " + base64.b64encode(b"gate@way:p:ss").decode()
    assert fake.authorization == ["Bearer sk-test", basic, "Bearer sk-test"]
