"""Split a LoadedDocument into token-bounded ChunkDrafts, keeping structure where it can.

Order of preference: a section (one heading path) never shares a chunk with another; whole
paragraphs are packed together; a paragraph too big for one chunk is cut between sentences;
a sentence too big is cut between words; a word too big is cut between characters. Consecutive
chunks of a section overlap by whole trailing sentences. Every chunk, counted *with* its heading
context (see :func:`embedding_text`), fits ``chunk_tokens`` according to the injected
``count_tokens``. Pure and deterministic: no I/O, no tokenizer loading, no randomness.

Counting is most of the splitter's time (every packing decision recounted the whole chunk, some
four times per chunk: as long as ten pages' HTML parsing). Pieces joined by whitespace count
about as the sum of their counts (exactly, for the word-piece tokenizers that split on
whitespace first), so a decision is taken on that sum when it is more than
:data:`ESTIMATE_MARGIN` tokens away from the limit, and on an exact count otherwise.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from chatwell.domain.documents import ChunkDraft, LoadedDocument

__all__ = [
    "content_hash",
    "embedding_text",
    "normalize_for_hash",
    "split_document",
    "split_sentences",
]

CountTokens = Callable[[str], int]

HEADING_SEPARATOR = " > "
ESTIMATE_MARGIN = 16  # tokens: closer to the limit than this, a packing decision counts exactly
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
# A whitespace run, or the empty position right after a CJK full stop (no space follows those).
_GAP = re.compile(r"\s+|(?<=[。！？])(?=\S)")
_CLOSERS = "\"'”’)]»"
_TERMINALS = ".!?…"
# Abbreviations whose trailing period does not end a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e eg ie no nr fig approx inc ltd co corp dept "
    "est jan feb mar apr jun jul aug sep sept oct nov dec mt ft ca cf al".split()
)


@dataclass(frozen=True, slots=True)
class _Piece:
    """A sentence (or a cut of one) and the separator that joins it to the piece before."""

    text: str
    # "\n\n" between paragraphs, "\n" between lines, " " between sentences, "" inside a word.
    sep: str
    whole: bool = True  # False for a word or character window cut out of an oversized sentence


def embedding_text(heading: str, text: str) -> str:
    """The text a chunk is embedded and counted as: its heading context, a blank line, its body."""
    return f"{heading}\n\n{text}" if heading else text


def normalize_for_hash(text: str) -> str:
    """NFKC, all whitespace runs collapsed to one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def content_hash(text: str) -> str:
    """sha256 hex digest of the normalised text (stable across whitespace-only edits)."""
    return hashlib.sha256(normalize_for_hash(text).encode("utf-8")).hexdigest()


def split_document(
    doc: LoadedDocument,
    *,
    count_tokens: CountTokens,
    chunk_tokens: int = 256,
    overlap_tokens: int = 32,
    heading_prefix: str = "",
    estimate_margin: int | None = ESTIMATE_MARGIN,
) -> list[ChunkDraft]:
    """Chunk ``doc`` section by section; positions run 0..n-1 across the whole document.

    ``heading_prefix`` (e.g. the source title) is put in front of every heading path (unless
    the path already starts with it), so it is part of the counted, embedded and hashed text.
    ``content_hash`` covers :func:`embedding_text` (heading + body), so a chunk whose heading
    changed is re-embedded even if its body did not. ``estimate_margin=None`` counts every
    packing decision exactly (the reference the estimate is tested against).
    """
    if chunk_tokens < 1:
        raise ValueError("chunk_tokens must be positive")
    if not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError("overlap_tokens must be >= 0 and smaller than chunk_tokens")
    if count_tokens("a") > chunk_tokens:
        raise ValueError(f"chunk_tokens={chunk_tokens} cannot hold even one character")
    drafts: list[ChunkDraft] = []
    for section in doc.sections:
        if not section.text.strip():
            continue
        path = [h.strip() for h in section.heading_path if h.strip()]
        prefix = heading_prefix.strip()
        if prefix and (not path or path[0] != prefix):
            path.insert(0, prefix)
        heading = _fit_heading(HEADING_SEPARATOR.join(path), count_tokens, chunk_tokens)
        bodies = _Packer(heading, count_tokens, chunk_tokens, overlap_tokens, estimate_margin).pack(
            section.text
        )
        counts = [count_tokens(embedding_text(heading, body)) for body in bodies]
        if estimate_margin is not None and max(counts, default=0) > chunk_tokens:
            # The estimate misjudged this section (a counter far from additive), or one unit is too
            # big for any chunk: pack it again counting exactly, as the estimate never may overfill.
            bodies = _Packer(heading, count_tokens, chunk_tokens, overlap_tokens, None).pack(
                section.text
            )
            counts = [count_tokens(embedding_text(heading, body)) for body in bodies]
        for body, tokens in zip(bodies, counts, strict=True):
            full = embedding_text(heading, body)
            drafts.append(
                ChunkDraft(
                    text=body,
                    heading=heading,
                    page=section.page,
                    position=len(drafts),
                    token_count=tokens,
                    content_hash=content_hash(full),
                )
            )
    return drafts


