"""Dashboard bot pages: the bots list, and per bot its Sources, Settings and Embed tabs.

Owners and admins only (agents get 403), except the bots list, which every member sees.
A bot of another workspace is reported like a missing one (404), as in the JSON API.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from chatwell.api.dashboard.web import (
    CheckedManagerDep,
    DashboardRoute,
    ManagerDep,
    UserDep,
    db_of,
    form_of,
    int_or_none,
    lines_of,
    render,
    see_other,
    valid_input,
)
from chatwell.api.deps import runtime_of
from chatwell.api.dialect import wake_ingestion
from chatwell.domain.bots import BotCreate, BotUpdate
from chatwell.domain.models import (
    AnswerSettings,
    ContactFormSettings,
    HandoffSettings,
    ModelSettings,
    RateLimits,
    WidgetSettings,
)
from chatwell.domain.sources import QASourceIn, TextSourceIn, UrlSourceIn
from chatwell.errors import InvalidRequest
from chatwell.services import bots, sources, webhooks

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
MAX_FILENAME = 255


@router.get("")
async def bots_page(request: Request, user: UserDep) -> Response:
    page = await bots.list_bots(db_of(request), principal=user.principal, limit=100)
    return render(request, "bots.html", user=user, bots=page.items)


@router.post("/bots")
async def create_bot(request: Request, user: CheckedManagerDep) -> Response:
    form = await form_of(request)
    data = valid_input(BotCreate, name=str(form.get("name", "")))
    bot = await bots.create_bot(db_of(request), workspace_id=user.workspace_id, data=data)
    return see_other(f"/dashboard/bots/{bot.id}/sources")


async def _sources_of(request: Request, user: Any, bot_id: str) -> list[Any]:
    """The bot's sources as the Sources tab lists them: a crawl is one row (its pages are not)."""
    page = await sources.list_sources(
        db_of(request), principal=user.principal, bot_ref=bot_id, limit=100, roots_only=True
    )
    return list(page.items)


async def _sources_page(
    request: Request,
    user: Any,
    bot_id: str,
    *,
    status: int = 200,
    refused: InvalidRequest | None = None,
    kind: str = "",
    draft: Any = None,
) -> Response:
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    found = await _sources_of(request, user, bot_id)
    return render(
        request,
        "bot_sources.html",
        user=user,
        bot=bot,
        tab="sources",
        status=status,
        sources=found,
        crawls=await sources.crawl_progress(db_of(request), roots=found, with_pages=True),
        error=refused.message if refused else None,
        error_kind=kind,
        draft={k: str(v) for k, v in (draft or {}).items() if isinstance(v, str)},
    )


@router.get("/bots/{bot_id}/sources")
async def sources_page(request: Request, bot_id: str, user: ManagerDep) -> Response:
    return await _sources_page(request, user, bot_id)


