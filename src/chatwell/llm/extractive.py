"""The offline answerer: a grounded, cited answer built from the retrieved passages alone.

No model download and no generation: it picks the sentences of the passages that best answer
the question (cosine similarity with the embedder the bot already uses, plus word overlap),
keeps them in reading order, cites each with its passage's ``[n]`` marker, and streams them.
It never writes a sentence that is not in the bot's own sources, so it cannot invent facts or
follow instructions found in documents. It is honest about itself: the chat service announces it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from chatwell.ingestion.splitter import split_sentences
from chatwell.llm.base import Grounding, ModelDelta, ModelEvent, ModelRequest, ModelUsage
from chatwell.retrieval.embeddings import Embedder, count_tokens

OFFLINE_MODEL_NAME = "chatwell-offline"
MAX_SENTENCES = 3
MIN_SENTENCE_CHARS = 20
MAX_SENTENCE_CHARS = 600
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "has", "have", "how", "i", "in", "is", "it", "me", "my", "of", "on", "or", "our", "so", "that", "the", "their", "there", "these", "this", "to", "was", "we", "what", "when", "where", "which", "who", "why", "will", "with", "you", "your", "about", "any", "could", "would", "should"]
)


def _terms(text: str) -> set[str]:
    # A 5-letter prefix is a cheap stemmer: "shipping", "shipped" and "ships" meet at "shipp"/"ships".
    return {w[:5] for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in _STOP}


@dataclass(frozen=True, slots=True)
class _Candidate:
    passage: int  # position of the passage in the grounding list (its rank)
    order: int  # sentence position inside the passage
    index: int  # the passage's citation marker
    text: str


class OfflineAnswerer:
    """A ``ChatModel`` that answers by extraction from ``request.grounding``."""

    name = OFFLINE_MODEL_NAME
    supports_images = False

    def __init__(self, embedder: Embedder | None = None, *, max_sentences: int = MAX_SENTENCES):
        self.embedder = embedder
        self.max_sentences = max_sentences

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        answer = await self.compose(request.question, request.grounding)
        for piece in re.findall(r"\S+\s*", answer):
            yield ModelDelta(piece)
        prompt = sum(count_tokens(g.text) for g in request.grounding) + count_tokens(request.question)
        yield ModelUsage(prompt_tokens=prompt, completion_tokens=count_tokens(answer))

    async def compose(self, question: str, grounding: Sequence[Grounding]) -> str:
        candidates = [
            _Candidate(rank, order, g.index, sentence.strip())
            for rank, g in enumerate(grounding)
            for order, sentence in enumerate(_sentences(g.text))
        ]
        if not candidates:  # only short sentences ("We open at nine."): take them after all
            candidates = [
                _Candidate(rank, order, g.index, sentence.strip())
                for rank, g in enumerate(grounding)
                for order, sentence in enumerate(_sentences(g.text, min_chars=1))
            ]
        if not candidates:
            return ""
        scores = await self._scores(question, candidates)
        chosen: list[_Candidate] = []
        seen_terms: list[set[str]] = []
        best = float(scores.max())
        for i in np.argsort(-scores):
            candidate = candidates[int(i)]
            # Keep sentences close to the best one; drop near-duplicates of what is chosen.
            if chosen and scores[i] < best * 0.6:
                break
            terms = _terms(candidate.text)
            if any(len(terms & other) >= 0.8 * max(1, len(terms)) for other in seen_terms):
                continue
            chosen.append(candidate)
            seen_terms.append(terms)
            if len(chosen) == self.max_sentences:
                break
        chosen.sort(key=lambda c: (c.passage, c.order))
        parts: list[str] = []
        for n, candidate in enumerate(chosen):
            text = candidate.text.rstrip()
            last_of_passage = n + 1 == len(chosen) or chosen[n + 1].index != candidate.index
            parts.append(f"{text} [{candidate.index}]" if last_of_passage else text)
        return " ".join(parts)

    async def _scores(self, question: str, candidates: list[_Candidate]) -> np.ndarray:
        q_terms = _terms(question)
        overlap = np.array([len(q_terms & _terms(c.text)) / max(1, len(q_terms)) for c in candidates],
                           dtype=np.float32)
        rank_prior = np.array([1.0 / (1.0 + 0.15 * c.passage) for c in candidates], dtype=np.float32)
        if self.embedder is None:
            return (overlap + 0.05) * rank_prior
        vectors = await self.embedder.embed([question, *(c.text for c in candidates)])
        similarity = np.clip(vectors[1:] @ vectors[0], 0.0, 1.0)
        return (0.65 * similarity + 0.35 * overlap) * rank_prior


def _sentences(text: str, min_chars: int = MIN_SENTENCE_CHARS) -> list[str]:
    found: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        for sentence in split_sentences(paragraph):
            sentence = " ".join(sentence.split())
            if len(sentence) >= min_chars and not sentence.startswith("#"):
                found.append(sentence[:MAX_SENTENCE_CHARS])
    return found