def split_sentences(paragraph: str) -> list[str]:
    """Sentences (and lines) of one paragraph, in order; joined back they give the paragraph."""
    return [piece.text for piece in _sentence_pieces(paragraph, "")]


def _sentence_pieces(paragraph: str, first_sep: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    sep = first_sep
    start = 0
    for gap in _GAP.finditer(paragraph):
        if gap.start() == 0:
            continue
        whitespace = gap.group()
        if "\n" in whitespace:
            kind = "\n"
        elif not whitespace:
            kind = ""  # after a CJK full stop
        elif _ends_sentence(paragraph, gap.start(), gap.end()):
            kind = " "
        else:
            continue
        text = paragraph[start : gap.start()]
        if text.strip():
            pieces.append(_Piece(text, sep))
            sep = kind
        start = gap.end()
    tail = paragraph[start:].strip()
    if tail:
        pieces.append(_Piece(tail, sep))
    return pieces


def _ends_sentence(text: str, end: int, next_start: int) -> bool:
    before = text[max(0, end - 64) : end].rstrip(_CLOSERS)  # a window: slicing from 0 is quadratic
    if not before or before[-1] not in _TERMINALS:
        return False
    if next_start < len(text) and text[next_start].islower():
        return False  # "e.g. the", "approx. five": a lowercase continuation is not a new sentence
    if before[-1] == ".":
        word = before.rsplit(None, 1)[-1].rstrip(".").lstrip("(\"'“‘").lower()
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            return False
    return True


def _render(pieces: list[_Piece]) -> str:
    return "".join((piece.sep if index else "") + piece.text for index, piece in enumerate(pieces))


def _longest_prefix(size: int, fits: Callable[[int], bool], hint: int = 1) -> int:
    """Largest k in 1..size with fits(k), assuming fits is monotone; 1 if even that fails.

    Gallops away from ``hint`` (a guess, e.g. the previous window's size) in growing steps,
    then bisects, so the number of probes grows with the distance from the guess, not ``size``.
    """
    if size <= 1:
        return size
    hint = max(1, min(hint, size))
    step = max(1, hint // 8)
    if fits(hint):
        good, bad = hint, size + 1
        while good < size:
            probe = min(good + step, size)
            if not fits(probe):
                bad = probe
                break
            good, step = probe, step * 2
        if good == size:
            return size
    else:
        good, bad = 0, hint
        while good == 0:
            probe = max(1, bad - step)
            if fits(probe):
                good = probe
            elif probe == 1:
                return 1  # nothing fits; the caller forces one unit
            else:
                bad, step = probe, step * 2
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good


def _fit_heading(heading: str, count_tokens: CountTokens, chunk_tokens: int) -> str:
    """Shorten a heading path taking over half the budget: drop outer levels, then words."""
    budget = chunk_tokens // 2

    def too_long(candidate: str) -> bool:
        return bool(candidate) and count_tokens(embedding_text(candidate, "a")) > budget

    parts = heading.split(HEADING_SEPARATOR) if heading else []
    while len(parts) > 1 and too_long(HEADING_SEPARATOR.join(parts)):
        parts = parts[1:]
    heading = HEADING_SEPARATOR.join(parts)
    if not too_long(heading):
        return heading
    words = heading.split()
    keep = _longest_prefix(len(words), lambda k: not too_long(" ".join(words[:k])))
    heading = " ".join(words[:keep])
    return "" if too_long(heading) else heading


class _Packer:
    """Greedy packing of one section's pieces into chunks that fit the token budget."""

    def __init__(
        self,
        heading: str,
        count_tokens: CountTokens,
        limit: int,
        overlap: int,
        margin: int | None = ESTIMATE_MARGIN,
    ):
        self.heading = heading
        self.count = count_tokens
        self.limit = limit
        self.overlap = overlap
        self.margin = margin
        self._heading_tokens = count_tokens(heading) if heading else 0
        self._piece_tokens: dict[str, int] = {}

    def fits(self, pieces: list[_Piece]) -> bool:
        if self.margin is not None and all(
            p.sep for p in pieces[1:]
        ):  # "" joins cut parts of one word
            estimate = self._heading_tokens + sum(self._tokens(p.text) for p in pieces)
            if estimate <= self.limit - self.margin:
                return True
            if estimate > self.limit + self.margin:
                return False
        return self.count(embedding_text(self.heading, _render(pieces))) <= self.limit

    def _tokens(self, text: str) -> int:
        count = self._piece_tokens.get(text)
        if count is None:
            count = self._piece_tokens[text] = self.count(text)
        return count

    def pack(self, text: str) -> list[str]:
        chunks: list[list[_Piece]] = []
        current: list[_Piece] = []
        for paragraph in _paragraphs(text):
            pieces = _sentence_pieces(paragraph, "\n\n")
            if self.fits(current + pieces):
                current = current + pieces
            elif self.fits(pieces):
                # The paragraph fits a chunk of its own: start one rather than cut it in two.
                chunks.append(current)
                current = self._start_after(current, pieces) + pieces
            else:
                for piece in self._bounded(pieces):  # too big for any chunk: cut between sentences
                    if self.fits(current + [piece]):
                        current = current + [piece]
                    else:
                        chunks.append(current)
                        current = self._start_after(current, [piece]) + [piece]
        if current:
            chunks.append(current)
        return [_render(chunk) for chunk in chunks if chunk]

    def _start_after(self, previous: list[_Piece], following: list[_Piece]) -> list[_Piece]:
        """Trailing whole sentences of ``previous`` to repeat, if they and ``following`` fit."""
        if not self.overlap:
            return []
        tail: list[_Piece] = []
        # Never repeat the whole previous chunk, only its last sentences within the overlap budget.
        for piece in reversed(previous[1:]):
            candidate = [piece] + tail
            if not piece.whole or self.count(_render(candidate)) > self.overlap:
                break
            tail = candidate
        while tail and not self.fits(tail + following):
            tail = tail[1:]
        return tail

    def _bounded(self, pieces: list[_Piece]) -> list[_Piece]:
        """Cut any piece that cannot fit a chunk on its own into word, then character, windows."""
        out: list[_Piece] = []
        for piece in pieces:
            if self.fits([piece]):
                out.append(piece)
            else:
                out.extend(self._cut(piece, words=True))
        return out

    def _cut(self, piece: _Piece, *, words: bool) -> list[_Piece]:
        units = piece.text.split() if words else list(piece.text)
        joiner = " " if words else ""
        out: list[_Piece] = []
        sep = piece.sep
        start = 0  # an index, not re-slicing: a huge word cut per character must stay linear
        take = 1
        while start < len(units):

            def window_fits(k: int, start: int = start) -> bool:
                return self.fits([_Piece(joiner.join(units[start : start + k]), "")])

            take = _longest_prefix(len(units) - start, window_fits, hint=take)
            window = _Piece(joiner.join(units[start : start + take]), sep, whole=False)
            if words and take == 1 and not self.fits([window]):
                out.extend(self._cut(window, words=False))  # one enormous "word" (a URL, a hash)
            else:
                out.append(window)
            start += take
            sep = joiner
        return out


def _paragraphs(text: str) -> list[str]:
    paragraphs = []
    for block in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [_SPACES.sub(" ", line).strip() for line in block.split("\n")]
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            paragraphs.append(paragraph)
    return paragraphs
