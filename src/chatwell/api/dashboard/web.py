"""What every dashboard page shares: the session cookie, CSRF checks, roles and HTML rendering.

Pages are Jinja2 templates with autoescaping on, served under a strict Content-Security-Policy
(scripts only from this server, no inline script or style). A state-changing request must carry
the session's CSRF token (hidden form field ``csrf_token`` or header ``X-CSRF-Token``); the
sign-in and set-up forms, which come before any session, carry an HMAC (under the server's key,
``services.server_keys``) of a random value in a pre-session cookie: a cookie value alone, tossed
in by a sibling subdomain or a man in the middle, is no token.

Cookie names: over https both cookies are ``__Host-`` cookies (Secure, ``Path=/``, no Domain), which
no other host, subdomain or plain-http page can set or overwrite, so sign-in CSRF by cookie tossing
fails; only the ``__Host-`` names are read there. Over plain http (``http://127.0.0.1`` in
development) browsers refuse ``__Host-`` cookies, which need Secure, so the plain names are used:
there a network attacker could write any cookie anyway, and TLS is what protects a deployment.
Domain errors become an HTML error page with the status the JSON API would use; a request
without a valid session is sent to the sign-in page (or to set-up on a fresh install).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Coroutine
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pydantic import BaseModel, ValidationError

from chatwell.api.deps import runtime_of
from chatwell.api.errors import rate_limit_headers, status_of
from chatwell.api.params import whole_number
from chatwell.errors import ChatwellError, Forbidden, InvalidRequest
from chatwell.services import accounts, handoff, server_keys
from chatwell.services.accounts import SignedIn
from chatwell.storage.database import Database

SESSION_COOKIE = "chatwell_session"  # plain http (development)
PRE_SESSION_COOKIE = "chatwell_presession"
HOST_PREFIX = "__Host-"  # https: Secure, Path=/, no Domain; no other origin can set it
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_FORM_FIELDS = 150  # the bot settings form with 20 contact-form fields has ~110


class SignInRequired(Exception):
    """No valid session: the browser is sent to sign in (or to set up a fresh install)."""


@lru_cache(maxsize=1)
def templates() -> Environment:
    folder = resources.files("chatwell.web").joinpath("dashboard/templates")
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["status_label"] = handoff.status_label
    env.filters["channel_label"] = channel_label
    env.filters["markdown"] = render_markdown
    return env


CHANNEL_LABELS = {
    "chatbotiq": "Website widget",
    "native": "API",
    "openai": "OpenAI-compatible API",
    "chatiq": "ChatIQ API",
    "chatbots_v1": "Chatbots v1 API",
    "devapi": "Developer API",
    "chatbase": "Chatbase API",
    "playground": "Playground",
    "mcp": "MCP",
}


def channel_label(channel: str | None) -> str:
    """A conversation's door as a person names it (never the internal dialect code)."""
    return CHANNEL_LABELS.get(channel or "", channel or "")


