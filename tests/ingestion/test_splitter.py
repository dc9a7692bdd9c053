"""Splitter properties: bounded chunks, whole-sentence overlap, headings carried, determinism."""

from __future__ import annotations

import hashlib
import itertools
import re
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatwell.domain.documents import ChunkDraft, LoadedDocument, Section
from chatwell.ingestion.splitter import (
    content_hash,
    embedding_text,
    normalize_for_hash,
    split_document,
    split_sentences,
)


def words(text: str) -> int:
    return len(text.split())


def _sentence(p: int, i: int) -> str:
    return f"Paragraph {p} sentence {i} talks about refunds and shipping."


def _doc(
    paragraphs: int = 6, sentences: int = 8, heading: tuple[str, ...] = ("Policies", "Refunds")
) -> LoadedDocument:
    text = "\n\n".join(
        " ".join(_sentence(p, i) for i in range(sentences)) for p in range(paragraphs)
    )
    return LoadedDocument("Doc", [Section(text, heading, 4)])


def _is_subsequence(needle: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(word in it for word in needle)


def test_no_chunk_exceeds_the_limit_counting_the_heading() -> None:
    chunks = split_document(_doc(), count_tokens=words, chunk_tokens=40, overlap_tokens=10)
    assert len(chunks) > 3
    for chunk in chunks:
        full = embedding_text(chunk.heading, chunk.text)
        assert chunk.token_count == words(full) <= 40
        assert full.startswith("Policies > Refunds\n\n")


def test_headings_pages_and_positions_are_carried() -> None:
    doc = LoadedDocument(
        "Doc",
        [
            Section("Intro text.", (), 1),
            Section("About refunds.", ("Policies", "Refunds"), 2),
            Section("About shipping.", ("Policies", "Shipping"), None),
        ],
    )
    chunks = split_document(doc, count_tokens=words)
    assert [(c.text, c.heading, c.page, c.position) for c in chunks] == [
        ("Intro text.", "", 1, 0),
        ("About refunds.", "Policies > Refunds", 2, 1),
        ("About shipping.", "Policies > Shipping", None, 2),
    ]


def test_heading_prefix_is_counted_and_not_repeated() -> None:
    doc = LoadedDocument(
        "Doc",
        [
            Section("Body one.", ()),
            Section("Body two.", ("Guide", "Setup")),
            Section("Three.", ("Guide",)),
        ],
    )
    chunks = split_document(
        doc, count_tokens=words, chunk_tokens=10, overlap_tokens=2, heading_prefix="Guide"
    )
    assert [c.heading for c in chunks] == ["Guide", "Guide > Setup", "Guide"]
    assert all(c.token_count == words(embedding_text(c.heading, c.text)) <= 10 for c in chunks)


def test_consecutive_chunks_overlap_by_whole_sentences() -> None:
    chunks = split_document(_doc(), count_tokens=words, chunk_tokens=40, overlap_tokens=10)
    sentence_set = {_sentence(p, i) for p in range(6) for i in range(8)}
    for previous, following in itertools.pairwise(chunks):
        shared = split_sentences(following.text)[0]
        assert shared in sentence_set  # a whole sentence, not a fragment
        assert previous.text.endswith(shared)
        assert words(shared) <= 10


def test_no_overlap_when_disabled() -> None:
    chunks = split_document(_doc(), count_tokens=words, chunk_tokens=40, overlap_tokens=0)
    sentences = [s for c in chunks for s in split_sentences(c.text)]
    assert len(sentences) == len(set(sentences)) == 48


def test_paragraphs_that_fit_are_not_cut() -> None:
    text = "\n\n".join(f"Paragraph {p} has exactly eight words in it." for p in range(10))
    chunks = split_document(
        LoadedDocument("t", [Section(text)]), count_tokens=words, chunk_tokens=20, overlap_tokens=0
    )
    for chunk in chunks:
        for paragraph in chunk.text.split("\n\n"):
            assert re.fullmatch(r"Paragraph \d has exactly eight words in it\.", paragraph)


def test_sentences_then_words_then_characters_as_last_resort() -> None:
    long_sentence = " ".join(f"w{i}" for i in range(100)) + "."
    chunks = split_document(
        LoadedDocument("t", [Section(long_sentence)]),
        count_tokens=words,
        chunk_tokens=30,
        overlap_tokens=5,
    )
    assert all(c.token_count <= 30 for c in chunks)
    assert (
        " ".join(c.text for c in chunks).split() == long_sentence.split()
    )  # word cuts: no overlap

    def chars(text: str) -> int:
        return len(text)

    blob = "x" * 250
    chunks = split_document(
        LoadedDocument("t", [Section(blob)]), count_tokens=chars, chunk_tokens=100, overlap_tokens=0
    )
    assert [len(c.text) for c in chunks] == [100, 100, 50]


def test_overlong_heading_is_shortened_to_leave_room() -> None:
    heading = tuple(f"Level {i} heading with several words" for i in range(10))
    chunks = split_document(
        LoadedDocument("t", [Section("Short body.", heading)]),
        count_tokens=words,
        chunk_tokens=20,
        overlap_tokens=0,
    )
    assert chunks[0].heading == "Level 9 heading with several words"
    assert chunks[0].token_count <= 20


def test_content_hash_is_sha256_of_normalised_embedding_text() -> None:
    chunk = split_document(
        LoadedDocument("t", [Section("Hello   world.\n", ("A",))]), count_tokens=words
    )[0]
    expected = hashlib.sha256(b"A Hello world.").hexdigest()
    assert chunk.content_hash == expected == content_hash("A\n\n Hello world.  ")
    assert normalize_for_hash("ﬁne\u00a0 print") == "fine print"


def test_deterministic() -> None:
    first = split_document(_doc(), count_tokens=words, chunk_tokens=33, overlap_tokens=7)
    second = split_document(_doc(), count_tokens=words, chunk_tokens=33, overlap_tokens=7)
    assert first == second


def test_sentence_splitting_keeps_abbreviations_together() -> None:
    assert split_sentences(
        "Dr. Smith arrived at 3 p.m. today. See e.g. the FAQ! Ok?\nNext line"
    ) == [
        "Dr. Smith arrived at 3 p.m. today.",
        "See e.g. the FAQ!",
        "Ok?",
        "Next line",
    ]
    assert split_sentences("第一句。第二句！") == ["第一句。", "第二句！"]


@pytest.mark.parametrize(("chunk_tokens", "overlap_tokens"), [(0, 0), (10, 10), (10, -1)])
def test_invalid_parameters(chunk_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError):
        split_document(
            _doc(), count_tokens=words, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens
        )


_WORD = st.text(alphabet="abcdefghij", min_size=1, max_size=8)
_SENTENCE = st.lists(_WORD, min_size=1, max_size=40).map(lambda ws: " ".join(ws) + ".")
_PARAGRAPH = st.lists(_SENTENCE, min_size=1, max_size=8).map(" ".join)
_SECTION_TEXT = st.lists(_PARAGRAPH, min_size=1, max_size=5).map("\n\n".join)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(_SECTION_TEXT, min_size=1, max_size=3),
    chunk_tokens=st.integers(min_value=8, max_value=80),
    overlap_ratio=st.floats(min_value=0, max_value=0.5),
)
def test_properties_hold_for_any_text(
    texts: list[str], chunk_tokens: int, overlap_ratio: float
) -> None:
    overlap = int(chunk_tokens * overlap_ratio)
    doc = LoadedDocument("t", [Section(text, ("Head", "Sub")) for text in texts])
    chunks = split_document(
        doc, count_tokens=words, chunk_tokens=chunk_tokens, overlap_tokens=overlap
    )
    assert chunks == split_document(
        doc, count_tokens=words, chunk_tokens=chunk_tokens, overlap_tokens=overlap
    )
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.token_count <= chunk_tokens and c.heading == "Head > Sub" for c in chunks)
    # Nothing is lost or reordered: the source words appear, in order, in the chunk stream.
    assert _is_subsequence(" ".join(texts).split(), " ".join(c.text for c in chunks).split())


