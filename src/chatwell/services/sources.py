"""Sources: the knowledge a bot answers from. Adding one records it as ``pending`` with its raw
content; the ingestion worker picks it up off the request path. Deleting one removes its chunks
(and with them their keyword and vector entries) in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select

from chatwell.domain.auth import Principal
from chatwell.domain.models import SourceStatus, SourceType
from chatwell.domain.sources import RESYNC_EVERY, QASourceIn, TextSourceIn, UrlSourceIn
from chatwell.errors import InvalidRequest, NotFound
from chatwell.ingestion.removal import remove_sources
from chatwell.services.bots import get_bot
from chatwell.services.pagination import Page, page_of, paginate
from chatwell.storage.database import Database
from chatwell.storage.tables import Source, SourceContent, utcnow


def source_not_found() -> NotFound:
    return NotFound("source not found", code="source_not_found")


async def source_urls(db: Database, bot_id: uuid.UUID) -> list[str]:
    """The ``url`` of every source of the bot: the only links its answers may give. Kept for a few
    seconds per bot (a hot path: every answer asks); a source added meanwhile is rarely cited yet."""
    now = time.monotonic()
    cached = _SOURCE_URLS.get(bot_id)
    if cached is not None and now - cached[0] < SOURCE_URLS_TTL_SECONDS:
        return cached[1]
    # Not ``read_now``: a crawled site's bot has thousands of sources, too many rows to read on
    # the event loop's thread; this read is once per bot every few seconds anyway.
    async with db.read() as session:
        rows = await session.scalars(
            select(Source.url).where(Source.bot_id == bot_id, Source.url.is_not(None))
        )
        urls = [url for url in rows if url]
    _SOURCE_URLS[bot_id] = (now, urls)
    if len(_SOURCE_URLS) > 10_000:
        _SOURCE_URLS.pop(next(iter(_SOURCE_URLS)))
    return urls


def forget_source_urls(bot_id: uuid.UUID) -> None:
    """The bot's sources changed (in this process): read its URLs afresh on the next answer."""
    _SOURCE_URLS.pop(bot_id, None)


SOURCE_URLS_TTL_SECONDS = 10.0
_SOURCE_URLS: dict[uuid.UUID, tuple[float, list[str]]] = {}


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _add(
    db: Database, *, bot_ref: str, principal: Principal, source: Source, content: bytes | None
) -> Source:
    bot = await get_bot(db, principal=principal, ref=bot_ref)
    if source.content_hash is not None:
        # The same content added again does no new work: hand back the source that has it.
        async with db.read() as session:
            existing = await session.scalar(
                select(Source).where(
                    Source.bot_id == bot.id,
                    Source.type == source.type,
                    Source.content_hash == source.content_hash,
                    Source.status != SourceStatus.FAILED,
                )
            )
        if existing is not None:
            return existing
    source.workspace_id = bot.workspace_id
    source.bot_id = bot.id
    source.status = SourceStatus.PENDING
    async with db.write() as session:
        session.add(source)
        await session.flush()
        if content is not None:
            session.add(SourceContent(source_id=source.id, data=content))
    forget_source_urls(bot.id)
    return source


async def add_text_source(
    db: Database, *, principal: Principal, bot_ref: str, data: TextSourceIn
) -> Source:
    content = data.text.encode()
    title = data.title.strip() or data.text.strip().splitlines()[0][:80]
    return await _add(
        db,
        bot_ref=bot_ref,
        principal=principal,
        content=content,
        source=Source(
            type=SourceType.TEXT,
            title=title,
            mime_type="text/plain",
            size_bytes=len(content),
            content_hash=_hash(content),
            options={},
        ),
    )


async def add_qa_source(
    db: Database, *, principal: Principal, bot_ref: str, data: QASourceIn
) -> Source:
    content = json.dumps({"question": data.question, "answer": data.answer}).encode()
    return await _add(
        db,
        bot_ref=bot_ref,
        principal=principal,
        content=content,
        source=Source(
            type=SourceType.QA,
            title=data.question[:500],
            mime_type="application/json",
            size_bytes=len(content),
            content_hash=_hash(content),
            options={},
        ),
    )


async def add_url_source(
    db: Database, *, principal: Principal, bot_ref: str, data: UrlSourceIn
) -> Source:
    return await _add(
        db,
        bot_ref=bot_ref,
        principal=principal,
        content=None,
        source=Source(
            type=SourceType.URL,
            title=data.title or data.url,
            url=data.url,
            options={
                "crawl": data.crawl,
                "max_pages": data.max_pages,
                "max_depth": data.max_depth,
                "include": data.include,
                "exclude": data.exclude,
                "resync": data.resync,
            },
        ),
    )


async def add_file_source(
    db: Database,
    *,
    principal: Principal,
    bot_ref: str,
    filename: str,
    content: bytes,
    declared_type: str | None,
) -> Source:
    return await _add(
        db,
        bot_ref=bot_ref,
        principal=principal,
        content=content,
        source=Source(
            type=SourceType.FILE,
            title=filename,
            filename=filename,
            mime_type=declared_type,
            size_bytes=len(content),
            content_hash=_hash(content),
            options={},
        ),
    )


