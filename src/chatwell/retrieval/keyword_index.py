"""BM25 over one bot's chunks, held in memory: the embedded default's keyword search.

Each chunk's terms are analysed once, when it is stored (:func:`encode_terms`, kept in
``chunks.terms``), and a bot's postings are loaded with its vectors into sorted numpy arrays
(:class:`KeywordIndex`); a query adds up one precomputed weight per posting of each of its terms,
so a large bot's common words cost well under a millisecond (figures on the docs' performance
page).

Scoring is BM25 with column weights (heading counts twice, text once: the
term frequency is ``2 * tf(heading) + tf(text)``, the length ``2 * |heading| + |text|``),
``k1 = 1.2``, ``b = 0.4`` (milder length normalisation than the usual 0.75: the splitter already
bounds every chunk's length), and Lucene's always-positive IDF ``ln(1 + (N - df + 0.5) / (df + 0.5))``;
statistics are the bot's own, not the whole database's. Words are split like SQLite's
``unicode61`` tokenizer (runs of letters and digits, lower-cased, diacritics removed), stopwords
are left out of the postings (a question drops them too) and the rest are Porter-stemmed. A term
is kept as the CRC-32 of its stem: a collision merges two words' postings, about once in 10,000
query words for a vocabulary of 500,000 stems.
"""

from __future__ import annotations

import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chatwell.retrieval.text_search import MAX_TERM_CHARS, STOPWORDS, TOKEN, porter_stems

__all__ = ["HEADING_WEIGHT", "KeywordIndex", "analyze", "encode_terms", "term_keys"]

K1 = 1.2
#: Chunks are length-bounded by the splitter, so a long chunk is rarely padded and is penalised
#: less than a long document would be (chosen on SciFact's train queries; figures in docs/performance.md).
B = 0.4
#: A word in the heading (title > section path) counts this many times one in the text.
HEADING_WEIGHT = 2
_HEADER = np.dtype("<u4")  # the chunk's weighted length
_RECORD = np.dtype([("key", "<u4"), ("tf", "<u2")])
_STEMS: dict[str, str] = {}
_STEM_CACHE_LIMIT = 500_000


def _words(text: str) -> list[str]:
    text = text.lower()
    if not text.isascii():
        text = "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )
    return TOKEN.findall(text)


def _stems(words: list[str]) -> list[str]:
    """Porter stems of the non-stopwords among ``words`` (memoised: a corpus repeats its words).

    Called from the event loop and from worker threads at once: a full memo is replaced, never
    cleared, so a caller still holding the old one finds every word it looked up there."""
    global _STEMS
    stems = _STEMS
    missing = [
        w for w in set(words) if w not in stems and w not in STOPWORDS and len(w) <= MAX_TERM_CHARS
    ]
    if missing:
        if len(stems) > _STEM_CACHE_LIMIT:
            stems = _STEMS = {}
        stems.update(zip(missing, porter_stems(missing), strict=True))
    return [stems[w] for w in words if w in stems]


def analyze(text: str) -> list[str]:
    """The stems of ``text`` as they are indexed (stopwords left out)."""
    return _stems(_words(text))


def _key(stem: str) -> int:
    return zlib.crc32(stem.encode())


def term_keys(terms: Sequence[str]) -> list[int]:
    """Index keys of a question's terms (as :func:`chatwell.retrieval.text_search.query_terms`
    gives them), without duplicates."""
    return list(dict.fromkeys(_key(s) for s in analyze(" ".join(terms))))


def encode_terms(heading: str, text: str) -> bytes:
    """A chunk's postings: its weighted length, then (key, weighted tf) per distinct term."""
    heading_words, text_words = _words(heading or ""), _words(text or "")
    counts: Counter[int] = Counter()
    for stem in _stems(heading_words):
        counts[_key(stem)] += HEADING_WEIGHT
    for stem in _stems(text_words):
        counts[_key(stem)] += 1
    records = np.fromiter(
        ((key, min(tf, 0xFFFF)) for key, tf in counts.items()), dtype=_RECORD, count=len(counts)
    )
    length = HEADING_WEIGHT * len(heading_words) + len(text_words)
    return np.asarray([length], dtype=_HEADER).tobytes() + records.tobytes()


@dataclass(frozen=True, slots=True)
class KeywordIndex:
    """Postings of one bot's chunks, grouped by term: ``keys[i]``'s postings are
    ``docs[starts[i]:starts[i + 1]]`` (positions in the chunk list it was built from) with their
    BM25 term-frequency factors ``weights[...]``."""

    size: int
    keys: np.ndarray  # uint32, sorted, distinct
    starts: np.ndarray  # int64, len(keys) + 1
    docs: np.ndarray  # int32
    weights: np.ndarray  # float32

    @classmethod
    def build(cls, encoded: Sequence[bytes]) -> KeywordIndex:
        """From each chunk's :func:`encode_terms`, in the order positions should refer to."""
        size = len(encoded)
        lengths = np.empty(size, dtype=np.float32)
        counts = np.empty(size, dtype=np.int64)
        width = _HEADER.itemsize
        for i, blob in enumerate(encoded):
            lengths[i] = int.from_bytes(blob[:width], "little")
            counts[i] = (len(blob) - width) // _RECORD.itemsize
        records = np.frombuffer(b"".join(blob[width:] for blob in encoded), dtype=_RECORD)
        docs = np.repeat(np.arange(size, dtype=np.int32), counts)
        average = float(lengths.mean()) if size and lengths.any() else 1.0
        norm = (K1 * (1.0 - B + B * lengths / average)).astype(np.float32)
        tf = records["tf"].astype(np.float32)
        weights = tf * np.float32(K1 + 1.0) / (tf + norm[docs])
        order = np.argsort(records["key"], kind="stable")
        sorted_keys = records["key"][order]
        keys, starts = np.unique(sorted_keys, return_index=True)
        return cls(
            size=size,
            keys=keys,
            starts=np.append(starts, sorted_keys.size).astype(np.int64),
            docs=docs[order],
            weights=weights[order],
        )

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.starts.nbytes + self.docs.nbytes + self.weights.nbytes

    def top(self, keys: Sequence[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and BM25 scores of the ``k`` best chunks for the query ``keys``."""
        if not keys or k <= 0 or self.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.keys.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        wanted = np.unique(np.asarray(keys, dtype=np.uint32))
        positions = np.minimum(np.searchsorted(self.keys, wanted), self.keys.size - 1)
        found = positions[self.keys[positions] == wanted]
        scores = np.zeros(self.size, dtype=np.float32)
        for i in found:
            first, last = int(self.starts[i]), int(self.starts[i + 1])
            df = last - first
            idf = np.float32(np.log1p((self.size - df + 0.5) / (df + 0.5)))
            scores[self.docs[first:last]] += idf * self.weights[first:last]
        # A partition of the whole array beats gathering the non-zero scores first (1.7 vs 3.6 ms
        # for eight terms with 225k postings in 100k chunks).
        best = np.argpartition(-scores, k - 1)[:k] if k < self.size else np.arange(self.size)
        best = best[scores[best] > 0]
        return best, scores[best]