def _minilm_counter():
    path = Path(str(resources.files("chatwell") / "data" / "minilm" / "tokenizer.json"))
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()  # the shipped file truncates at 128 pieces: would hide overflows
    tokenizer.no_padding()
    return lambda text: len(tokenizer.encode(text).ids)  # [CLS] and [SEP] included


def test_real_minilm_tokenizer_never_overflows() -> None:
    count = _minilm_counter()
    text = (
        "\n\n".join(
            "Chatwell's self-hosted deployment supports PostgreSQL 16, pgvector, and SQLite. "
            f"Section {p}: the ingestion pipeline de-duplicates URLs like https://ex.com/a?c=d#f "
            "and tokenises words such as 'antidisestablishmentarianism' into several word pieces. "
            + "Ünïcödé and emoji 🎉 count too. "
            * (p % 4 + 1)
            for p in range(30)
        )
        + "\n\n"
        + "x" * 3000
    )
    doc = LoadedDocument("t", [Section(text, ("Operations guide", "Installing on Linux"), 7)])
    chunks: list[ChunkDraft] = split_document(
        doc, count_tokens=count, chunk_tokens=64, overlap_tokens=16
    )
    assert len(chunks) > 10
    for chunk in chunks:
        assert chunk.token_count == count(embedding_text(chunk.heading, chunk.text)) <= 64
        assert chunk.heading == "Operations guide > Installing on Linux" and chunk.page == 7


# ---------------------------------------------------------------------------- counting estimate

ROOT = Path(__file__).resolve().parents[2]


def test_estimated_packing_matches_exact_counting_with_the_real_tokenizer() -> None:
    """Packing decisions far from the limit are taken on the sum of the pieces' counts; with the
    MiniLM word-piece counter the chunks are exactly those of counting every decision."""
    from chatwell.embedders.tokenizer import count_tokens
    from chatwell.ingestion.loaders import load_document

    files = [ROOT / "README.md", ROOT / "SECURITY.md"]
    files += [ROOT / "docs" / page for page in ("api.md", "dashboard.md", "performance.md")]
    compared = 0
    for path in files:
        doc = load_document(path.read_bytes(), filename=path.name, declared_type="text/markdown")
        for chunk_tokens, overlap in ((256, 32), (64, 16)):
            estimated = split_document(
                doc,
                count_tokens=count_tokens,
                chunk_tokens=chunk_tokens,
                overlap_tokens=overlap,
                heading_prefix=path.name,
            )
            exact = split_document(
                doc,
                count_tokens=count_tokens,
                chunk_tokens=chunk_tokens,
                overlap_tokens=overlap,
                heading_prefix=path.name,
                estimate_margin=None,
            )
            assert estimated == exact, path
            compared += len(exact)
    assert compared > 200


def test_a_counter_the_estimate_misjudges_still_gets_chunks_within_the_limit() -> None:
    """Counting characters, the separators between pieces are not in the pieces' sum: the
    estimate would overfill, so those sections are packed again counting exactly."""
    text = "\n\n".join("Yes." for _ in range(60))
    doc = LoadedDocument("t", [Section(text)])
    estimated = split_document(doc, count_tokens=len, chunk_tokens=100, overlap_tokens=0)
    assert all(c.token_count <= 100 for c in estimated)
    assert estimated == split_document(
        doc, count_tokens=len, chunk_tokens=100, overlap_tokens=0, estimate_margin=None
    )