def _crawl_view(progress: sources.CrawlProgress | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    return {
        "status": progress.status,
        "found": progress.found,
        "ingested": progress.ingested,
        "failed": progress.failed,
        "waiting": progress.waiting,
        "progress": round(progress.fraction, 3),
    }


@router.get("/bots/{bot_id}/sources.json")
async def sources_status(request: Request, bot_id: str, user: ManagerDep) -> JSONResponse:
    """What the Sources tab's script polls: each source's status, progress and chunk count, and
    for a crawl its pages found / ingested / failed."""
    found = await _sources_of(request, user, bot_id)
    crawls = await sources.crawl_progress(db_of(request), roots=found)
    return JSONResponse(
        {
            "sources": [
                {
                    "id": str(s.id),
                    "status": crawls[s.id].status if s.id in crawls else s.status,
                    "chunk_count": crawls[s.id].chunks if s.id in crawls else s.chunk_count,
                    "progress": crawls[s.id].fraction if s.id in crawls else s.progress,
                    "error": s.error,
                    "crawl": _crawl_view(crawls.get(s.id)),
                }
                for s in found
            ]
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/bots/{bot_id}/sources")
async def add_source(request: Request, bot_id: str, user: CheckedManagerDep) -> Response:
    """Adds a source; a refusal (an empty file, a bad URL) is shown on the Sources tab beside the
    form it came from, with what was typed still in it."""
    form = await form_of(request)
    try:
        await _add_source(request, bot_id, user, form)
    except InvalidRequest as exc:
        return await _sources_page(
            request,
            user,
            bot_id,
            status=400,
            refused=exc,
            kind=str(form.get("kind", "")),
            draft={
                k: form.get(k)
                for k in ("title", "text", "question", "answer", "url", "include", "exclude")
                + ("crawl", "max_pages")
            },
        )
    wake_ingestion(request)
    return see_other(f"/dashboard/bots/{bot_id}/sources")


async def _add_source(request: Request, bot_id: str, user: Any, form: Any) -> None:
    kind = form.get("kind")
    db, principal = db_of(request), user.principal
    if kind == "text":
        data = valid_input(
            TextSourceIn,
            type="text",
            title=str(form.get("title", "")),
            text=str(form.get("text", "")),
        )
        await sources.add_text_source(db, principal=principal, bot_ref=bot_id, data=data)
    elif kind == "qa":
        data = valid_input(
            QASourceIn,
            type="qa",
            question=str(form.get("question", "")),
            answer=str(form.get("answer", "")),
        )
        await sources.add_qa_source(db, principal=principal, bot_ref=bot_id, data=data)
    elif kind == "url":
        data = valid_input(
            UrlSourceIn,
            type="url",
            url=str(form.get("url", "")).strip(),
            crawl=form.get("crawl") == "on",
            max_pages=form.get("max_pages") or 50,
            include=lines_of(form.get("include")),
            exclude=lines_of(form.get("exclude")),
            resync=str(form.get("resync", "")).strip() or None,
        )
        await sources.add_url_source(db, principal=principal, bot_ref=bot_id, data=data)
    elif kind == "file":
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("choose a file to upload", code="missing_file")
        content = await upload.read()
        if not content:
            raise InvalidRequest(
                f"{upload.filename or 'The file'} is empty (0 bytes): choose a file with content",
                code="empty_file",
            )
        filename = (upload.filename or "upload").replace("\x00", "")[-MAX_FILENAME:] or "upload"
        await sources.add_file_source(
            db,
            principal=principal,
            bot_ref=bot_id,
            filename=filename,
            content=content,
            declared_type=upload.content_type,
        )
    else:
        raise InvalidRequest("kind must be text, qa, url or file")


@router.post("/bots/{bot_id}/sources/{source_id}/sync")
async def resync_source(
    request: Request, bot_id: str, source_id: str, user: CheckedManagerDep
) -> Response:
    await sources.resync_source(
        db_of(request), principal=user.principal, bot_ref=bot_id, source_id=source_id
    )
    wake_ingestion(request)
    return see_other(f"/dashboard/bots/{bot_id}/sources")


@router.post("/bots/{bot_id}/sources/{source_id}/schedule")
async def resync_schedule(
    request: Request, bot_id: str, source_id: str, user: CheckedManagerDep
) -> Response:
    """A web page's or site's re-sync schedule: daily, weekly or off."""
    form = await form_of(request)
    await sources.set_resync(
        db_of(request),
        principal=user.principal,
        bot_ref=bot_id,
        source_id=source_id,
        every=str(form.get("resync", "")).strip().replace("off", "") or None,
    )
    return see_other(f"/dashboard/bots/{bot_id}/sources")


@router.post("/bots/{bot_id}/sources/{source_id}/delete")
async def delete_source(
    request: Request, bot_id: str, source_id: str, user: CheckedManagerDep
) -> Response:
    await sources.delete_source(
        db_of(request), principal=user.principal, bot_ref=bot_id, source_id=source_id
    )
    return see_other(f"/dashboard/bots/{bot_id}/sources")


def _settings_view(bot: Any) -> dict[str, Any]:
    return {
        "model": ModelSettings.model_validate(bot.model_settings or {}),
        "answer": AnswerSettings.model_validate(bot.answer_settings or {}),
        "limits": RateLimits.model_validate(bot.rate_limits or {}),
        "widget": WidgetSettings.model_validate(bot.widget_settings or {}),
        "handoff": HandoffSettings.model_validate(bot.handoff_settings or {}),
        "contact": ContactFormSettings.model_validate(bot.contact_form or {}),
    }


FIELD_TYPES = ("text", "email", "phone", "textarea")
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,49}")
YES = ("required", "yes", "true", "1", "y")
NO = ("", "optional", "no", "false", "0", "n")


MAX_CONTACT_FIELDS = 20


def _contact_field(
    where: str, field: str, name: str, label: str, kind: str, flag: str
) -> dict[str, Any]:
    """One contact-form field, checked; a refusal names ``where`` and the form ``field`` at fault."""

    def refuse(message: str) -> InvalidRequest:
        return InvalidRequest(
            f"{where}: {message}", code="invalid_contact_field", details={"field": field}
        )

    if not name or not label:
        raise refuse("give the field a name and a label")
    if not FIELD_NAME.fullmatch(name):
        raise refuse("a name is letters, digits, _ or - (a letter first), up to 50")
    if len(label) > 100:
        raise refuse("a label has at most 100 characters")
    kind = kind.lower() or "text"
    if kind not in FIELD_TYPES:
        raise refuse(f"type must be one of {', '.join(FIELD_TYPES)}")
    if flag.lower() not in YES + NO:
        raise refuse("the last part must be required or optional")
    return {"name": name, "label": label, "type": kind, "required": flag.lower() in YES}


def _unique(fields: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    if len({f["name"] for f in fields}) != len(fields):
        raise InvalidRequest(
            "contact field names must be unique",
            code="invalid_contact_field",
            details={"field": field},
        )
    return fields


def contact_fields_of(text: Any) -> list[dict[str, Any]]:
    """Contact-form fields from lines ``name | label | type | required`` (type and required optional),
    as scripts may post them; the page's field editor sends rows (``contact_fields_of_rows``)."""
    fields: list[dict[str, Any]] = []
    for number, line in enumerate(lines_of(text), start=1):
        parts = [part.strip() for part in line.split("|")]
        if not 2 <= len(parts) <= 4:
            raise InvalidRequest(
                f"contact field line {number}: write name | label | type | required",
                code="invalid_contact_field",
                details={"field": "contact_fields"},
            )
        parts += [""] * (4 - len(parts))
        fields.append(_contact_field(f"contact field line {number}", "contact_fields", *parts))
    return _unique(fields, "contact_fields")


def contact_fields_of_rows(form: Any) -> list[dict[str, Any]]:
    """The field editor's rows (``cf_<i>_name``, ``_label``, ``_type``, ``_required``); a row with
    neither name nor label is skipped (a blank or removed row)."""
    fields: list[dict[str, Any]] = []
    for i in range(MAX_CONTACT_FIELDS):
        name = str(form.get(f"cf_{i}_name", "")).strip()
        label = str(form.get(f"cf_{i}_label", "")).strip()
        if not name and not label:
            continue
        flag = "required" if form.get(f"cf_{i}_required") == "on" else "optional"
        bad = f"cf_{i}_name" if not name or not FIELD_NAME.fullmatch(name) else f"cf_{i}_label"
        fields.append(
            _contact_field(
                f"contact field {len(fields) + 1}",
                bad,
                name,
                label,
                str(form.get(f"cf_{i}_type", "")).strip(),
                flag,
            )
        )
    return _unique(fields, "contact-fields")


def _handoff_of(form: Any) -> dict[str, Any]:
    group: dict[str, Any] = {"enabled": form.get("handoff_enabled") == "on"}
    if "handoff_trigger" in form:
        group["trigger"] = str(form.get("handoff_trigger", "")).strip()
    for name, field in (
        ("offline_message", "handoff_offline_message"),
        ("agent_label", "handoff_agent_label"),
    ):
        if field in form:
            group[name] = str(form.get(field, "")).strip() or None
    if "handoff_canned_replies" in form:
        group["canned_replies"] = lines_of(form.get("handoff_canned_replies"))
    if "handoff_notify_emails" in form:
        group["notify_emails"] = lines_of(form.get("handoff_notify_emails"))
    if "email_switches" in form:  # the page's checkboxes: an unchecked one is absent
        for switch in ("email_on_lead", "email_on_offline_request", "email_on_missed"):
            group[switch] = form.get(switch) == "on"
    return group


def _contact_of(form: Any) -> dict[str, Any]:
    group: dict[str, Any] = {"enabled": form.get("contact_enabled") == "on"}
    if "contact_trigger" in form:
        group["trigger"] = str(form.get("contact_trigger", "")).strip()
    if str(form.get("contact_after_messages", "")).strip():
        group["after_messages"] = _number(form, "contact_after_messages")
    if "contact_success_message" in form:
        group["success_message"] = str(form.get("contact_success_message", "")).strip() or None
    if "contact_fields" in form:
        group["fields"] = contact_fields_of(form.get("contact_fields"))
    elif "cf_editor" in form:
        group["fields"] = contact_fields_of_rows(form)
    return group


async def _settings_page(
    request: Request, user: Any, bot: Any, *, secret: str | None = None
) -> Response:
    view = _settings_view(bot)
    return render(
        request,
        "bot_settings.html",
        user=user,
        bot=bot,
        tab="settings",
        saved=request.query_params.get("saved"),
        webhook_secret=secret,
        max_contact_fields=MAX_CONTACT_FIELDS,
        smtp_configured=runtime_of(request).emails.config is not None,
        **view,
    )


@router.get("/bots/{bot_id}/settings")
async def settings_page(request: Request, bot_id: str, user: ManagerDep) -> Response:
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    return await _settings_page(request, user, bot)


@router.post("/bots/{bot_id}/webhook-secret")
async def rotate_webhook_secret(request: Request, bot_id: str, user: CheckedManagerDep) -> Response:
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    secret = await webhooks.rotate_secret(db_of(request), bot_id=bot.id)
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    # Rendered, not redirected: the secret exists only in this one response.
    return await _settings_page(request, user, bot, secret=secret)


# Where a refused value was typed: a settings group's field (pydantic's location) -> the form's field.
FORM_FIELDS = {
    "model.model": "model",
    "answer.not_found_message": "not_found_message",
    "widget.title": "widget_title",
    "widget.primary_color": "primary_color",
    "widget.position": "position",
    "handoff.trigger": "handoff_trigger",
    "handoff.offline_message": "handoff_offline_message",
    "handoff.agent_label": "handoff_agent_label",
    "handoff.canned_replies": "handoff_canned_replies",
    "handoff.notify_emails": "handoff_notify_emails",
    "contact_form.trigger": "contact_trigger",
    "contact_form.after_messages": "contact_after_messages",
    "contact_form.success_message": "contact_success_message",
    "contact_form.fields": "contact-fields",
    "rate_limits.per_minute": "per_minute",
    "rate_limits.per_hour": "per_hour",
    "rate_limits.per_day": "per_day",
}


def _number(form: Any, name: str) -> int | None:
    try:
        return int_or_none(form.get(name))
    except InvalidRequest as exc:
        raise InvalidRequest(
            f"{name.replace('_', ' ')}: {exc.message}", details={"field": name}
        ) from None


def _settings_input(form: Any) -> BotUpdate:
    text = lambda name: str(form.get(name, "")).strip()  # noqa: E731
    values: dict[str, Any] = dict(
        name=text("name") or None,
        instructions=str(form.get("instructions", "")),
        welcome_message=text("welcome_message") or None,
        suggested_questions=lines_of(form.get("suggested_questions")),
        allowed_origins=lines_of(form.get("allowed_origins")),
        public=form.get("public") == "on",
        webhook_url=text("webhook_url") or None,
        model={"model": text("model") or None},
        answer={"not_found_message": text("not_found_message")}
        if text("not_found_message")
        else {},
        rate_limits={
            "per_minute": _number(form, "per_minute"),
            "per_hour": _number(form, "per_hour"),
            "per_day": _number(form, "per_day"),
        },
        widget={
            "title": text("widget_title") or None,
            "primary_color": text("primary_color") or "#2563eb",
            "position": text("position") or "bottom-right",
        },
        handoff=_handoff_of(form),
        contact_form=_contact_of(form),
    )
    try:
        return valid_input(BotUpdate, **values)
    except InvalidRequest as exc:
        where = exc.message.split(":", 1)[0]
        top = where.split(".")[0]
        field = FORM_FIELDS.get(".".join(where.split(".")[:2])) or (top if top in form else None)
        raise InvalidRequest(
            exc.message, code=exc.code, details={"field": field} if field else None
        ) from None


@router.post("/bots/{bot_id}/settings")
async def save_settings(request: Request, bot_id: str, user: CheckedManagerDep) -> Response:
    """Saves the whole form. The page's script posts it asking for JSON: a refusal then comes back
    as ``{error, message, field}`` and is shown beside that field, every other edit still in place."""
    form = await form_of(request)
    as_json = "application/json" in request.headers.get("accept", "")
    try:
        data = _settings_input(form)
        bot = await bots.update_bot(db_of(request), principal=user.principal, ref=bot_id, data=data)
    except InvalidRequest as exc:
        if not as_json:
            raise
        return JSONResponse(
            {"error": exc.code, "message": exc.message, "field": exc.details.get("field")},
            status_code=400,
            headers={"Cache-Control": "no-store"},
        )
    issued = getattr(bot, "issued_webhook_secret", None)
    if issued:  # the webhook's new signing secret exists only in this one response
        page = await _settings_page(
            request,
            user,
            await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id),
            secret=issued,
        )
        if as_json:  # the page's script shows this page in place
            return JSONResponse(
                {"saved": True, "page": bytes(page.body).decode()},
                headers={"Cache-Control": "no-store"},
            )
        return page
    if as_json:
        return JSONResponse({"saved": True}, headers={"Cache-Control": "no-store"})
    return see_other(f"/dashboard/bots/{bot_id}/settings?saved=1")


@router.post("/bots/{bot_id}/delete")
async def delete_bot(request: Request, bot_id: str, user: CheckedManagerDep) -> Response:
    """The bot and everything of it: sources, conversations, leads, keys bound to it."""
    await bots.delete_bot(db_of(request), principal=user.principal, ref=bot_id)
    return see_other("/dashboard?deleted=1")


@router.get("/bots/{bot_id}/embed")
async def embed_page(request: Request, bot_id: str, user: ManagerDep) -> Response:
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    base = str(request.base_url).rstrip("/")
    snippets = {
        "Floating launcher": f'<script src="{base}/widget.js" data-bot-id="{bot.id}" async></script>',
        "Inline in an element": (
            f'<div id="help" style="height:600px"></div>\n<script src="{base}/widget.js" '
            f'data-bot-id="{bot.id}" data-mode="inline" data-target="#help" async></script>'
        ),
        "Full page (link or iframe)": f"{base}/chat/{bot.slug}",
    }
    return render(request, "bot_embed.html", user=user, bot=bot, tab="embed", snippets=snippets)