async def list_sources(
    db: Database,
    *,
    principal: Principal,
    bot_ref: str,
    limit: int = 50,
    cursor: str | None = None,
    roots_only: bool = False,
) -> Page[Source]:
    """A bot's sources; ``roots_only`` leaves out the pages a crawl found (see ``crawl_progress``)."""
    bot = await get_bot(db, principal=principal, ref=bot_ref)
    query = select(Source).where(Source.bot_id == bot.id)
    if roots_only:
        query = query.where(Source.parent_id.is_(None))
    async with db.read() as session:
        rows = list(
            (await session.scalars(paginate(query, Source.id, limit=limit, cursor=cursor))).all()
        )
    return page_of(rows, limit, lambda s: s.id)


@dataclass(slots=True)
class CrawlProgress:
    """A crawl seen as one source: the pages it found and how far their ingestion is."""

    crawling: bool  # the crawl itself still runs (more pages may be found)
    fetch_failures: int = 0  # pages the crawl could not fetch
    found: int = 0  # pages fetched and kept as sources
    ingested: int = 0  # of those, ready
    waiting: int = 0  # of those, pending or processing
    page_failures: int = 0  # of those, failed to ingest
    chunks: int = 0
    failed_pages: list[dict[str, str]] = field(default_factory=list)  # url and error, capped
    pages: list[Source] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.fetch_failures + self.page_failures

    @property
    def busy(self) -> bool:
        return self.crawling or self.waiting > 0

    @property
    def status(self) -> str:
        """``crawling``, ``ingesting`` while pages wait, else ``ready`` (``failed`` when none made it)."""
        if self.crawling:
            return "crawling"
        if self.waiting:
            return "ingesting"
        return "failed" if not self.ingested and self.failed else "ready"

    @property
    def fraction(self) -> float:
        total = self.found + self.fetch_failures
        return (self.ingested + self.failed) / total if total else 0.0


async def crawl_progress(
    db: Database, *, roots: list[Source], with_pages: bool = False
) -> dict[uuid.UUID, CrawlProgress]:
    """Per crawl root among ``roots``: its pages' counts (and the pages, with ``with_pages``)."""
    crawls = {s.id: s for s in roots if s.parent_id is None and (s.options or {}).get("crawl")}
    if not crawls:
        return {}
    progress = {
        root_id: CrawlProgress(
            crawling=root.status in (SourceStatus.PENDING, SourceStatus.PROCESSING),
            fetch_failures=int((root.options or {}).get("failed_count", 0)),
            failed_pages=list((root.options or {}).get("failed_pages") or []),
        )
        for root_id, root in crawls.items()
    }
    async with db.read() as session:
        counts = (
            await session.execute(
                select(Source.parent_id, Source.status, func.count(), func.sum(Source.chunk_count))
                .where(Source.parent_id.in_(list(crawls)))
                .group_by(Source.parent_id, Source.status)
            )
        ).all()
        pages = (
            list(
                (
                    await session.scalars(
                        select(Source)
                        .where(Source.parent_id.in_(list(crawls)))
                        .order_by(Source.url)
                        .limit(PAGES_LISTED * len(crawls))
                    )
                ).all()
            )
            if with_pages
            else []
        )
    for parent_id, status, count, chunks in counts:
        seen = progress[parent_id]
        seen.found += int(count)
        seen.chunks += int(chunks or 0)
        if status == SourceStatus.READY:
            seen.ingested += int(count)
        elif status == SourceStatus.FAILED:
            seen.page_failures += int(count)
        else:
            seen.waiting += int(count)
    for page in pages:
        if len(progress[page.parent_id].pages) < PAGES_LISTED:
            progress[page.parent_id].pages.append(page)
    return progress


PAGES_LISTED = 200  # a crawl's pages listed in the dashboard (all of them are counted)


async def set_resync(
    db: Database, *, principal: Principal, bot_ref: str, source_id: str, every: str | None
) -> Source:
    """Change a URL source's re-sync schedule (``daily``, ``weekly`` or None: only by hand)."""
    if every is not None and every not in RESYNC_EVERY:
        raise InvalidRequest("resync must be daily, weekly or off", code="invalid_resync")
    source = await get_source(db, principal=principal, bot_ref=bot_ref, source_id=source_id)
    if source.type != SourceType.URL or source.parent_id is not None:
        raise InvalidRequest(
            "only a web page or site added to the bot has a re-sync schedule",
            code="wrong_source_type",
        )
    async with db.write() as session:
        current = await session.get(Source, source.id)
        if current is None:
            raise source_not_found()
        current.options = {**(current.options or {}), "resync": every}
        base = current.synced_at or utcnow()
        current.next_sync_at = base + RESYNC_EVERY[every] if every else None
    return current


def _parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise source_not_found() from None


