"""Dashboard accounts: first-owner set-up, sign-in, sign-out, workspace members (add, change
role, remove) and your own account (password, signed-in sessions)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chatwell.api.dashboard.web import (
    CheckedUserDep,
    DashboardRoute,
    UserDep,
    check_pre_session_csrf,
    clear_session_cookie,
    dashboard_key,
    db_of,
    form_of,
    pre_session_form,
    render,
    see_other,
    session_cookie,
    set_session_cookie,
)
from chatwell.api.deps import client_ip, runtime_of
from chatwell.errors import ChatwellError, Forbidden, InvalidRequest, NotFound, RateLimited
from chatwell.limits.service import parse_limits, rules_of
from chatwell.services import accounts, members, server_keys
from chatwell.services.accounts import SignedIn

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
STATIC_TYPES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "application/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        raise NotFound("no such file")
    data = resources.files("chatwell.web").joinpath(f"dashboard/static/{name}").read_bytes()
    return Response(
        data,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


async def _pre_session_page(
    request: Request, template: str, /, *, status: int = 200, **context: object
) -> Response:
    return await pre_session_form(
        request, lambda token: render(request, template, status=status, form_token=token, **context)
    )


@router.get("/setup")
async def setup_page(request: Request) -> Response:
    if not await accounts.needs_setup(db_of(request)):
        return see_other("/dashboard/login")
    return await _pre_session_page(request, "setup.html")


@router.get("/embed-guide")
async def embed_guide(request: Request) -> Response:
    """How to put a bot on a website, with this server's own address in the snippets. Public
    (the set-up page links here before anyone can sign in); it shows nothing of any bot."""
    base = str(request.base_url).rstrip("/")
    return render(request, "embed_guide.html", base=base)


SETUP_PROOF_FAILURES = "10/minute;30/hour"  # per client IP


@router.post("/setup")
async def setup(request: Request) -> Response:
    form = await check_pre_session_csrf(request)
    if not await accounts.needs_setup(db_of(request)):
        raise Forbidden("this server already has an owner; sign in instead", code="setup_done")
    try:
        await _check_setup_proof(request, str(form.get("setup_token", "")))
    except Forbidden as exc:
        return await _pre_session_page(
            request,
            "setup.html",
            status=403,
            error=exc.message,
            email=form.get("email", ""),
            name=form.get("name", ""),
        )
    try:
        new = await accounts.sign_up_first_owner(
            db_of(request),
            email=str(form.get("email", "")),
            password=str(form.get("password", "")),
            name=str(form.get("name", "")),
        )
    except Forbidden:
        raise
    except ChatwellError as exc:
        return await _pre_session_page(
            request,
            "setup.html",
            status=400,
            error=exc.message,
            email=form.get("email", ""),
            name=form.get("name", ""),
        )
    response = see_other("/dashboard")
    set_session_cookie(response, request, new.cookie)
    return response


async def _check_setup_proof(request: Request, proof: str) -> None:
    """Set-up needs the set-up token printed at start (``chatwell setup-token``) or an owner key of
    the default workspace: reaching the page first is not enough (failures throttled per IP)."""
    limiter = runtime_of(request).limits.limiter
    rules = rules_of(parse_limits(SETUP_PROOF_FAILURES), "setup-proof", client_ip(request))
    await limiter.refuse_if_full(
        rules, message="Too many wrong set-up tokens. Wait before trying again."
    )
    if await server_keys.is_setup_proof(db_of(request), await dashboard_key(request), proof[:512]):
        return
    try:
        await limiter.admit(rules)
    except RateLimited:
        pass
    raise Forbidden(
        "enter the set-up token the server printed at start (or run `chatwell setup-token`), "
        "or the admin key",
        code="setup_proof_required",
    )


@router.get("/login")
async def login_page(request: Request) -> Response:
    if await accounts.needs_setup(db_of(request)):
        return see_other("/dashboard/setup")
    return await _pre_session_page(request, "login.html")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await check_pre_session_csrf(request)
    ip = request.client.host if request.client else "unknown"
    email = str(form.get("email", ""))
    try:
        new = await accounts.sign_in(
            db_of(request),
            runtime_of(request).limits.limiter,
            email=email,
            password=str(form.get("password", "")),
            client_ip=ip,
            replacing=session_cookie(request),
        )
    except ChatwellError as exc:
        if exc.code != "invalid_credentials":
            raise
        return await _pre_session_page(
            request, "login.html", status=401, error=exc.message, email=email
        )
    response = see_other("/dashboard")
    set_session_cookie(response, request, new.cookie)
    return response


@router.post("/logout")
async def logout(request: Request, user: CheckedUserDep) -> Response:
    await accounts.sign_out(db_of(request), cookie=session_cookie(request))
    response = see_other("/dashboard/login")
    clear_session_cookie(response, request)
    return response


@router.get("/members")
async def members_page(request: Request, user: UserDep) -> Response:
    if user.role != "owner":
        raise Forbidden("only owners manage members", code="insufficient_role")
    members = await accounts.list_members(db_of(request), workspace_id=user.workspace_id)
    return render(request, "members.html", user=user, members=members, roles=accounts.ROLES)


@router.post("/members")
async def add_member(request: Request, user: CheckedUserDep) -> Response:
    form = await form_of(request)
    await accounts.add_member(
        db_of(request),
        by=user,
        email=str(form.get("email", "")),
        role=str(form.get("role", "")),
        password=str(form.get("password", "")),
        name=str(form.get("name", "")),
    )
    return see_other("/dashboard/members")


@router.post("/members/{user_id}/role")
async def change_member_role(request: Request, user_id: str, user: CheckedUserDep) -> Response:
    form = await form_of(request)
    await members.change_role(
        db_of(request), by=user, user_id=user_id, role=str(form.get("role", ""))
    )
    return see_other("/dashboard/members")


@router.post("/members/{user_id}/remove")
async def remove_member(request: Request, user_id: str, user: CheckedUserDep) -> Response:
    await members.remove_member(db_of(request), by=user, user_id=user_id)
    return see_other("/dashboard/members")


async def _account_page(
    request: Request, user: SignedIn, *, status: int = 200, error: str | None = None
) -> Response:
    return render(
        request,
        "account.html",
        user=user,
        status=status,
        error=error,
        sessions=await members.list_sessions(db_of(request), user=user),
        changed=request.query_params.get("changed"),
        ended=request.query_params.get("ended"),
    )


@router.get("/account")
async def account_page(request: Request, user: UserDep) -> Response:
    return await _account_page(request, user)


@router.post("/account/password")
async def change_password(request: Request, user: CheckedUserDep) -> Response:
    form = await form_of(request)
    new = str(form.get("new_password", ""))
    if new != str(form.get("confirm_password", "")):
        return await _account_page(request, user, status=400, error="The two new passwords differ.")
    try:
        await members.change_password(
            db_of(request), user=user, current=str(form.get("current_password", "")), new=new
        )
    except InvalidRequest as exc:
        return await _account_page(request, user, status=400, error=exc.message)
    return see_other("/dashboard/account?changed=1")


@router.post("/account/sessions/revoke")
async def revoke_sessions(request: Request, user: CheckedUserDep) -> Response:
    """``ref``: one of your other sessions; empty: all of them (sign out everywhere else)."""
    form = await form_of(request)
    ref = str(form.get("ref", "")).strip() or None
    ended = await members.revoke_sessions(db_of(request), user=user, ref=ref)
    return see_other(f"/dashboard/account?ended={ended}")
