"""A scripted OpenAI-compatible upstream on a real port: answers ``/v1/chat/completions`` with a
fixed text, streamed at a chosen pace (zero latency isolates chatwell's own cost in benchmarks;
a token pace models a real model). Not a mock of chatwell: it stands in for the model server.

Offered ``tools`` (and no tool result yet), it calls one: the one ``tool_choice`` names, else the
first, with ``structured`` as arguments (or a value made from the tool's JSON schema). Asked for
``response_format`` JSON, it answers ``structured`` (or a value made from the schema) as JSON.
Every request body is kept in ``app.state.bodies`` so a test can see what reached the model."""

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


def example_of(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A small value that fits a JSON schema (objects, arrays, scalars, enums, $ref, anyOf)."""
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return example_of(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_of(options[0], defs)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: example_of(sub, defs) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example_of(schema.get("items", {"type": "string"}), defs)]
    return {"string": "Norway", "integer": 4, "number": 4.0, "boolean": True, "null": None}[kind]


def scripted_upstream(
    answer: str = DEFAULT_ANSWER,
    *,
    tokens_per_second: float | None = None,
    first_token_delay: float = 0.0,
    stamp: bool = False,
    structured: dict[str, Any] | None = None,
) -> Starlette:
    """``stamp``: every streamed word is replaced by ``t<CLOCK_MONOTONIC microseconds>`` taken as it
    is sent, so a client on the same machine can tell how long each token took to reach it."""
    words = [w + " " for w in answer.split(" ")]
    words[-1] = words[-1].rstrip()
    gap = 1.0 / tokens_per_second if tokens_per_second else 0.0
    served: dict[str, Any] = {"requests": 0}
    bodies: list[dict[str, Any]] = []

    def tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
        tools = body.get("tools") or []
        messages = body.get("messages") or []
        choice = body.get("tool_choice")
        if not tools or choice == "none" or (messages and messages[-1].get("role") == "tool"):
            return None
        name = (
            choice["function"]["name"] if isinstance(choice, dict) else tools[0]["function"]["name"]
        )
        tool = next(t for t in tools if t["function"]["name"] == name)
        arguments = (
            structured
            if structured is not None
            else example_of(tool["function"].get("parameters") or {})
        )
        return {
            "id": f"call_{served['requests']}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }

    def json_text(body: dict[str, Any]) -> str | None:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_object":
            return json.dumps(
                structured if structured is not None else {"country": "Norway", "days": 4}
            )
        if fmt.get("type") == "json_schema":
            return json.dumps(
                structured
                if structured is not None
                else example_of(fmt["json_schema"].get("schema") or {})
            )
        return None

    async def completions(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        served["requests"] += 1
        bodies.append(body)
        served["last_body"] = body  # what the model was sent (a test may look at the prompt)
        model = body.get("model", "scripted")
        call = tool_call(body)
        text = json_text(body) if call is None else None
        pieces = words if text is None and call is None else ([text] if text else [])
        finish = "tool_calls" if call else "stop"
        usage = {
            "prompt_tokens": 100,
            "completion_tokens": len(pieces) or 1,
            "total_tokens": 100 + (len(pieces) or 1),
        }
        if not body.get("stream"):
            await asyncio.sleep(first_token_delay + gap * len(pieces))
            message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces) or None}
            if call:
                message["tool_calls"] = [call]
            return JSONResponse(
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                    "usage": usage,
                }
            )

        async def stream() -> AsyncIterator[str]:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
                return (
                    "data: "
                    + json.dumps(
                        {
                            "id": "cmpl-1",
                            "object": "chat.completion.chunk",
                            "created": int(time.time()),
                            "model": model,
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        }
                    )
                    + "\n\n"
                )

            if first_token_delay:
                await asyncio.sleep(first_token_delay)
            yield chunk({"role": "assistant", "content": ""})
            for word in pieces:
                yield chunk({"content": f"t{time.monotonic_ns() // 1000} " if stamp else word})
                if gap:
                    await asyncio.sleep(gap)
            if call:  # in two pieces, as OpenAI streams them: the name first, then the arguments
                arguments = call["function"]["arguments"]
                yield chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
                half = len(arguments) // 2
                for part in (arguments[:half], arguments[half:]):
                    yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            yield chunk({}, finish)
            yield (
                "data: "
                + json.dumps(
                    {
                        "id": "cmpl-1",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
                + "\n\n"
            )
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "tests"}]}
        )

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models),
        ]
    )
    app.state.served = served
    app.state.bodies = bodies
    return app


if (
    __name__ == "__main__"
):  # python -m tests.upstream --port 9000 [--tps 20] (benchmarks run it as a process)
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--tps", type=float, default=0.0, help="tokens per second; 0: as fast as possible"
    )
    parser.add_argument(
        "--words", type=int, default=0, help="answer length in words (default: the fixed answer)"
    )
    parser.add_argument(
        "--stamp", action="store_true", help="stream send-time stamps instead of the words"
    )
    args = parser.parse_args()
    text = (
        " ".join(f"word{i}" for i in range(args.words)) + " [1]." if args.words else DEFAULT_ANSWER
    )
    uvicorn.run(
        scripted_upstream(text, tokens_per_second=args.tps or None, stamp=args.stamp),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        backlog=4096,
    )
