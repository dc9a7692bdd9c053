"""The offline answerer: a grounded, cited answer built from the retrieved passages alone.

No model download and no generation: it quotes the sentences of the passages that answer the
question, in reading order, each passage's sentences followed by its ``[n]`` marker, and streams
them. Whether they answer at all is judged sentence by sentence (``OfflineAnswerer.judge``): how
many of the question's content terms the quoted sentences cover (a passage's title and heading
path count for half), together with how close they are in meaning (cosine similarity with the
embedder the bot already uses). Below the bot's bar it answers :data:`NOT_IN_SOURCES` instead, which the
chat engine reports as an abstention. Menu and navigation lines are never quoted. A sentence is
quoted with what it is about when its own words do not say it: the option or term a definition
list names on the line above its paragraphs, the page's subject for a sentence opening on "It",
the tool or product a page's title names ("Cachegrind: a cache profiler") when the question does
not. A "how do I…" question prefers the sentence that says what to type ("use --stacks=yes").
It never writes a sentence that is not in the bot's own sources, so it cannot invent facts or
follow instructions found in documents. It is honest about itself: the chat service announces it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np
import snowballstemmer

from chatwell.embedders.base import Embedder
from chatwell.embedders.tokenizer import count_tokens
from chatwell.ingestion.splitter import split_sentences
from chatwell.llm.base import (
    NOT_IN_SOURCES,
    Grounding,
    ModelDelta,
    ModelEvent,
    ModelFinish,
    ModelRequest,
    ModelUsage,
)

OFFLINE_MODEL_NAME = "chatwell-offline"
MAX_SENTENCES = 3
MIN_SENTENCE_CHARS = 20
MAX_SENTENCE_CHARS = 600
#: The judgement's bar by the bot's strictness (``AnswerSettings.strictness``), chosen on TechQA's
#: calibration split (every third question; ``bench/calibrate_abstention.py``) and reported on the
#: other two thirds: "balanced" (0.60) abstains on 31% of the unanswerable questions and on 9% of
#: the answerable ones; "strict" (0.66) on 56% and 20%; "lenient" (0.56) on 19% and 5%.
SUPPORT_BARS = {"lenient": 0.56, "balanced": 0.60, "strict": 0.66}
DEFAULT_SUPPORT_BAR = SUPPORT_BARS["balanced"]
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "there",
        "these",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "about",
        "any",
        "could",
        "would",
        "should",
        "get",
        "got",
        "am",
        "if",
        "please",
        "tell",
        "know",
        "want",
        "need",
        "way",
        "hi",
        "hello",
        "thanks",
        "thank",
        "there",
        "then",
        "than",
        "just",
        "also",
        "some",
        "us",
        "been",
        "being",
        "were",
        "did",
        "doing",
        "into",
        "after",
        "before",
        "while",
        "them",
        "they",
        "its",
        "im",
        "ive",
        "dont",
        "cant",
        "one",
        "use",
        "using",
        "used",
        "way",
        "possible",
        "able",
    ]
)
# A line of site chrome: links run together with separators ("Home | Menu | Contact").
_MENU_SEPARATORS = re.compile(r"\s[|•·»›]\s")


# A question asking what to do, and the names a user types: options, constants, files, calls.
_HOW_TO = re.compile(r"\s*(how|can|which|what option|what command|is there)\b", re.IGNORECASE)
_CODE = re.compile(
    r"(?<![\w-])--?[a-zA-Z][\w-]*|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\b\w+\.(?:h|c|py|conf|ya?ml|json|xml|ini|supp)\b|\b\w+\(\)"
)
_STEMMER = snowballstemmer.stemmer("english")
# "…can be turned on with the --stacks=yes option", "use --branch-sim=yes": what to type, said.
_INSTRUCTS = re.compile(
    r"\b(?:use|using|with|set|enable[sd]?|turn(?:ed)? on|specify|pass|run|add)\b", re.IGNORECASE
)
#: How much a how-to question prefers a sentence naming what to type (an option, a constant, a
#: file), and one that also says to use it. On the Valgrind manual's 55 questions
#: (bench/docs_site_eval.py) the second weight took the key-term rate from 0.76 to 0.82;
#: WixQA and E-Manual QA answers did not change.
CODE_WEIGHT = 1.1
INSTRUCTION_WEIGHT = 1.5
#: How the best sentence's successor in its passage competes (times the best score). Tuned on
#: WixQA and E-Manual QA: token F1 0.359 -> 0.362 and 0.509 -> 0.520, the same citations;
#: checked on TechQA (token F1 0.280 -> 0.283, grounded answers unchanged) and the Valgrind
#: manual (unchanged).
NEXT_STEP = 0.7
#: A passage's weight when the search scored it near zero (:func:`_passage_prior`); 0.3-0.8 gave
#: the same WixQA figure, 0.5 the best citation precision and E-Manual recall among them.
PRIOR_FLOOR = 0.5


def _how_to_weight(candidate: _Candidate) -> float:
    return _how_to_weight_of(candidate.text, candidate.label)


@functools.lru_cache(maxsize=65_536)  # a bot's popular sentences come back question after question
def _how_to_weight_of(text: str, label: str) -> float:
    if _CODE.search(text):
        return INSTRUCTION_WEIGHT if _INSTRUCTS.search(text) else CODE_WEIGHT
    return CODE_WEIGHT if _CODE.search(label) else 1.0


@functools.lru_cache(maxsize=65_536)
def _terms(text: str) -> frozenset[str]:
    # Snowball's stem, cut to 5 letters: "opens" meets "open", "shipping" and "ships" meet at "ship"
    # (a bare 5-letter prefix kept "opens" apart from "open").
    return frozenset(
        _STEMMER.stemWord(w)[:5]
        for w in (m.group().lower() for m in _WORD.finditer(text))
        if w not in _STOP
    )


@dataclass(frozen=True, slots=True)
class _Candidate:
    passage: int  # position of the passage in the grounding list (its rank)
    order: int  # sentence position inside the passage
    index: int  # the passage's citation marker
    text: str
    label: str = ""  # the term its paragraph defines ("--error-limit=<yes|no>"), if any
    title: str = ""  # its passage's page title


@dataclass(frozen=True, slots=True)
class Judgement:
    """What would be quoted, best first, and how well it answers the question (0..1)."""

    chosen: tuple[_Candidate, ...]
    support: float
    asked: frozenset[str] = frozenset()  # the question's content terms


class OfflineAnswerer:
    """A ``ChatModel`` that answers by extraction from ``request.grounding``."""

    name = OFFLINE_MODEL_NAME
    supports_images = False
    supports_tools = False  # it quotes sources: no tool calls, no JSON

    def __init__(self, embedder: Embedder | None = None, *, max_sentences: int = MAX_SENTENCES):
        self.embedder = embedder
        self.max_sentences = max_sentences

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        bar = DEFAULT_SUPPORT_BAR if request.min_support is None else request.min_support
        judgement = await self.judge(request.question, request.grounding)
        answer = render(judgement) if judgement.support >= bar else NOT_IN_SOURCES
        # Its own sampling has nothing to vary (temperature, top_p, seed), but the answer stops
        # where a stop sequence starts and after max_tokens, as a model's would.
        abstains = answer == NOT_IN_SOURCES  # a signal to the chat engine, not text: never cut
        cut = (
            -1
            if abstains
            else min((i for i in (answer.find(s) for s in request.stop if s) if i >= 0), default=-1)
        )
        finish = "stop"
        if cut >= 0:
            answer = answer[:cut]
        sent: list[str] = []
        budget = None if abstains else request.max_tokens
        for piece in re.findall(r"\S+\s*", answer):
            if budget is not None:
                budget -= count_tokens(piece)
                if budget < 0:
                    finish = "length"
                    break
            sent.append(piece)
            yield ModelDelta(piece)
        answer = "".join(sent)
        yield ModelFinish(finish)
        prompt = sum(count_tokens(g.text) for g in request.grounding) + count_tokens(
            request.question
        )
        yield ModelUsage(prompt_tokens=prompt, completion_tokens=count_tokens(answer))

    async def compose(self, question: str, grounding: Sequence[Grounding]) -> str:
        """The best quote for ``question`` whatever its support ("" without sentences)."""
        return render(await self.judge(question, grounding))

    async def judge(self, question: str, grounding: Sequence[Grounding]) -> Judgement:
        """Pick the sentences that answer ``question`` and judge how well they do."""
        candidates = _candidates(grounding, MIN_SENTENCE_CHARS)
        if not candidates:  # only short sentences ("We open at nine."): take them after all
            candidates = _candidates(grounding, 1)
        if not candidates:
            return Judgement((), 0.0)
        q_terms = _terms(question)
        text_terms = [_terms(c.text) for c in candidates]
        # A definition's label is part of what its sentences say ("--error-limit: When enabled…").
        sentence_terms = [
            terms | _terms(c.label) if c.label else terms
            for c, terms in zip(candidates, text_terms)
        ]
        title_terms = {g.index: _terms(f"{g.title} {g.heading}") for g in grounding}
        weights = dict.fromkeys(q_terms, 1.0)
        total = float(len(q_terms))
        coverage = np.array(
            [
                _covered(q_terms & terms, q_terms & title_terms[c.index], weights, total)
                for c, terms in zip(candidates, sentence_terms)
            ],
            dtype=np.float32,
        )
        similarity = await self._similarity(question, candidates)
        if not q_terms:  # "hi", "and then?": nothing to cover, meaning alone decides
            coverage = similarity.copy()
        rank_prior = np.array(
            [_passage_prior(grounding, c.passage) for c in candidates], dtype=np.float32
        )
        scores = (0.5 * similarity + 0.5 * coverage) * rank_prior
        if _HOW_TO.match(question):
            # "How do I…" is answered by the sentence that names what to type or set.
            scores *= np.array(
                [_how_to_weight(c) for c in candidates],
                dtype=np.float32,
            )
        best = float(scores.max())
        lead = candidates[int(np.argmax(scores))]
        for j, c in enumerate(candidates):
            # A procedure goes on in the next sentence: the best sentence's successor competes
            # at NEXT_STEP of its score when its own words share a term with the question.
            if c.passage == lead.passage and c.order == lead.order + 1 and q_terms & text_terms[j]:
                scores[j] = max(scores[j], best * NEXT_STEP)
        chosen: list[int] = []
        for i in (int(i) for i in np.argsort(-scores)):
            if chosen:
                # Further sentences: close to the best one and sharing a term with the question
                # (so never an unrelated one), never a near-duplicate of a chosen one.
                if scores[i] < best * 0.6:
                    break
                if not (q_terms & sentence_terms[i] if q_terms else coverage[i] > 0):
                    continue  # its page's title matches, its own words do not
                if any(
                    len(text_terms[i] & text_terms[j]) >= 0.8 * max(1, len(text_terms[i]))
                    for j in chosen
                ):
                    continue
            chosen.append(i)
            if len(chosen) == self.max_sentences:
                break
        quoted_terms = set().union(
            *(sentence_terms[i] | title_terms[candidates[i].index] for i in chosen)
        )
        union = (
            _covered(
                q_terms & set().union(*(sentence_terms[i] for i in chosen)),
                q_terms & quoted_terms,
                weights,
                total,
            )
            if q_terms
            else float(similarity[chosen[0]])
        )
        support = 0.5 * union + 0.5 * float(similarity[chosen].max())
        top = grounding[0]
        if top.score is not None and top.similarity is not None:
            # Whether the search itself was sure: its best passage ranked first by both the
            # keywords and the meaning (fused score near 1), and close in meaning.
            support = (support + min(1.0, top.score) + max(0.0, top.similarity)) / 3
        return Judgement(tuple(candidates[i] for i in chosen), round(support, 4), q_terms)

    async def _similarity(self, question: str, candidates: list[_Candidate]) -> np.ndarray:
        if self.embedder is None:
            return np.zeros(len(candidates), dtype=np.float32)
        vectors = await self.embedder.embed(
            [question, *(f"{c.label}: {c.text}" if c.label else c.text for c in candidates)]
        )
        return np.clip(vectors[1:] @ vectors[0], 0.0, 1.0).astype(np.float32)


def _passage_prior(grounding: Sequence[Grounding], rank: int) -> float:
    """How much a sentence's passage is trusted, from how the search ranked it: half for being
    found at all, half by its fused score relative to the best passage's, so two passages the
    search could hardly tell apart count alike and a distant fifth counts for little. (A fixed
    decay by rank, 1 / (1 + 0.1 rank), put the answer's page behind a near-tie: gold pages in the
    first 5 citations, WixQA 0.888 -> 0.925, E-Manual 0.85 -> 0.86, TechQA 0.781 -> 0.802,
    the Valgrind manual 0.891 -> 0.909.) Passages without a search score keep the decay."""
    top, score = grounding[0].score, grounding[rank].score
    if score is None or not top:
        return 1.0 / (1.0 + 0.1 * rank)
    return PRIOR_FLOOR + (1.0 - PRIOR_FLOOR) * min(1.0, score / top)


def render(judgement: Judgement) -> str:
    """The chosen sentences in reading order (passage by passage), each passage's last sentence
    followed by its marker: every quoted sentence is cited, and only those."""
    chosen = sorted(judgement.chosen, key=lambda c: (c.passage, c.order))
    parts: list[str] = []
    labelled: set[tuple[int, str]] = set()
    named: set[str] = set()
    for n, candidate in enumerate(chosen):
        text = candidate.text.rstrip()
        subject = _subject_to_name(candidate, judgement.asked)
        if candidate.label and (candidate.index, candidate.label) not in labelled:
            labelled.add((candidate.index, candidate.label))  # the term first, once per passage
            text = f"{candidate.label.rstrip(':')}: {text}"
        elif (
            subject and subject not in named and (n == 0 or chosen[n - 1].index != candidate.index)
        ):
            named.add(subject)  # "It measures…" says what "it" is; once per answer
            text = f"{subject}: {text}"
        last_of_passage = n + 1 == len(chosen) or chosen[n + 1].index != candidate.index
        parts.append(f"{text} [{candidate.index}]" if last_of_passage else text)
    return " ".join(parts)


def _covered(
    in_sentence: AbstractSet[str],
    in_title: AbstractSet[str],
    weights: dict[str, float],
    total: float,
) -> float:
    if total <= 0:
        return 0.0
    return (
        sum(weights[t] for t in in_sentence) + 0.5 * sum(weights[t] for t in in_title - in_sentence)
    ) / total


_NUMBERING = re.compile(r"^(?:\d+\.)*\d+\.?\s+")
_REFERS_BACK = re.compile(r"(It|Its|This|These|They|Their)\s")


def _subject_to_name(candidate: _Candidate, asked: AbstractSet[str]) -> str:
    """What a passage's first quoted sentence is about when its own words do not say it (""
    otherwise): its page's subject for a sentence opening on "It"/"This" ("Massif: a heap
    profiler: It measures…"), and the name a page's title gives its subject ("Cachegrind: a
    cache profiler" -> "Cachegrind") for any other sentence when the question does not name it,
    so "How do I profile cache misses?" is answered with the tool's name."""
    title = _subject(candidate.title)
    name, colon, _ = title.partition(":")
    if not title or _terms(name) & _terms(candidate.text):
        return ""
    if len(title) <= 60 and _REFERS_BACK.match(candidate.text):
        return title
    named = colon and 1 <= len(name.split()) <= 2 and not _terms(name) & asked
    return name.strip() if named else ""


