"""Hybrid-retrieval building blocks: score fusion and the keyword query builders.

The keyword query builders (``chatwell.retrieval.text_search``) are tested here too, against the
real in-memory BM25 index (``chatwell.retrieval.keyword_index``), because their output is the
keyword half of the fusion.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatwell.retrieval.fusion import (
    convex_combination,
    hybrid_scores,
    max_normalize,
    max_per_group,
    min_max_normalize,
    ranked,
    reciprocal_rank_fusion,
    top_k,
)
from chatwell.retrieval.keyword_index import KeywordIndex, encode_terms, term_keys
from chatwell.retrieval.text_search import STOPWORDS, postgres_tsquery, query_terms

# ---------------------------------------------------------------------------- normalisation


def test_min_max_maps_onto_unit_interval() -> None:
    assert min_max_normalize({"a": 10.0, "b": 5.0, "c": 0.0}) == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert min_max_normalize({"a": -3.0, "b": -1.0}) == {"a": 0.0, "b": 1.0}


def test_min_max_of_equal_or_empty_scores() -> None:
    assert min_max_normalize({}) == {}
    assert min_max_normalize({"a": 0.3, "b": 0.3}) == {"a": 1.0, "b": 1.0}


def test_max_normalize_keeps_zero_as_floor() -> None:
    assert max_normalize({"a": 8.0, "b": 2.0}) == {"a": 1.0, "b": 0.25}
    assert max_normalize({"a": 0.0}) == {"a": 1.0}
    assert max_normalize({"a": 2.0, "b": -1.0}) == {"a": 1.0, "b": 0.0}
    assert max_normalize({}) == {}


# ---------------------------------------------------------------------------- RRF


def test_rrf_rewards_agreement() -> None:
    lexical = {"a": 12.0, "b": 9.0, "c": 1.0}
    dense = {"b": 0.9, "a": 0.8, "d": 0.7}
    fused = reciprocal_rank_fusion([lexical, dense], k=60)
    order = [key for key, _ in ranked(fused)]
    assert set(order[:2]) == {"a", "b"}
    assert order.index("c") > 1 and order.index("d") > 1
    assert fused["a"] == pytest.approx((1 / 61 + 1 / 62) / (2 / 61))


def test_rrf_scores_are_in_unit_interval_and_first_everywhere_is_one() -> None:
    fused = reciprocal_rank_fusion([{"a": 3, "b": 2}, {"a": 0.9, "c": 0.1}], k=10)
    assert fused["a"] == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for v in fused.values())


def test_rrf_ignores_raw_score_scale_and_uses_weights() -> None:
    one = reciprocal_rank_fusion([{"a": 1000.0, "b": 1.0}, {"b": 0.2, "a": 0.1}])
    assert one["a"] == pytest.approx(one["b"])
    weighted = reciprocal_rank_fusion(
        [{"a": 1000.0, "b": 1.0}, {"b": 0.2, "a": 0.1}], weights=[1, 3]
    )
    assert weighted["b"] > weighted["a"]


def test_rrf_validates_arguments() -> None:
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([{"a": 1.0}], weights=[1.0, 2.0])
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([{"a": 1.0}], k=-1)
    assert reciprocal_rank_fusion([]) == {}
    assert reciprocal_rank_fusion([{}, {}]) == {}


# ---------------------------------------------------------------------------- convex


def test_convex_alpha_extremes_reproduce_each_side() -> None:
    lexical = {"a": 10.0, "b": 5.0, "c": 0.0}
    dense = {"c": 0.9, "b": 0.5, "a": 0.1}
    only_dense = convex_combination(lexical, dense, alpha=1.0)
    only_lex = convex_combination(lexical, dense, alpha=0.0)
    assert [k for k, _ in ranked(only_dense)] == ["c", "b", "a"]
    assert [k for k, _ in ranked(only_lex)] == ["a", "b", "c"]


def test_convex_missing_side_contributes_zero() -> None:
    fused = convex_combination({"a": 4.0, "b": 2.0}, {"b": 0.8, "c": 0.4}, alpha=0.5)
    assert fused == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})


def test_convex_rejects_alpha_out_of_range() -> None:
    with pytest.raises(ValueError):
        convex_combination({}, {}, alpha=1.5)


def test_hybrid_keeps_weak_keyword_lists_weak_relative_to_dense() -> None:
    # The only keyword hit is 'b'; dense prefers 'a'. With max-normalisation 'b' gets the full
    # keyword share, with dense min-max 'a' gets the full dense share.
    fused = hybrid_scores({"b": 3.0}, {"a": 0.8, "b": 0.6, "c": 0.4}, alpha=0.6)
    assert fused["a"] == pytest.approx(0.6)
    assert fused["b"] == pytest.approx(0.4 + 0.6 * 0.5)
    assert fused["c"] == pytest.approx(0.0)


@given(
    st.dictionaries(st.text(max_size=3), st.floats(-1e6, 1e6), max_size=20),
    st.dictionaries(st.text(max_size=3), st.floats(-1.0, 1.0), max_size=20),
    st.floats(0.0, 1.0),
)
@settings(max_examples=200, deadline=None)
def test_all_fusions_stay_in_unit_interval(lexical, dense, alpha) -> None:
    for fused in (
        reciprocal_rank_fusion([lexical, dense]),
        convex_combination(lexical, dense, alpha=alpha),
        hybrid_scores(lexical, dense, alpha=alpha),
    ):
        assert set(fused) == set(lexical) | set(dense)
        assert all(-1e-9 <= v <= 1.0 + 1e-9 for v in fused.values())


# ---------------------------------------------------------------------------- helpers


def test_max_per_group_takes_the_best_chunk() -> None:
    chunks = {("doc1", 0): 0.2, ("doc1", 1): 0.9, ("doc2", 0): 0.5}
    assert max_per_group(chunks, lambda key: key[0]) == {"doc1": 0.9, "doc2": 0.5}


def test_top_k_and_ranked() -> None:
    scores = {"a": 0.1, "b": 0.7, "c": 0.4}
    assert ranked(scores) == [("b", 0.7), ("c", 0.4), ("a", 0.1)]
    assert list(top_k(scores, 2)) == ["b", "c"]
    assert top_k(scores, 0) == {}


# ---------------------------------------------------------------------------- keyword queries

HOSTILE = [
    'what is "NEAR" (a OR b) AND NOT c*',
    "NEAR(one two, 3)",
    "title: secret -body:x",
    '"unbalanced quote',
    "')); DROP TABLE chunks; --",
    "* ^ + - : { } [ ] \\ / | & ! ~ < > @ # $ % =",
    "col:term AND OR NOT",
    "a'b\"c",
    "🚀🔥 émoji naïve café Straße ΑΒΓ 日本語のテキスト",
    "\x00\x01 null bytes\ttabs\nnewlines",
    "x" * 500,
    "   ",
    "",
    "the of and",
    "NEAR",
    "AND",
    "OR OR OR",
    "''''",
    '""""',
    "a:*",
    "<-> <2> !!",
    "\\' \\\"",
]


