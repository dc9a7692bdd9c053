"""Turn a user's question into a safe keyword query for SQLite FTS5 or PostgreSQL full-text search.

User text must never be parsed as query syntax: ``NEAR``, ``AND``, ``*``, ``-col:``, quotes or
parentheses in a question would otherwise raise errors or change the meaning. So the question is
split into word tokens the same way FTS5's ``unicode61`` tokenizer splits documents (runs of
letters and digits), stopwords are dropped, and every remaining token is emitted as a quoted
string joined with ``OR``. OR-of-terms lets ``bm25()`` / ``ts_rank_cd`` rank documents by how
many and how rare the matched words are, instead of requiring every word (FTS5's implicit AND),
which finds nothing for most natural-language questions.

* :func:`query_terms` – the cleaned, de-duplicated, lower-cased terms.
* :func:`fts5_match_query` – for ``WHERE chunks_fts MATCH ?`` (bind it as a parameter).
* :func:`postgres_tsquery` – for ``to_tsquery('english', :q)`` (bind it as a parameter).

Both return ``None`` when the question has no searchable word; skip the keyword search then.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "DEFAULT_MAX_TERMS",
    "STOPWORDS",
    "fts5_match_query",
    "postgres_tsquery",
    "query_terms",
]

#: Longer questions are cut: each extra OR term makes the index visit more rows.
DEFAULT_MAX_TERMS = 32
#: Tokens longer than this are junk (hashes, base64) and only slow the index down.
_MAX_TERM_CHARS = 64

# Letters and digits of any script; everything else (punctuation, symbols, spaces, `_`)
# separates tokens, as in FTS5's unicode61 tokenizer.
_TOKEN = re.compile(r"[^\W_]+")

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
    for match in _TOKEN.finditer(text):
        # lower(), not casefold(): FTS5 folds case one character at a time, so "ß" stays "ß".
        token = match.group().lower()
        if len(token) > _MAX_TERM_CHARS or token in seen:
            continue
        seen.add(token)
        tokens.append(token)
    if drop_stopwords:
        content = [t for t in tokens if t not in STOPWORDS]
        if content:
            tokens = content
    return tokens[: max(max_terms, 0)]


def fts5_match_query(
    question: str,
    *,
    drop_stopwords: bool = True,
    max_terms: int = DEFAULT_MAX_TERMS,
) -> str | None:
    """An FTS5 MATCH expression ``"t1" OR "t2" ...`` for ``question``, or ``None``.

    Each term is an FTS5 string literal, so it is only ever tokenized (and stemmed by the
    ``porter`` tokenizer) and never read as an operator, column filter or prefix query.
    """
    terms = query_terms(question, drop_stopwords=drop_stopwords, max_terms=max_terms)
    if not terms:
        return None
    # Tokens hold only letters and digits, but double any quote anyway: it is the one
    # character with a meaning inside an FTS5 string.
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


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
    terms = query_terms(question, drop_stopwords=drop_stopwords, max_terms=max_terms)
    if not terms:
        return None
    # Single quote and backslash are the only characters with a meaning inside a quoted lexeme.
    return " | ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)