def _subject(title: str) -> str:
    return _NUMBERING.sub("", title.strip())  # "9. Massif: a heap profiler" -> "Massif: …"


def _candidates(grounding: Sequence[Grounding], min_chars: int) -> list[_Candidate]:
    return [
        _Candidate(rank, order, g.index, sentence, label, g.title)
        for rank, g in enumerate(grounding)
        for order, (sentence, label) in enumerate(_sentences(g.text, min_chars))
    ]


# A bot's popular chunks come back question after question: split and analyse each once.
@functools.lru_cache(maxsize=8_192)
def _sentences(text: str, min_chars: int = MIN_SENTENCE_CHARS) -> tuple[tuple[str, str], ...]:
    """Each quotable sentence with the label of its paragraph: the term a definition list or an
    option reference gives on its own line before the paragraph that explains it."""
    found: list[tuple[str, str]] = []
    label = ""
    previous = ""
    left = 0  # paragraphs the label still names
    for paragraph in re.split(r"\n\s*\n", text):
        # A line after "use the command:" is an example, not the name of what follows.
        if _is_label(paragraph) and not previous.rstrip().endswith(":"):
            label = " ".join(paragraph.split())
            previous = paragraph
            # A term ("--stacks=<yes|no>", "VALGRIND_DISCARD:") names its paragraphs up to the
            # next label; a lead-in sentence ("To run it, use this command:") only the next one.
            left = _LABEL_PARAGRAPHS if len(label.split()) <= 6 else 1
            continue
        previous = paragraph
        if paragraph.lstrip().startswith("#") or left <= 0:
            label = ""
        left -= 1
        for sentence in split_sentences(_unwrapped(paragraph)):
            sentence = " ".join(sentence.split())
            if (
                len(sentence) >= min_chars
                and not sentence.startswith("#")
                and not is_menu_line(sentence)
            ):
                found.append((sentence[:MAX_SENTENCE_CHARS], label))
    return tuple(found)


