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
    db_of,
    form_of,
    pre_session_token,
    render,
    see_other,
    set_pre_session_cookie,
    set_session_cookie,
    SESSION_COOKIE,
)
from chatwell.errors import ChatwellError, Forbidden, InvalidRequest, NotFound
from chatwell.services import accounts, members
from chatwell.services.accounts import SignedIn

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
STATIC_TYPES = {"dashboard.css": "text/css; charset=utf-8",
                "dashboard.js": "application/javascript; charset=utf-8",
                "favicon.svg": "image/svg+xml"}


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        raise NotFound("no such file")
    data = resources.files("chatwell.web").joinpath(f"dashboard/static/{name}").read_bytes()
    return Response(data, media_type=media_type, headers={"Cache-Control": "public, max-age=300",
                                                          "X-Content-Type-Options": "nosniff"})


def _pre_session_page(request: Request, name: str, *, status: int = 200, **context: object) -> Response:
    token = pre_session_token(request)
    response = render(request, name, status=status, form_token=token, **context)
    set_pre_session_cookie(response, request, token)
    return response


@router.get("/setup")
async def setup_page(request: Request) -> Response:
    if not await accounts.needs_setup(db_of(request)):
        return see_other("/dashboard/login")
    return _pre_session_page(request, "setup.html")


@router.post("/setup")
async def setup(request: Request) -> Response:
    form = await check_pre_session_csrf(request)
    try:
        new = await accounts.sign_up_first_owner(db_of(request), email=str(form.get("email", "")),
                                                 password=str(form.get("password", "")),
                                                 name=str(form.get("name", "")))
    except Forbidden:
        raise
    except ChatwellError as exc:
        return _pre_session_page(request, "setup.html", status=400, error=exc.message,
                                 email=form.get("email", ""), name=form.get("name", ""))
    response = see_other("/dashboard")
    set_session_cookie(response, request, new.cookie)
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    if await accounts.needs_setup(db_of(request)):
        return see_other("/dashboard/setup")
    return _pre_session_page(request, "login.html")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await check_pre_session_csrf(request)
    ip = request.client.host if request.client else "unknown"
    email = str(form.get("email", ""))
    try:
        new = await accounts.sign_in(db_of(request), request.app.state.limits.limiter, email=email,
                                     password=str(form.get("password", "")), client_ip=ip,
                                     replacing=request.cookies.get(SESSION_COOKIE))
    except ChatwellError as exc:
        if exc.code != "invalid_credentials":
            raise
        return _pre_session_page(request, "login.html", status=401, error=exc.message, email=email)
    response = see_other("/dashboard")
    set_session_cookie(response, request, new.cookie)
    return response


@router.post("/logout")
async def logout(request: Request, user: CheckedUserDep) -> Response:
    await accounts.sign_out(db_of(request), cookie=request.cookies.get(SESSION_COOKIE))
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
    await accounts.add_member(db_of(request), by=user, email=str(form.get("email", "")),
                              role=str(form.get("role", "")), password=str(form.get("password", "")),
                              name=str(form.get("name", "")))
    return see_other("/dashboard/members")


@router.post("/members/{user_id}/role")
async def change_member_role(request: Request, user_id: str, user: CheckedUserDep) -> Response:
    form = await form_of(request)
    await members.change_role(db_of(request), by=user, user_id=user_id, role=str(form.get("role", "")))
    return see_other("/dashboard/members")


@router.post("/members/{user_id}/remove")
async def remove_member(request: Request, user_id: str, user: CheckedUserDep) -> Response:
    await members.remove_member(db_of(request), by=user, user_id=user_id)
    return see_other("/dashboard/members")


async def _account_page(request: Request, user: SignedIn, *, status: int = 200, error: str | None = None) -> Response:
    return render(request, "account.html", user=user, status=status, error=error,
                  sessions=await members.list_sessions(db_of(request), user=user),
                  changed=request.query_params.get("changed"), ended=request.query_params.get("ended"))


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
        await members.change_password(db_of(request), user=user, current=str(form.get("current_password", "")),
                                      new=new)
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