def render(
    request: Request,
    name: str,
    /,
    *,
    user: SignedIn | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    token = user.csrf_token if user is not None else ""

    def csrf() -> Markup:
        return Markup('<input type="hidden" name="csrf_token" value="%s">') % token

    page = templates().get_template(name).render(request=request, user=user, csrf=csrf, **context)
    return HTMLResponse(page, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def db_of(request: Request) -> Database:
    return runtime_of(request).db


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _cookie(request: Request, name: str) -> tuple[str, str]:
    """The name and path a cookie has on this request's scheme (see the module doc)."""
    return (HOST_PREFIX + name, "/") if is_https(request) else (name, "/dashboard")


def session_cookie(request: Request) -> str | None:
    """The browser's session cookie (over https only the ``__Host-`` one counts)."""
    return request.cookies.get(_cookie(request, SESSION_COOKIE)[0])


def set_session_cookie(response: Response, request: Request, cookie: str) -> None:
    name, path = _cookie(request, SESSION_COOKIE)
    response.set_cookie(
        name,
        cookie,
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
        path=path,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    name, path = _cookie(request, SESSION_COOKIE)
    response.delete_cookie(name, path=path, httponly=True, samesite="lax", secure=is_https(request))


async def dashboard_key(request: Request) -> bytes:
    """The server's HMAC key (``services.server_keys``), read once per app."""
    key = runtime_of(request).dashboard_key
    if key is None:
        key = runtime_of(request).dashboard_key = await server_keys.server_key(db_of(request))
    return key


def _pre_session_nonce(request: Request) -> str:
    current = request.cookies.get(_cookie(request, PRE_SESSION_COOKIE)[0], "")
    return current if 20 <= len(current) <= 100 else secrets.token_urlsafe(32)


async def pre_session_form(
    request: Request, response_factory: Callable[[str], Response]
) -> Response:
    """A sign-in or set-up page: ``response_factory(form_token)`` with the pre-session cookie
    (kept if the browser has one) whose HMAC the form token is."""
    nonce = _pre_session_nonce(request)
    response = response_factory(server_keys.pre_session_token(await dashboard_key(request), nonce))
    name, path = _cookie(request, PRE_SESSION_COOKIE)
    response.set_cookie(
        name,
        nonce,
        max_age=3600,
        path=path,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


async def form_of(request: Request) -> Any:
    try:
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except Exception:  # a malformed body carries no token: treat it as such
        return {}
    request.state.dashboard_form = form  # closed (uploaded files freed) when the request ends
    return form


async def check_pre_session_csrf(request: Request) -> Any:
    form = await form_of(request)
    nonce = request.cookies.get(_cookie(request, PRE_SESSION_COOKIE)[0])
    if not server_keys.is_pre_session_token(
        await dashboard_key(request), nonce, form.get(CSRF_FIELD)
    ):
        raise Forbidden(
            "the form expired or did not come from this site; reload and try again",
            code="csrf_failed",
        )
    return form


async def current_user(request: Request) -> SignedIn:
    user = await accounts.resolve_session(db_of(request), session_cookie(request))
    if user is None:
        raise SignInRequired()
    return user


async def checked_user(
    request: Request, user: Annotated[SignedIn, Depends(current_user)]
) -> SignedIn:
    """The signed-in user of a state-changing request that carries their CSRF token."""
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        token = (await form_of(request)).get(CSRF_FIELD)
    if not _same(token, user.csrf_token):
        raise Forbidden(
            "the form expired or did not come from this site; reload and try again",
            code="csrf_failed",
        )
    return user


def require_manager(user: SignedIn) -> SignedIn:
    if not user.can_manage:
        raise Forbidden("agents can not open this page", code="insufficient_role")
    return user


async def manager(user: Annotated[SignedIn, Depends(current_user)]) -> SignedIn:
    return require_manager(user)


async def checked_manager(user: Annotated[SignedIn, Depends(checked_user)]) -> SignedIn:
    return require_manager(user)


UserDep = Annotated[SignedIn, Depends(current_user)]
CheckedUserDep = Annotated[SignedIn, Depends(checked_user)]
ManagerDep = Annotated[SignedIn, Depends(manager)]
CheckedManagerDep = Annotated[SignedIn, Depends(checked_manager)]


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


class DashboardRoute(APIRoute):
    """Turns a missing session into a redirect and domain errors into an HTML error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.method == "GET" and await accounts.needs_setup(db_of(request)):
                    return see_other("/dashboard/setup")
                if request.method == "GET":
                    return see_other("/dashboard/login")
                return render(
                    request,
                    "error.html",
                    status=401,
                    code="not_signed_in",
                    message="Your session ended. Sign in again.",
                )
            except ChatwellError as exc:
                user = await accounts.resolve_session(db_of(request), session_cookie(request))
                return render(
                    request,
                    "error.html",
                    user=user,
                    status=status_of(exc),
                    code=exc.code,
                    message=exc.message,
                    headers=rate_limit_headers(exc),
                )
            finally:
                form = getattr(request.state, "dashboard_form", None)
                if form is not None:
                    await form.close()

        return handle


def valid_input(schema: type[BaseModel], /, **values: Any) -> Any:
    """A domain input model from form values; a refusal names the first field at fault."""
    try:
        return schema(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidRequest(
            f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        ) from None


def lines_of(text: Any) -> list[str]:
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def int_or_none(value: Any) -> int | None:
    return whole_number(value)


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # Raw HTML off: a message's "<script>" stays text; links are checked in render_markdown.
    md = (
        MarkdownIt("commonmark", {"html": False})
        .enable(["table", "strikethrough"])
        .disable("image")
    )
    md.validateLink = lambda url: url.strip().lower().startswith(("http://", "https://", "mailto:"))
    return md


def render_markdown(text: str | None) -> Markup:
    """A message's Markdown as safe HTML (as the widget shows it): no raw HTML, links only to
    http(s) and mailto addresses, opened in a new tab without a referrer."""
    html = _markdown().render(text or "")
    html = html.replace("<a href=", '<a rel="noopener noreferrer nofollow" target="_blank" href=')
    return Markup(html)
