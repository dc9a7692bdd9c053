"""A scripted OpenAI-compatible upstream on a real port: answers ``/v1/chat/completions`` with a
fixed text, streamed at a chosen pace (zero latency isolates chatwell's own cost in benchmarks;
a token pace models a real model). Not a mock of chatwell: it stands in for the model server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_ANSWER = "Our support team answers Monday to Friday, from nine to five [1]."


def scripted_upstream(answer: str = DEFAULT_ANSWER, *, tokens_per_second: float | None = None,
                      first_token_delay: float = 0.0, stamp: bool = False) -> Starlette:
    """``stamp``: every streamed word is replaced by ``t<CLOCK_MONOTONIC microseconds>`` taken as it
    is sent, so a client on the same machine can tell how long each token took to reach it."""
    words = [w + " " for w in answer.split(" ")]
    words[-1] = words[-1].rstrip()
    gap = 1.0 / tokens_per_second if tokens_per_second else 0.0
    served: dict[str, Any] = {"requests": 0}

    async def completions(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        served["requests"] += 1
        served["last_body"] = body  # what the model was sent (a test may look at the prompt)
        model = body.get("model", "scripted")
        usage = {"prompt_tokens": 100, "completion_tokens": len(words), "total_tokens": 100 + len(words)}
        if not body.get("stream"):
            await asyncio.sleep(first_token_delay + gap * len(words))
            return JSONResponse({"id": "cmpl-1", "object": "chat.completion", "created": int(time.time()),
                                 "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                                              "message": {"role": "assistant", "content": answer}}],
                                 "usage": usage})

        async def stream() -> AsyncIterator[str]:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
                return "data: " + json.dumps({"id": "cmpl-1", "object": "chat.completion.chunk",
                                              "created": int(time.time()), "model": model,
                                              "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"

            if first_token_delay:
                await asyncio.sleep(first_token_delay)
            yield chunk({"role": "assistant", "content": ""})
            for word in words:
                yield chunk({"content": f"t{time.monotonic_ns() // 1000} " if stamp else word})
                if gap:
                    await asyncio.sleep(gap)
            yield chunk({}, "stop")
            yield "data: " + json.dumps({"id": "cmpl-1", "object": "chat.completion.chunk", "created": int(time.time()),
                                         "model": model, "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "tests"}]})

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"]),
                            Route("/v1/models", models)])
    app.state.served = served
    return app


if __name__ == "__main__":  # python -m tests.upstream --port 9000 [--tps 20] (benchmarks run it as a process)
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tps", type=float, default=0.0, help="tokens per second; 0: as fast as possible")
    parser.add_argument("--words", type=int, default=0, help="answer length in words (default: the fixed answer)")
    parser.add_argument("--stamp", action="store_true", help="stream send-time stamps instead of the words")
    args = parser.parse_args()
    text = " ".join(f"word{i}" for i in range(args.words)) + " [1]." if args.words else DEFAULT_ANSWER
    uvicorn.run(scripted_upstream(text, tokens_per_second=args.tps or None, stamp=args.stamp), host="127.0.0.1",
                port=args.port,
                log_level="warning", backlog=4096)
