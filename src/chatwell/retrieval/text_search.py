"""Turn a user's question into safe keyword terms: for the in-memory BM25 index (SQLite) or a
PostgreSQL full-text query.

User text must never be parsed as query syntax: operators, quotes or parentheses in a question
would otherwise raise errors or change the meaning. So the question is split into word tokens
(runs of letters and digits, as ``unicode61``-style tokenizers split documents), stopwords are
dropped, and the terms are ORed: ranking by how many and how rare the matched words are finds
passages for natural-language questions that requiring every word would miss.

* :func:`query_terms` – the cleaned, de-duplicated, lower-cased terms.
* :func:`postgres_tsquery` – for ``to_tsquery('english', :q)`` (bind it as a parameter); ``None``
  when the question has no searchable word (skip the keyword search then).
* :func:`rare_terms` – drop the terms most of a large index contains (see there).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

__all__ = [
    "DEFAULT_MAX_TERMS",
    "STOPWORDS",
    "english_stems",
    "porter_stems",
    "postgres_or_query",
    "postgres_tsquery",
    "query_terms",
    "rare_terms",
]

#: Longer questions are cut: each extra OR term makes the index visit more rows.
DEFAULT_MAX_TERMS = 32
#: Tokens longer than this are junk (hashes, base64) and only slow the index down.
MAX_TERM_CHARS = 64

# Letters and digits of any script; everything else (punctuation, symbols, spaces, `_`)
# separates tokens, as in SQLite's unicode61 tokenizer.
TOKEN = re.compile(r"[^\W_]+")

#: English function words and question words. Removing them from the OR-query keeps rare,
#: meaningful terms in charge of the ranking and avoids matching nearly every chunk.
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are aren as at be because been before
    being below between both but by can cannot could couldn did didn do does doesn doing don
    down during each few for from further had hadn has hasn have haven having he her here hers
    herself him himself his how i if in into is isn it its itself just let me more most mustn
    my myself no nor not now of off on once only or other ought our ours ourselves out over own
    same shan she should shouldn so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was wasn we were weren what
    when where which while who whom why will with won would wouldn you your yours yourself
    yourselves s t d ll m re ve y tell please
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def query_terms(
    question: str,
    *,
    drop_stopwords: bool = True,
    max_terms: int = DEFAULT_MAX_TERMS,
) -> list[str]:
    """Lower-cased word tokens of ``question`` in first-seen order, without duplicates.

    Stopwords are dropped unless that would leave nothing (a question like "Who are you?"
    still searches for its words).
    """
    text = unicodedata.normalize("NFKC", question or "")
    tokens: list[str] = []
    seen: set[str] = set()
    for match in TOKEN.finditer(text):
        # lower(), not casefold(): "ß" stays "ß", as the keyword index folds documents.
        token = match.group().lower()
        if len(token) > MAX_TERM_CHARS or token in seen:
            continue
        seen.add(token)
        tokens.append(token)
    if drop_stopwords:
        content = [t for t in tokens if t not in STOPWORDS]
        if content:
            tokens = content
    return tokens[: max(max_terms, 0)]


#: Pruning starts at this many indexed chunks: below it every term is cheap to rank.
PRUNE_MIN_CHUNKS = 20_000
#: A term in more than this share of the chunks is dropped from a large index's query (it
#: ranks almost nothing and costs the most) ...
PRUNE_MAX_DF = 0.05
#: ... but the query keeps at least this many of its rarest terms.
PRUNE_KEEP = 3


def porter_stems(terms: list[str]) -> list[str]:
    """The Porter stems of ``terms`` (as SQLite's ``porter`` tokenizer indexes them)."""
    return _stemmer("porter").stemWords(terms)


def english_stems(terms: list[str]) -> list[str]:
    """The Snowball English stems of ``terms`` (PostgreSQL's ``english`` configuration's lexemes)."""
    return _stemmer("english").stemWords(terms)


_STEMMERS = threading.local()


def _stemmer(algorithm: str) -> Any:
    """One stemmer per algorithm and thread, built once. A Snowball stemmer keeps the word it is
    working on in itself: shared between threads (the event loop stems questions while worker
    threads analyse chunks being stored or loaded) it mixes words up or raises IndexError."""
    stemmers = getattr(_STEMMERS, "by_algorithm", None)
    if stemmers is None:
        stemmers = _STEMMERS.by_algorithm = {}
    stemmer = stemmers.get(algorithm)
    if stemmer is None:
        import snowballstemmer

        stemmer = stemmers[algorithm] = snowballstemmer.stemmer(algorithm)
    return stemmer


def rare_terms(
    terms: list[str],
    document_frequency: dict[str, int],
    total: int,
    *,
    max_df: float = PRUNE_MAX_DF,
    keep: int = PRUNE_KEEP,
) -> list[str]:
    """``terms`` without those in more than ``max_df`` of ``total`` chunks, keeping at least the
    ``keep`` rarest (a term whose frequency is unknown counts as rare).

    Ranking an OR query costs one score per matching chunk; in a large index a word such as
    "patients" matches a third of it and decides almost nothing (its IDF is near zero), so the
    rare words rank alone. Small indexes (below :data:`PRUNE_MIN_CHUNKS`) keep every term.
    """
    if total < PRUNE_MIN_CHUNKS or len(terms) <= keep:
        return terms
    limit = max_df * total
    by_rarity = sorted(terms, key=lambda t: document_frequency.get(t, 0))
    kept = {t for i, t in enumerate(by_rarity) if i < keep or document_frequency.get(t, 0) <= limit}
    return [t for t in terms if t in kept]


def postgres_tsquery(
    question: str,
    *,
    drop_stopwords: bool = True,
    max_terms: int = DEFAULT_MAX_TERMS,
) -> str | None:
    """A ``to_tsquery`` expression ``'t1' | 't2' ...`` for ``question``, or ``None``.

    Each term is a quoted lexeme, so ``& | ! ( ) : * <->`` typed by the user cannot appear as
    operators; ``to_tsquery('english', ...)`` still stems each term and drops its own stopwords.
    """
    return postgres_or_query(
        query_terms(question, drop_stopwords=drop_stopwords, max_terms=max_terms)
    )


def postgres_or_query(terms: list[str]) -> str | None:
    """``'t1' | 't2' ...`` for already cleaned terms (see :func:`postgres_tsquery`)."""
    if not terms:
        return None
    # Single quote and backslash are the only characters with a meaning inside a quoted lexeme.
    return " | ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)
