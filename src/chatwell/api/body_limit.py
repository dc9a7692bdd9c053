"""Refuse request bodies over their limit before they are buffered (413, in the dialect's shape),
and NUL characters anywhere they would reach the database (400 ``invalid_characters``).

A declared Content-Length over the limit is refused at once; a chunked body is counted as it
arrives and cut off when it passes the limit. Multipart uploads get the larger upload limit.
PostgreSQL can store no NUL in text or JSON, and nothing legitimate sends one, so a ``%00`` in the
path or query, or a ``\u0000`` escape in a JSON body, is refused the same way on every engine.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatwell.api.errors import ErrorFormats
from chatwell.errors import ChatwellError, InvalidRequest, PayloadTooLarge

NUL_ESCAPE = b"\\u0000"


def _nul_error() -> InvalidRequest:
    return InvalidRequest(
        "the request contains a NUL character, which is not accepted", code="invalid_characters"
    )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int, formats: ErrorFormats):
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit
        self.formats = formats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            await self._render(scope, receive, send, _nul_error())
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        scan_json = "json" in content_type
        limit = self.upload_limit if content_type.startswith("multipart/") else self.json_limit
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False
            if too_big:
                await self._refuse(scope, receive, send, limit)
                return
        received = 0
        refusal: ChatwellError | None = None
        response_started = False
        tail = b""

        async def limited_receive() -> Message:
            nonlocal received, refusal, tail
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    refusal = PayloadTooLarge(_message(limit), details={"limit_bytes": limit})
                    raise refusal
                if scan_json:
                    window = tail + body
                    if NUL_ESCAPE in window.lower():
                        refusal = _nul_error()
                        raise refusal
                    tail = window[-(len(NUL_ESCAPE) - 1) :]
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            # Whatever the app made of the interrupted body (a framework may turn our exception
            # into its own 400), the caller gets the 413.
            if refusal is not None:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except (PayloadTooLarge, InvalidRequest) as exc:
            if exc is not refusal:
                raise
        if refusal is not None and not response_started:
            await self._render(scope, receive, send, refusal)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        await self._render(
            scope, receive, send, PayloadTooLarge(_message(limit), details={"limit_bytes": limit})
        )

    async def _render(
        self, scope: Scope, receive: Receive, send: Send, error: ChatwellError
    ) -> None:
        response = self.formats.render(Request(scope), error)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _message(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"
