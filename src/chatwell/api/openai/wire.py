"""What the OpenAI doors (chat completions, completions, Responses) share: the error shape, the
rate-limit headers, the bot a ``model`` names, and the split of a client's messages into the chat
engine's question, history, caller instructions and tool turns.

Parameters are honoured or refused: what chatwell can not relay (``logprobs``, ``n`` > 1, audio)
and what the bot's model can not do (``ChatService.check_options``: tools and JSON formats on the
offline answerer) answer 400 ``unsupported_parameter`` naming ``param``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from chatwell.api.deps import runtime_of
from chatwell.api.encoders import failed_reply
from chatwell.api.errors import ErrorDoc, rate_limit_headers
from chatwell.domain import events as ev
from chatwell.domain.auth import Principal
from chatwell.domain.events import HistoryTurn
from chatwell.errors import ChatwellError, InvalidRequest, NotFound, RateLimited
from chatwell.limits.service import Decision
from chatwell.llm.base import ModelMessage
from chatwell.services import bots
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
}
OUT_OF_CREDIT = frozenset({"insufficient_credits", "insufficient_quota"})

ERROR_DOC = ErrorDoc(
    "OpenAIError",
    {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    },
)


def param_of(error: ChatwellError) -> str | None:
    """The request parameter an error is about: named by the error, or the first invalid field."""
    if isinstance(error.details.get("param"), str):
        return error.details["param"]
    fields = error.details.get("fields") or []
    return fields[0]["field"] or None if fields else None


def openai_error(error: ChatwellError, status: int) -> JSONResponse:
    """OpenAI's error body. An empty workspace is 429 ``insufficient_quota`` as OpenAI answers it,
    with ``x-should-retry: false`` (the SDKs retry other 429s, and more money won't come by then)."""
    headers = rate_limit_headers(error)
    kind = ERROR_TYPES.get(status, "server_error")
    code = error.code
    if code in OUT_OF_CREDIT:
        status, kind, code = 429, "insufficient_quota", "insufficient_quota"
        headers["x-should-retry"] = "false"
    if isinstance(error, RateLimited):
        headers.update(openai_limit_headers(error.limit, 0, error.reset_at))
    return JSONResponse(
        {"error": {"message": error.message, "type": kind, "param": param_of(error), "code": code}},
        status_code=status,
        headers=headers,
    )


def _duration(seconds: int) -> str:
    """OpenAI's reset format: ``1s``, ``6m0s``, ``1h2m3s``."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{secs}s"


def openai_limit_headers(
    limit: int | None, remaining: int | None, reset_at: int | None
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if limit is not None:
        headers["x-ratelimit-limit-requests"] = str(limit)
        headers["x-ratelimit-remaining-requests"] = str(remaining if remaining is not None else 0)
    if reset_at is not None:
        headers["x-ratelimit-reset-requests"] = _duration(math.ceil(reset_at - time.time()))
    return headers


def decision_headers(decision: Decision | None) -> dict[str, str]:
    if decision is None:
        return {}
    return {
        **decision.headers(),
        **openai_limit_headers(decision.limit, decision.remaining, decision.reset_at),
    }


async def bot_of_model(db: Database, principal: Principal, model: str) -> Bot:
    try:
        return await bots.get_bot(db, principal=principal, ref=model)
    except NotFound:
        raise NotFound(
            f"The model '{model}' does not exist or you do not have access to it.",
            code="model_not_found",
            details={"param": "model"},
        ) from None


async def read_headers(request: Request, principal: Principal, bot: Bot | None) -> dict[str, str]:
    """The rate-limit headers of a read (models, a stored response): the key's chat figures for
    ``bot``, as the next chat request would find them; a read counts against nothing."""
    return decision_headers(await runtime_of(request).limits.keyed_figures(principal, bot))


# A JSON reply, or with "stream": true an event stream (documented, so clients and fuzzers know).
STREAMS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/event-stream": {}}}
}


async def error_headers(request: Request) -> dict[str, str]:
    """An error's rate-limit headers, once the key is known: its figures over every bot (the
    request may not have named one yet, or named one it cannot reach)."""
    principal = getattr(request.state, "principal", None)
    return await read_headers(request, principal, None) if principal is not None else {}


def unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{param}' is not supported: {what}",
        code="unsupported_parameter",
        details={"param": param},
    )


def split_messages(
    messages: Sequence[ModelMessage], *, param: str = "messages"
) -> tuple[str, list[HistoryTurn], str, tuple[ModelMessage, ...]]:
    """(caller instructions, history, question, tool turns) of a client's conversation.

    System and developer messages become the caller's instructions; the last user message is the
    question; what follows it must be the assistant's tool calls and their results (``tool``
    messages), sent back to the model after the question. Earlier tool exchanges are not history."""
    instructions = "\n\n".join(
        m.content for m in messages if m.role == "system" and m.content.strip()
    )
    talk = [m for m in messages if m.role != "system"]
    last_user = max((i for i, m in enumerate(talk) if m.role == "user"), default=None)
    if last_user is None or not talk[last_user].content.strip():
        raise InvalidRequest(
            "the conversation must contain a non-empty user message",
            code="invalid_request",
            details={"param": param},
        )
    tail = tuple(talk[last_user + 1 :])
    if tail and (tail[-1].role != "tool" or any(m.role == "user" for m in tail)):
        raise InvalidRequest(
            "after the last user message only the assistant's tool calls and their results "
            "(tool messages) may follow",
            code="invalid_request",
            details={"param": param},
        )
    history = [
        HistoryTurn("assistant" if m.role == "assistant" else "user", m.content)
        for m in talk[:last_user]
        if m.role in ("user", "assistant") and m.content
    ]
    return instructions, history, talk[last_user].content, tail


def thread_key(principal: Principal, user: str | None) -> str:
    """Whose resent history may continue a stored conversation: this key, and the client's user."""
    return f"openai:{principal.key_id}:{user or ''}"


def usage_counts(usage: ev.Usage | None) -> tuple[int, int]:
    return (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)


def failed_turn(error: ev.Error, headers: Mapping[str, str]) -> JSONResponse:
    """The reply for a turn that ended in an error event (the chat engine's codes to statuses)."""
    reply = failed_reply(error, openai_error, headers=headers)
    assert reply is not None
    return reply
