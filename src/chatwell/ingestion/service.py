"""The ingestion pipeline: a pending source becomes searchable chunks.

load (file, text, Q&A, fetched page) -> clean text with structure -> split -> embed -> index.
``process_source`` is the one task function: the in-process worker runs it, and so does any
external queue. It reads in short transactions, does the slow work (fetch, parse, embed) with no
transaction open, and swaps the source's chunks in one final write, so a re-sync keeps serving
the old chunks until the new ones are ready, and a crash leaves the old state intact. Loading and
splitting run under the bounds of ``ingestion.extraction`` (text, chunks, memory, CPU, time); a
source deleted or re-synced meanwhile stops its work at once (its extraction process is killed,
and embedding stops at the next slice), and nothing of that run is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import delete, or_, select, update

from chatwell.domain.documents import LoadedDocument, LoaderError, Section
from chatwell.domain.ids import new_id
from chatwell.domain.models import SourceStatus, SourceType
from chatwell.domain.sources import RESYNC_EVERY
from chatwell.embedders.base import Embedder
from chatwell.ingestion.crawler import PathFilter, crawl
from chatwell.ingestion.extraction import (
    Extracted,
    ExtractionCancelled,
    ExtractionJob,
    ExtractionLimits,
    Extractor,
)
from chatwell.ingestion.fetch import FetchError, fetch_url
from chatwell.ingestion.removal import remove_sources
from chatwell.ingestion.splitter import embedding_text
from chatwell.retrieval.index import SearchIndex, bump_index_version
from chatwell.storage.database import Database, unavailable_reason
from chatwell.storage.tables import Chunk, Source, SourceContent, utcnow

log = logging.getLogger("chatwell.ingestion")
PROGRESS_SLICE = 64  # chunks embedded between progress reports of a large source
MAX_LISTED = 50  # failed pages of a crawl listed by URL (all of them are counted)


def next_sync_at(options: dict | None) -> datetime | None:
    """When a URL source with a re-sync schedule (``options["resync"]``) is due again."""
    every = RESYNC_EVERY.get(str((options or {}).get("resync") or ""))
    return utcnow() + every if every else None


@dataclass(frozen=True, slots=True)
class IngestionConfig:
    chunk_tokens: int = 256
    overlap_tokens: int = 32
    max_file_bytes: int = 20 * 1024 * 1024
    max_fetch_bytes: int = 10 * 1024 * 1024
    fetch_timeout: float = 20.0
    allow_private: bool = False
    crawl_concurrency: int = 4
    lease: timedelta = timedelta(minutes=2)
    limits: ExtractionLimits = ExtractionLimits()


class IngestionFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Ingestor:
    """Turns pending sources into chunks. One per process; safe to run many processes at once."""

    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        index: SearchIndex,
        config: IngestionConfig,
        *,
        worker_id: str | None = None,
    ):
        self.db = db
        self.embedder = embedder
        self.index = index
        self.config = config
        self.worker_id = worker_id or f"worker-{new_id().hex[:12]}"
        self.extractor = Extractor(config.limits)

    async def claim_next(self) -> uuid.UUID | None:
        """Atomically take the oldest pending source (or one whose worker's lease expired)."""
        now = utcnow()
        stale = now - self.config.lease
        async with self.db.write() as session:
            candidate = (
                select(Source.id)
                .where(
                    or_(
                        Source.status == SourceStatus.PENDING,
                        (Source.status == SourceStatus.PROCESSING) & (Source.locked_at < stale),
                    )
                )
                .order_by(Source.id)
                .limit(1)
            )
            if self.db.is_postgres:
                candidate = candidate.with_for_update(skip_locked=True)
            source_id = await session.scalar(candidate)
            if source_id is None:
                return None
            await session.execute(
                update(Source)
                .where(Source.id == source_id)
                .values(
                    status=SourceStatus.PROCESSING,
                    locked_by=self.worker_id,
                    locked_at=now,
                    attempts=Source.attempts + 1,
                    progress=0.0,
                )
            )
            return source_id

    async def claim_source(self, source_id: uuid.UUID) -> bool:
        """Take this one source if it is waiting (the CLI ingests what it just added)."""
        now = utcnow()
        async with self.db.write() as session:
            result = await session.execute(
                update(Source)
                .where(
                    Source.id == source_id,
                    or_(
                        Source.status == SourceStatus.PENDING,
                        (Source.status == SourceStatus.PROCESSING)
                        & (Source.locked_at < now - self.config.lease),
                    ),
                )
                .values(
                    status=SourceStatus.PROCESSING,
                    locked_by=self.worker_id,
                    locked_at=now,
                    attempts=Source.attempts + 1,
                    progress=0.0,
                )
            )
            return bool(result.rowcount)

    async def process_source(self, source_id: uuid.UUID) -> None:
        """Run the pipeline for one claimed source; it ends ``ready`` or ``failed``."""
        async with self.db.read() as session:
            source = await session.get(Source, source_id)
            content = await session.get(SourceContent, source_id)
        if source is None:
            return
        heartbeat = asyncio.create_task(self._keep_lease(source_id))
        try:
            await self._process(source, content)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _process(self, source: Source, content: SourceContent | None) -> None:
        source_id = source.id
        try:
            if (
                source.type == SourceType.URL
                and source.options.get("crawl")
                and source.parent_id is None
            ):
                await self._crawl_site(source)
                return
            extracted = await self._extract(source, content.data if content else None)
            await self._index(source, extracted)
        except ExtractionCancelled:
            log.info(
                "ingestion of source %s stopped: the source was deleted or queued again", source_id
            )
        except (LoaderError, FetchError, IngestionFailed) as exc:
            await self._fail(source, exc.code, exc.message)
        except Exception as exc:
            if unavailable_reason(exc) is not None:
                # The database was locked or went away: not the source's fault. Put it back in
                # the queue (chunks are replaced whole, so a second run duplicates nothing).
                log.warning(
                    "ingestion of source %s interrupted: %s; queued again",
                    source_id,
                    type(exc).__name__,
                )
                await self._release(source_id)
                return
            log.exception("ingestion of source %s failed", source_id)
            await self._fail(
                source, "internal_error", "Ingestion failed unexpectedly; see the server log."
            )

    async def _keep_lease(self, source_id: uuid.UUID) -> None:
        """Renew this worker's lease while it works, so no other worker takes the source over."""
        interval = max(1.0, self.config.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.db.write() as session:
                    await session.execute(
                        update(Source)
                        .where(Source.id == source_id, Source.locked_by == self.worker_id)
                        .values(locked_at=utcnow())
                    )
            except Exception as exc:  # a missed renewal is retried; the lease outlasts two of them
                log.warning(
                    "could not renew the lease of source %s (%s)", source_id, type(exc).__name__
                )

    async def run_until_idle(self) -> int:
        """Process every pending source, one at a time; returns how many were processed."""
        done = 0
        while (source_id := await self.claim_next()) is not None:
            await self.process_source(source_id)
            done += 1
        return done

    async def still_claimed(self, source: Source) -> bool:
        """Whether this worker's claim on ``source`` still stands: not deleted, not re-synced (which
        releases it), not taken over by another worker, not claimed again since."""
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(Source.locked_by, Source.attempts).where(Source.id == source.id)
                )
            ).first()
        return (
            row is not None and row.locked_by == self.worker_id and row.attempts == source.attempts
        )

    # ------------------------------------------------------------------------------- stages

    async def _extract(self, source: Source, data: bytes | None) -> Extracted:
        """The source's title and chunk drafts, within the extraction limits."""
        job = functools.partial(
            ExtractionJob,
            source_type=str(source.type),
            source_title=source.title,
            source_url=source.url,
            url=source.url,
            filename=source.filename,
            max_bytes=self.config.max_file_bytes,
            chunk_tokens=self.config.chunk_tokens,
            overlap_tokens=self.config.overlap_tokens,
        )
        if source.type == SourceType.QA:
            assert data is not None
            pair = json.loads(data)
            document = LoadedDocument(
                title=pair["question"],
                mime_type="application/x-qa",
                sections=[Section(text=pair["answer"], heading_path=(pair["question"],))],
            )
            return await self.extractor.run(
                job(declared_type=None, document=document), lambda: self.still_claimed(source)
            )
        if source.type == SourceType.URL and data is None:
            page = await fetch_url(
                source.url or "",
                allow_private=self.config.allow_private,
                max_bytes=self.config.max_fetch_bytes,
                timeout=self.config.fetch_timeout,
            )
            return await self.extractor.run(
                job(
                    data=page.body,
                    declared_type=page.content_type,
                    max_bytes=self.config.max_fetch_bytes,
                    url=page.final_url,
                    filename=None,
                ),
                lambda: self.still_claimed(source),
            )
        if data is None:
            raise IngestionFailed("malformed_file", "The source has no stored content.")
        declared = source.mime_type
        if source.type == SourceType.TEXT:
            # Pasted text is often Markdown; the Markdown loader reads plain prose the same way.
            declared = "text/markdown"
        return await self.extractor.run(
            job(data=data, declared_type=declared), lambda: self.still_claimed(source)
        )

    async def _index(self, source: Source, extracted: Extracted) -> None:
        drafts = extracted.drafts
        if not drafts:
            raise IngestionFailed("empty_document", "The document contains no readable text.")
        vectors = await self._embed(source, [embedding_text(d.heading, d.text) for d in drafts])
        async with self.db.write() as session:
            current = await session.get(Source, source.id)
            if (
                current is None
                or current.locked_by != self.worker_id
                or current.attempts != source.attempts
            ):
                return  # deleted or re-synced while we worked, or our lease passed to another worker
            await session.execute(delete(Chunk).where(Chunk.source_id == source.id))
            chunks = [
                Chunk(
                    workspace_id=source.workspace_id,
                    bot_id=source.bot_id,
                    source_id=source.id,
                    position=d.position,
                    text=d.text,
                    heading=d.heading,
                    page=d.page,
                    token_count=d.token_count,
                    content_hash=d.content_hash,
                    embedding_model=self.embedder.model_id,
                )
                for d in drafts
            ]
            session.add_all(chunks)
            await self.index.store_vectors(session, chunks, vectors)
            current.status = SourceStatus.READY
            current.chunk_count = len(chunks)
            current.progress = 1.0
            current.error = current.error_code = None
            current.locked_by = current.locked_at = None
            current.synced_at = utcnow()
            current.next_sync_at = next_sync_at(current.options)
            current.title = extracted.title
            await bump_index_version(session, source.bot_id)

    async def _embed(self, source: Source, texts: list[str]) -> np.ndarray:
        """Embed in slices; a large source reports progress (and renews its lease) per slice, and
        stops when its claim is gone (deleted or re-synced meanwhile)."""
        if len(texts) <= PROGRESS_SLICE:
            return await self.embedder.embed(texts)
        parts = []
        for start in range(0, len(texts), PROGRESS_SLICE):
            parts.append(await self.embedder.embed(texts[start : start + PROGRESS_SLICE]))
            if not await self._progress(
                source, 0.1 + 0.85 * min(1.0, (start + PROGRESS_SLICE) / len(texts))
            ):
                raise ExtractionCancelled()
        return np.concatenate(parts)

    async def _crawl_site(self, root: Source) -> None:
        """Fetch the site's pages; each becomes its own pending source under ``root``.

        The root stays ``processing`` while the crawl runs and records what it met in its options
        (``pages`` found, ``failed_pages`` that could not be fetched), so the dashboard shows the
        crawl as one row with live counts. A page whose content has not changed since the last
        crawl keeps its chunks (a scheduled re-crawl re-embeds only what changed). A page an
        earlier crawl found that this one, reaching the whole site within its limits, no longer
        finds (removed, or now excluded) is removed with its chunks; while a page is down, only
        the pages that answer 404 or 410 are.
        """
        options = root.options or {}
        max_pages = int(options.get("max_pages", 50))
        found = 0
        seen: set[str] = set()
        failed: list[dict[str, str]] = []
        gone: set[str] = set()  # answered 404 or 410: removed from the site
        down: set[str] = set()  # failed otherwise: may be back soon, and so may what it links to

        def record_failure(url: str, error: FetchError) -> None:
            failed.append({"url": url, "error": error.message[:300]})
            (gone if error.status in (404, 410) else down).add(url)

        async for page in crawl(
            root.url or "",
            max_pages=max_pages,
            max_depth=int(options.get("max_depth", 2)),
            concurrency=self.config.crawl_concurrency,
            allow_private=self.config.allow_private,
            paths=PathFilter(
                include=tuple(options.get("include") or ()),
                exclude=tuple(options.get("exclude") or ()),
            ),
            on_failed=record_failure,
        ):
            digest = hashlib.sha256(page.body).hexdigest()
            seen.add(page.final_url)
            async with self.db.write() as session:
                existing = await session.scalar(
                    select(Source).where(Source.parent_id == root.id, Source.url == page.final_url)
                )
                if existing is None:
                    existing = Source(
                        workspace_id=root.workspace_id,
                        bot_id=root.bot_id,
                        parent_id=root.id,
                        type=SourceType.URL,
                        title=page.final_url,
                        url=page.final_url,
                        options={"fetched": True},
                    )
                    session.add(existing)
                    await session.flush()
                elif existing.content_hash == digest and existing.status == SourceStatus.READY:
                    existing = None  # unchanged since the last crawl: its chunks stay
                else:
                    await session.execute(
                        delete(SourceContent).where(SourceContent.source_id == existing.id)
                    )
                if existing is not None:
                    existing.mime_type = page.content_type
                    existing.size_bytes = len(page.body)
                    existing.content_hash = digest
                    existing.status = SourceStatus.PENDING
                    existing.error = existing.error_code = None
                    session.add(SourceContent(source_id=existing.id, data=page.body))
                found += 1
                await session.execute(
                    update(Source)
                    .where(Source.id == root.id, Source.locked_by == self.worker_id)
                    .values(
                        locked_at=utcnow(),
                        options={**options, "pages": found, "failed_pages": failed[:MAX_LISTED]},
                        progress=min(0.99, found / max(1, max_pages)),
                    )
                )
        summary = {**options, "pages": found, "failed_pages": failed[:MAX_LISTED]}
        summary["failed_count"] = len(failed)
        if found == 0:
            async with self.db.write() as session:
                await session.execute(
                    update(Source)
                    .where(Source.id == root.id, Source.locked_by == self.worker_id)
                    .values(options=summary)
                )
            raise IngestionFailed("fetch_failed", "No page of the site could be fetched.")
        async with self.db.write() as session:
            if found < max_pages:  # not cut short by its page cap
                # With no page down it saw every page it may reach: the others are gone. With a
                # page down (back soon, with what only it links to, or stored under the address
                # its link redirected to) only the pages that answered 404 or 410 are.
                pages = await session.execute(
                    select(Source.id, Source.url).where(Source.parent_id == root.id)
                )
                await remove_sources(
                    session,
                    root.bot_id,
                    [id_ for id_, url in pages if (url in gone if down else url not in seen)],
                )
            await session.execute(
                update(Source)
                .where(Source.id == root.id, Source.locked_by == self.worker_id)
                .values(
                    status=SourceStatus.READY,
                    progress=1.0,
                    chunk_count=0,
                    error=None,
                    error_code=None,
                    locked_by=None,
                    locked_at=None,
                    synced_at=utcnow(),
                    next_sync_at=next_sync_at(options),
                    options=summary,
                )
            )

    async def queue_due_resyncs(self) -> int:
        """Queue again every URL source whose scheduled re-sync (daily, weekly) is due; returns
        how many. Both workers call this: the in-process one now and then, procrastinate's sweep
        every minute."""
        now = utcnow()
        async with self.db.write() as session:
            result = await session.execute(
                update(Source)
                .where(
                    Source.next_sync_at.is_not(None),
                    Source.next_sync_at <= now,
                    Source.status.in_([SourceStatus.READY, SourceStatus.FAILED]),
                )
                .values(
                    status=SourceStatus.PENDING,
                    progress=0.0,
                    next_sync_at=None,
                    locked_by=None,
                    locked_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount or 0)

    async def _progress(self, source: Source, value: float) -> bool:
        """Record progress under this worker's claim; False when the claim is gone."""
        async with self.db.write() as session:
            result = await session.execute(
                update(Source)
                .where(
                    Source.id == source.id,
                    Source.locked_by == self.worker_id,
                    Source.attempts == source.attempts,
                )
                .values(progress=value, locked_at=utcnow())
            )
            return bool(result.rowcount)

    async def _release(self, source_id: uuid.UUID) -> None:
        """Hand a source this worker holds back to the queue; when even that fails, the lease
        runs out and any worker takes it up again."""
        try:
            async with self.db.write() as session:
                await session.execute(
                    update(Source)
                    .where(Source.id == source_id, Source.locked_by == self.worker_id)
                    .values(
                        status=SourceStatus.PENDING, progress=0.0, locked_by=None, locked_at=None
                    )
                )
        except Exception as exc:
            log.warning(
                "could not requeue source %s (%s); its lease will run out",
                source_id,
                type(exc).__name__,
            )

    async def _fail(self, source: Source, code: str, message: str) -> None:
        async with self.db.write() as session:
            await session.execute(
                update(Source)
                .where(
                    Source.id == source.id,
                    Source.locked_by == self.worker_id,
                    Source.attempts == source.attempts,
                )
                .values(
                    status=SourceStatus.FAILED,
                    next_sync_at=next_sync_at(source.options),
                    error_code=code,
                    error=message,
                    progress=1.0,
                    locked_by=None,
                    locked_at=None,
                )
            )
