"""A SQLite cache of any embedder's vectors, so re-ingesting unchanged content costs nothing."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np

from chatwell.embedders.base import Embedder, EmbeddingError, as_text_list


class CachedEmbedder:
    """Wraps an embedder with a SQLite cache of its vectors.

    The key is sha256 over the model id, the truncation length and the text, so a different
    model or ``max_length`` never reads stale vectors. Duplicate texts in one call are embedded
    once. The cache is safe to share between threads and processes (WAL mode).
    """

    _LOOKUP_CHUNK = 500
    MEMORY_BATCH = 16  # ... for calls of at most this many texts (not an ingestion's batches)
    MEMORY_ENTRIES = 4096  # recent vectors also kept in memory: a repeated question skips the thread and the file

    def __init__(self, inner: Embedder, cache_dir: Path, *, filename: str = "embeddings.sqlite3"):
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.max_length = int(getattr(inner, "max_length", 0) or 0)
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / filename
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
                " WITHOUT ROWID"
            )
        self.hits = 0
        self.misses = 0
        self._recent: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, path={str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, text: str) -> bytes:
        prefix = f"{self.model_id}\x00{self.max_length}\x00"
        return hashlib.sha256((prefix + text).encode("utf-8", "surrogatepass")).digest()

    def _lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        width = self.dimension * 4
        with self._lock:
            for start in range(0, len(keys), self._LOOKUP_CHUNK):
                part = keys[start : start + self._LOOKUP_CHUNK]
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part
                ).fetchall()
                for key, blob in rows:
                    if len(blob) == width:  # a vector of another size is a stale entry
                        found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _store(self, keys: list[bytes], vectors: np.ndarray) -> None:
        rows = [
            (k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)
        ]
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def _plan(
        self, texts: list[str]
    ) -> tuple[list[bytes], dict[bytes, np.ndarray], list[str], list[bytes]]:
        keys = [self._key(t) for t in texts]
        found = self._lookup(list(dict.fromkeys(keys)))
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts):
            if key not in found and key not in missing:
                missing[key] = text
        return keys, found, list(missing.values()), list(missing.keys())

    def _assemble(self, keys: list[bytes], found: dict[bytes, np.ndarray]) -> np.ndarray:
        out = np.empty((len(keys), self.dimension), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out

    def _check(self, vectors: np.ndarray, expected: int) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (expected, self.dimension):
            raise EmbeddingError(
                f"embedder returned shape {vectors.shape}, expected ({expected}, {self.dimension})"
            )
        return vectors

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) <= self.MEMORY_BATCH:  # a question, a few Q&A headings: maybe all seen lately
            keys = [self._key(t) for t in texts]
            with self._recent_lock:
                recent = [self._recent.get(key) for key in keys]
                if all(v is not None for v in recent):
                    for key in keys:
                        self._recent.move_to_end(key)
                    self.hits += len(texts)
                    return np.stack(recent)  # type: ignore[arg-type]
        keys, found, missing_texts, missing_keys = await asyncio.to_thread(self._plan, texts)
        self.hits += len(texts) - len(missing_texts)
        self.misses += len(missing_texts)
        if missing_texts:
            fresh = self._check(await self.inner.embed(missing_texts), len(missing_texts))
            await asyncio.to_thread(self._store, missing_keys, fresh)
            found.update(zip(missing_keys, fresh))
        if len(texts) <= self.MEMORY_BATCH:
            with self._recent_lock:
                for key in keys:
                    self._recent[key] = found[key]
                    self._recent.move_to_end(key)
                while len(self._recent) > self.MEMORY_ENTRIES:
                    self._recent.popitem(last=False)
        return self._assemble(keys, found)
