"""A follow-up rewritten by the bot's model into a question that stands alone, for searching.

"And on weekends?" finds nothing by itself. Offline, the engine searches it together with the
user's previous question (:func:`chatwell.chat.service.retrieval_query`); with a configured model
it can instead ask the model to write the standalone question, as Dify's and Chatbase's
"condense question" step does. The model's text is only a search query: it is never shown, and
anything unusable (an error, a timeout, an empty or rambling reply) falls back to the offline way.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

from chatwell.domain.events import HistoryTurn
from chatwell.llm.base import ChatModel, ModelDelta, ModelMessage, ModelRequest

log = logging.getLogger(__name__)

CONDENSE_INSTRUCTIONS = (
    "You rewrite the user's last message as one standalone question that can be understood "
    "without the conversation: replace words like 'it', 'that' or 'and on weekends?' with what "
    "they refer to, keep the user's language, names and technical terms, add nothing else. "
    "Reply with the question only."
)
MAX_HISTORY_TURNS = 6
MAX_TURN_CHARS = 500
MAX_QUESTION_CHARS = 300
TIMEOUT_SECONDS = 8.0
_PREFIX = re.compile(r"^(?:standalone question|question|rewritten question)\s*:\s*", re.IGNORECASE)


async def standalone_question(
    model: ChatModel,
    model_name: str,
    history: Sequence[HistoryTurn],
    question: str,
    *,
    timeout: float = TIMEOUT_SECONDS,
) -> str | None:
    """The model's standalone version of ``question``, or None when it gave nothing usable."""
    turns = [t for t in history if t.content.strip()][-MAX_HISTORY_TURNS:]
    if not turns:
        return None
    transcript = "\n".join(
        f"{'Assistant' if t.role == 'assistant' else 'User'}: {' '.join(t.content.split())[:MAX_TURN_CHARS]}"
        for t in turns
    )
    request = ModelRequest(
        messages=[
            ModelMessage("system", CONDENSE_INSTRUCTIONS),
            ModelMessage(
                "user",
                f"Conversation:\n{transcript}\n\nLast message: {question}\n\nStandalone question:",
            ),
        ],
        model=model_name,
        temperature=0.0,
        max_tokens=96,
        question=question,
    )
    parts: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            async for event in model.stream(request):
                if isinstance(event, ModelDelta):
                    parts.append(event.text)
    except Exception as exc:  # the search goes on the offline way; the answer is not at stake
        log.warning("condensing a follow-up failed: %s", type(exc).__name__)
        return None
    return _cleaned("".join(parts))


def _cleaned(text: str) -> str | None:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    line = _PREFIX.sub("", lines[0]).strip().strip("\"'“”").strip()
    if not line or len(line) > MAX_QUESTION_CHARS:
        return None
    return line
