"""Content filters: refuse questions and replace answers that match the operator's patterns.

Patterns come from settings (server-wide) and the bot's answer settings; matching is
case-insensitive. Invalid patterns are rejected when settings load, not at chat time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REPLACEMENT = "I'm sorry, I can't help with that."


class ContentFilter:
    def __init__(self, input_patterns: Iterable[str] = (), output_patterns: Iterable[str] = ()):
        self._input = [re.compile(p, re.IGNORECASE) for p in input_patterns]
        self._output = [re.compile(p, re.IGNORECASE) for p in output_patterns]

    def blocks_input(self, text: str) -> bool:
        return any(p.search(text) for p in self._input)

    def blocks_output(self, text: str) -> bool:
        return any(p.search(text) for p in self._output)
