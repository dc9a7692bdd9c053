"""Refuse request bodies over their limit before they are buffered (413, in the dialect's shape).

A declared Content-Length over the limit is refused at once; a chunked body is counted as it
arrives and cut off when it passes the limit. Multipart uploads get the larger upload limit.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatwell.api.errors import ErrorFormats
from chatwell.errors import PayloadTooLarge


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
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
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
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise PayloadTooLarge(_message(limit), details={"limit_bytes": limit})
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            # Whatever the app made of the interrupted body (a framework may turn our exception
            # into its own 400), the caller gets the 413.
            if exceeded:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLarge:
            pass
        if exceeded and not response_started:
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        error = PayloadTooLarge(_message(limit), details={"limit_bytes": limit})
        response = self.formats.render(Request(scope), error)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _message(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"