#: An option's or a term's explanation may run over several paragraphs (until the next label).
_LABEL_PARAGRAPHS = 8
_LABEL_END = re.compile(r"[.!?;,]['\")\]]?$")


def _is_label(paragraph: str) -> bool:
    """A one-line paragraph naming what the next one explains: an option ("--tool=<name>
    [default: memcheck]"), a function or a term; not a sentence, a heading, a list item or a menu."""
    line = paragraph.strip()
    if not line or len(line) > 100 or "\n" in line:
        return False
    if line.startswith(("#", "|", "- ", "* ", "• ")) or " | " in line:
        return False
    return not _LABEL_END.search(line) and not is_menu_line(line)


_ENDS_SENTENCE = re.compile(r"[.!?:;]['\")\]]?$")
_LIST_ITEM = re.compile(r"^(?:[-*•]\s|\d{1,3}[.)]\s)")
_RULE = re.compile(r"^([~=\-_*#^+])\1{2,}$")  # "~~~~~", "=====", "-----": an underline or a rule


def _unwrapped(paragraph: str) -> str:
    """Lines of a hard-wrapped paragraph (HTML source, a PDF's lines) joined back into sentences,
    so a quote never stops mid-sentence; list items, table rows and menu lines stay lines."""
    lines: list[str] = []
    joined = False  # whether the last line holds more than one line of the source
    for raw in paragraph.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if _RULE.match(line):
            # A heading's underline ("Executive Summary" over "~~~~~~~", reStructuredText's
            # "====="): the heading is not prose to quote, and what follows starts afresh.
            if lines and not joined:
                lines.pop()
            joined = True  # never pop a second line for a second rule
            lines.append("")
            continue
        previous = lines[-1] if lines else ""
        if (
            previous
            and not _ENDS_SENTENCE.search(previous)
            and not _LIST_ITEM.match(line)
            and " | " not in line
            and " | " not in previous
            and not is_menu_line(line)
            and not is_menu_line(previous)
        ):
            lines[-1] = f"{previous} {line}"
            joined = True
        else:
            lines.append(line)
            joined = False
    return "\n".join(line for line in lines if line)


def is_menu_line(line: str) -> bool:
    """Site chrome rather than prose: three or more short items run together with separators
    ("Home | Menu | Contact", "Prev · Up · Next"), or a row of capitalised words without a verb's
    punctuation ("Home Products Pricing Blog Contact")."""
    items = _MENU_SEPARATORS.split(line)
    if len(items) >= 3 and all(len(item.split()) <= 3 for item in items):
        return True  # a table row has cells of prose; a menu has short link texts
    words = line.split()
    if len(words) >= 4 and not re.search(r"[.!?:;,]$", line):
        capitalised = sum(w[:1].isupper() for w in words if w[:1].isalpha())
        return capitalised >= 0.8 * len(words)
    return False