async def get_source(db: Database, *, principal: Principal, bot_ref: str, source_id: str) -> Source:
    bot = await get_bot(db, principal=principal, ref=bot_ref)
    async with db.read() as session:
        source = await session.get(Source, _parse_id(source_id))
    if source is None or source.bot_id != bot.id:
        raise source_not_found()
    return source


async def resync_source(
    db: Database, *, principal: Principal, bot_ref: str, source_id: str
) -> Source:
    """Queue a source to be processed again; its current chunks keep serving until then.

    URL sources are fetched again (and crawls re-crawled); other sources re-read their stored
    content (e.g. after the embedding model changed).
    """
    source = await get_source(db, principal=principal, bot_ref=bot_ref, source_id=source_id)
    async with db.write() as session:
        current = await session.get(Source, source.id)
        if current is None:
            raise source_not_found()
        if current.type == SourceType.URL:
            await session.execute(
                delete(SourceContent).where(SourceContent.source_id == current.id)
            )
        current.status = SourceStatus.PENDING
        current.progress = 0.0
        current.error = current.error_code = None
        current.locked_by = current.locked_at = None
    return current


async def edit_content(
    db: Database,
    *,
    principal: Principal,
    bot_ref: str,
    source_id: str,
    data: TextSourceIn | QASourceIn,
) -> Source:
    """New content for a text or Q&A source, in place (same id): it is processed again and its
    current chunks keep serving until then."""
    source = await get_source(db, principal=principal, bot_ref=bot_ref, source_id=source_id)
    if isinstance(data, QASourceIn):
        if source.type != SourceType.QA:
            raise InvalidRequest(
                "only a Q&A source takes a question and an answer", code="wrong_source_type"
            )
        content = json.dumps({"question": data.question, "answer": data.answer}).encode()
        title = data.question[:500]
    else:
        if source.type != SourceType.TEXT:
            raise InvalidRequest("only a text source takes new text", code="wrong_source_type")
        content = data.text.encode()
        title = data.title.strip() or data.text.strip().splitlines()[0][:80]
    async with db.write() as session:
        current = await session.get(Source, source.id)
        if current is None:
            raise source_not_found()
        await session.execute(delete(SourceContent).where(SourceContent.source_id == current.id))
        session.add(SourceContent(source_id=current.id, data=content))
        current.title, current.size_bytes, current.content_hash = (
            title,
            len(content),
            _hash(content),
        )
        current.status = SourceStatus.PENDING
        current.progress = 0.0
        current.error = current.error_code = None
        current.locked_by = current.locked_at = None
    return current


async def source_content(db: Database, *, source: Source) -> bytes:
    async with db.read() as session:
        stored = await session.get(SourceContent, source.id)
    return stored.data if stored is not None else b""


async def delete_source(
    db: Database, *, principal: Principal, bot_ref: str, source_id: str
) -> None:
    source = await get_source(db, principal=principal, bot_ref=bot_ref, source_id=source_id)
    async with db.write() as session:
        # Pages found by a crawl go with their root.
        children = select(Source.id).where(Source.parent_id == source.id)
        await remove_sources(
            session, source.bot_id, [*(await session.scalars(children)), source.id]
        )
    forget_source_urls(source.bot_id)


async def count_by_status(db: Database) -> dict[str, int]:
    """Sources per ingestion status, every status present (zeros included)."""
    async with db.read() as session:
        rows = (
            await session.execute(select(Source.status, func.count()).group_by(Source.status))
        ).all()
    counts = {status.value: 0 for status in SourceStatus}
    counts.update({status: int(count) for status, count in rows})
    return counts


async def replace_text_sources(
    db: Database, *, principal: Principal, bot_ref: str, data: TextSourceIn
) -> Source:
    """Make ``data`` the bot's only text source (Chatbase's ``update-chatbot-data``): the new one
    is added (the same text again keeps its source and chunks), then the other text sources go."""
    found, cursor = [], None
    while True:
        page = await list_sources(
            db, principal=principal, bot_ref=bot_ref, limit=100, cursor=cursor
        )
        found.extend(s.id for s in page.items if s.type == SourceType.TEXT)
        if not page.has_more:
            break
        cursor = page.next_cursor
    kept = await add_text_source(db, principal=principal, bot_ref=bot_ref, data=data)
    for source_id in found:
        if source_id != kept.id:
            await delete_source(db, principal=principal, bot_ref=bot_ref, source_id=str(source_id))
    return kept


async def unfinished(db: Database, source_id: uuid.UUID) -> list[uuid.UUID]:
    """``source_id`` and the pages its crawl found that are still pending or processing."""
    async with db.read() as session:
        rows = await session.scalars(
            select(Source.id).where(
                (Source.id == source_id) | (Source.parent_id == source_id),
                Source.status.in_([SourceStatus.PENDING, SourceStatus.PROCESSING]),
            )
        )
        return list(rows)


async def source_by_id(db: Database, source_id: uuid.UUID) -> Source | None:
    """Any source by id, unscoped (for the local CLI, which holds the whole database)."""
    async with db.read() as session:
        return await session.get(Source, source_id)