ROWS = [
    ("Returns", "You can return any product within 30 days for a full refund."),
    ("Shipping", "Orders ship within two business days; express delivery is available."),
    ("Opening hours", "The café is open NEAR the station from 9 to 5, Monday to Friday."),
    ("Caffè", "Naïve Straße 日本語 text about café prices."),
    ("Warranty", "All devices carry a two-year warranty against defects."),
]
INDEX = KeywordIndex.build([encode_terms(title, body) for title, body in ROWS])


def _search(question: str) -> list[str]:
    positions, _ = INDEX.top(term_keys(query_terms(question)), 10)
    return [ROWS[int(p)][0] for p in positions]


@pytest.mark.parametrize("question", HOSTILE)
def test_hostile_questions_never_break_the_keyword_index(question: str) -> None:
    _search(question)


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_text_is_a_valid_keyword_query(question: str) -> None:
    positions, scores = INDEX.top(term_keys(query_terms(question)), 10)
    assert len(positions) == len(scores) <= len(ROWS)


def test_or_of_terms_finds_partial_matches_ranked_by_bm25() -> None:
    # Requiring every word would find nothing: no chunk holds all of these words.
    assert _search("How many days do I have to return a refund or get express delivery?")[:2] == [
        "Returns",
        "Shipping",
    ]


def test_stemming_still_applies_to_quoted_terms() -> None:
    assert _search("returning products")[0] == "Returns"


def test_operator_words_are_searched_as_plain_words() -> None:
    assert _search("NEAR") == ["Opening hours"]
    assert set(_search('station" OR "warranty')) == {"Opening hours", "Warranty"}


def test_unicode_terms_match() -> None:
    assert "Caffè" in _search("straße")
    assert "Caffè" in _search("naïve")
    assert set(_search("café")) == {"Opening hours", "Caffè"}


def test_query_terms_tokenisation() -> None:
    assert query_terms("What is the Refund-policy for café orders?") == [
        "refund",
        "policy",
        "café",
        "orders",
    ]
    assert query_terms("the THE The refund refund") == ["refund"]
    assert query_terms("Who are you?") == ["who", "are", "you"]  # all stopwords: keep them
    assert query_terms("who are you", drop_stopwords=False) == ["who", "are", "you"]
    assert query_terms("a_b c") == ["b", "c"]  # '_' separates like SQLite's unicode61
    assert query_terms("one two three", max_terms=2) == ["one", "two"]
    assert query_terms("") == [] and query_terms("?!") == []
    assert "the" in STOPWORDS and "refund" not in STOPWORDS


def test_postgres_tsquery_shape() -> None:
    assert postgres_tsquery("Refund & policy | !x") == "'refund' | 'policy' | 'x'"
    assert postgres_tsquery("") is None
    for question in HOSTILE:
        query = postgres_tsquery(question)
        if query is not None:
            # Only quoted lexemes joined by '|': no operator the user typed survives.
            assert re.fullmatch(r"'[^'\s\\&|!():*<>]+'( \| '[^'\s\\&|!():*<>]+')*", query), query
