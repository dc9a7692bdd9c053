"""Model prices, for the cost of each message. Operators extend or override the table with
``CHATWELL_MODEL_PRICES`` (JSON: ``{"model": [input_per_million, output_per_million]}``)."""

from __future__ import annotations

from collections.abc import Mapping

# USD per million tokens (input, output); public list prices, for estimates only.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "chatwell-offline": (0.0, 0.0),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "claude-3-5-haiku-latest": (0.8, 4.0),
    "claude-sonnet-4-0": (3.0, 15.0),
}


class PriceTable:
    def __init__(self, extra: Mapping[str, tuple[float, float] | list[float]] | None = None):
        self.prices = dict(DEFAULT_PRICES)
        for model, pair in (extra or {}).items():
            self.prices[model] = (float(pair[0]), float(pair[1]))

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """Cost in USD; unknown models (e.g. a local server) cost nothing."""
        price_in, price_out = self.prices.get(model, (0.0, 0.0))
        return round((prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000, 8)
