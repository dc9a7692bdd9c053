"""Native knowledge management: ``/v1/bots/{bot_id}/sources`` (JSON for text/url/qa, multipart for files)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from chatwell.api.deps import DbDep, WorkspacePrincipalDep
from chatwell.api.dialect import wake_ingestion
from chatwell.api.errors import validation_error
from chatwell.api.native.schemas import ListOut, SourceOut
from chatwell.domain.sources import QASourceIn, SourceIn, TextSourceIn, UrlSourceIn
from chatwell.errors import InvalidRequest
from chatwell.services import sources

router = APIRouter(prefix="/v1/bots/{bot_id}/sources", tags=["sources"])
SOURCE_IN = TypeAdapter(SourceIn)
MAX_FILENAME = 255

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/TextSourceIn"},
                        {"$ref": "#/components/schemas/QASourceIn"},
                        {"$ref": "#/components/schemas/UrlSourceIn"},
                    ]
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


@router.post("", status_code=202, response_model=SourceOut, openapi_extra=_BODY_DOC)
async def add_source(
    bot_id: str, request: Request, principal: WorkspacePrincipalDep, db: DbDep
) -> SourceOut:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        source = await _add_file(bot_id, request, principal, db)
    else:
        raw = await request.body()
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("request body is not valid JSON", code="malformed_json") from None
        try:
            data = SOURCE_IN.validate_python(payload)
        except ValidationError as exc:
            raise validation_error(RequestValidationError(exc.errors())) from None
        if isinstance(data, TextSourceIn):
            source = await sources.add_text_source(
                db, principal=principal, bot_ref=bot_id, data=data
            )
        elif isinstance(data, QASourceIn):
            source = await sources.add_qa_source(db, principal=principal, bot_ref=bot_id, data=data)
        else:
            assert isinstance(data, UrlSourceIn)
            source = await sources.add_url_source(
                db, principal=principal, bot_ref=bot_id, data=data
            )
    wake_ingestion(request)
    return SourceOut.of(source)


async def _add_file(bot_id: str, request: Request, principal: WorkspacePrincipalDep, db: DbDep):  # type: ignore[no-untyped-def]
    try:
        form = await request.form(max_files=1, max_fields=5)
    except Exception as exc:  # multipart parser errors carry no stable type of their own
        raise InvalidRequest(
            f"malformed multipart body: {exc}", code="malformed_multipart"
        ) from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("multipart body needs a `file` field", code="missing_file")
        content = await upload.read()
    finally:
        await form.close()
    if not content:
        raise InvalidRequest("the uploaded file is empty", code="empty_file")
    filename = (upload.filename or "upload").replace("\x00", "")[-MAX_FILENAME:] or "upload"
    return await sources.add_file_source(
        db,
        principal=principal,
        bot_ref=bot_id,
        filename=filename,
        content=content,
        declared_type=upload.content_type,
    )


@router.get("", response_model=ListOut[SourceOut])
async def list_sources(
    bot_id: str,
    principal: WorkspacePrincipalDep,
    db: DbDep,
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = Query(None, max_length=100),
) -> ListOut[SourceOut]:
    page = await sources.list_sources(
        db, principal=principal, bot_ref=bot_id, limit=limit, cursor=cursor
    )
    return ListOut.of(page, SourceOut.of)


@router.get("/{source_id}", response_model=SourceOut)
async def get_source(
    bot_id: str, source_id: str, principal: WorkspacePrincipalDep, db: DbDep
) -> SourceOut:
    return SourceOut.of(
        await sources.get_source(db, principal=principal, bot_ref=bot_id, source_id=source_id)
    )


@router.post("/{source_id}/sync", status_code=202, response_model=SourceOut)
async def resync_source(
    bot_id: str, source_id: str, request: Request, principal: WorkspacePrincipalDep, db: DbDep
) -> SourceOut:
    """Fetch a URL source again (or re-process any other source); old chunks serve until done."""
    source = await sources.resync_source(
        db, principal=principal, bot_ref=bot_id, source_id=source_id
    )
    wake_ingestion(request)
    return SourceOut.of(source)


@router.delete("/{source_id}", status_code=204, response_class=Response)
async def delete_source(
    bot_id: str, source_id: str, principal: WorkspacePrincipalDep, db: DbDep
) -> Response:
    await sources.delete_source(db, principal=principal, bot_ref=bot_id, source_id=source_id)
    return Response(status_code=204)
