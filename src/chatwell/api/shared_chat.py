"""``POST /api/v1/chat``: one path, two dialects, told apart by the body.

A ``messages`` array is Chatbase; a ``message`` string is the developer API.
Errors take the chosen dialect's shape; a body that is neither (not JSON, not an object, or with
neither field) gets a 400 in a shape both clients read: ``{"success": false, "error", "code",
"message"}``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chatwell.api.chatbase import routes as chatbase
from chatwell.api.devapi import routes as devapi
from chatwell.api.errors import ErrorDoc, rate_limit_headers, status_of
from chatwell.errors import ChatwellError, InvalidRequest

router = APIRouter(tags=["devapi", "chatbase"])
PATH = "/api/v1/chat"


def either_error(error: ChatwellError, status: int) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": error.message, "code": error.code, "message": error.message},
        status_code=status,
        headers=rate_limit_headers(error),
    )


def _render(fmt: Any, error: ChatwellError) -> JSONResponse:
    response = fmt(error, status_of(error))
    for name, value in rate_limit_headers(error).items():
        response.headers.setdefault(name, value)
    return response


# Chatbase's shape for a Chatbase body, the developer API's for one of its own, and a shape both
# read (the developer API's plus ``message``) for a body that is neither.
ERROR_DOC = ErrorDoc("ChatError", {"anyOf": [chatbase.ERROR_DOC.schema, devapi.ERROR_DOC.schema]})


BODY_SCHEMA = {
    "oneOf": [
        {"$ref": "#/components/schemas/ChatbaseChatIn"},
        {"$ref": "#/components/schemas/DevChatIn"},
    ]
}


@router.post(
    PATH,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BODY_SCHEMA}}}
    },
    responses={200: {"content": {"text/event-stream": {}, "text/plain": {}}}},
)
async def chat(request: Request) -> Any:
    raw = await request.body()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        return _render(
            either_error, InvalidRequest("request body is not valid JSON", code="malformed_json")
        )
    if isinstance(payload, dict) and "messages" in payload:
        handler, fmt = chatbase.chat, chatbase.chatbase_error
    elif isinstance(payload, dict) and "message" in payload:
        handler, fmt = devapi.chat, devapi.devapi_error
    else:
        return _render(
            either_error,
            InvalidRequest(
                "expected a JSON object with `messages` (Chatbase) or `message` (developer API)",
                code="invalid_request",
            ),
        )
    try:
        return await handler(payload, request)
    except ChatwellError as error:
        return _render(fmt, error)
