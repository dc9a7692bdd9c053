"""The website widget's files: ``/widget.js`` and the shareable full-page chat ``/chat/{bot_slug}``.

The script is read once and served with an ETag and a short public cache lifetime (a changed
widget reaches sites within minutes; unchanged ones revalidate with a 304). The full page is a
tiny HTML shell that loads the same script in ``page`` mode, under a strict Content-Security-Policy.
Whether a page may show a bot is decided by the public API (the bot's allowed domains), not here.
"""

from __future__ import annotations

import hashlib
import html
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from chatwell.api.deps import runtime_of
from chatwell.services import bots

router = APIRouter(tags=["widget"])
CACHE_SECONDS = 300
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' https: data:; base-uri 'none'; form-action 'none'; frame-ancestors *"
)


@lru_cache(maxsize=1)
def widget_source() -> tuple[bytes, str]:
    data = resources.files("chatwell.web").joinpath("widget/widget.js").read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


@router.get(
    "/widget.js",
    include_in_schema=True,
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}}},
)
async def widget_js(request: Request) -> Response:
    data, etag = widget_source()
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={CACHE_SECONDS}",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="application/javascript; charset=utf-8", headers=headers)


@router.get("/chat/{bot_slug}", response_class=HTMLResponse)
async def chat_page(bot_slug: str, request: Request) -> HTMLResponse:
    bot = await bots.get_public_bot(runtime_of(request).db, ref=bot_slug)
    title = html.escape(bot.name)
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>html,body{{margin:0;height:100%;background:#f9fafb}}</style>
</head>
<body>
<script src="/widget.js" data-bot-id="{html.escape(str(bot.id))}" data-mode="page" async></script>
<noscript>This chat needs JavaScript.</noscript>
</body>
</html>
"""
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": PAGE_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
