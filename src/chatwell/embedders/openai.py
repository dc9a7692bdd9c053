"""Embeddings from any server speaking OpenAI's ``POST /embeddings``, for an online model."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from chatwell.embedders.base import EmbeddingError, as_text_list, normalize_rows

#: Output sizes of well-known hosted models, so users need not look them up.
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
    "all-minilm": 384,
}

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAICompatibleEmbedder:
    """Embeddings from any server speaking OpenAI's ``POST /embeddings`` (OpenAI, Ollama, vLLM...).

    ``base_url`` is the API root including its version segment (``https://api.openai.com/v1``).
    Texts are sent in batches; transient failures (429, 5xx, network) are retried with backoff.
    Clients may be injected (tests use ``httpx.MockTransport``); otherwise one is made per call.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dimension: int | None = None,
        send_dimensions: bool = False,
        batch_size: int = 64,
        timeout: float = 60.0,
        max_retries: int = 3,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        dimension = dimension or KNOWN_DIMENSIONS.get(model)
        if not dimension:
            raise ValueError(f"unknown output size for embedding model {model!r}; pass dimension=")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_id = f"openai-compatible:{model}"
        self.dimension = dimension
        self.send_dimensions = send_dimensions
        self.batch_size = batch_size
        self.timeout = timeout
        self.max_retries = max_retries
        self._api_key = api_key
        self._client = client

    def __repr__(self) -> str:
        return f"OpenAICompatibleEmbedder(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def _url(self) -> str:
        return f"{self.base_url}/embeddings"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _payload(self, batch: list[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self.send_dimensions:
            payload["dimensions"] = self.dimension
        return payload

    def _parse(self, response: httpx.Response, expected: int) -> np.ndarray:
        try:
            items = response.json()["data"]
            items = sorted(items, key=lambda item: item.get("index", 0))
            matrix = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"unreadable embeddings response from {self._url}") from exc
        if matrix.shape != (expected, self.dimension):
            raise EmbeddingError(
                f"{self._url} returned shape {matrix.shape}, expected ({expected}, {self.dimension})"
            )
        return normalize_rows(matrix)

    @staticmethod
    def _fail(response: httpx.Response) -> EmbeddingError:
        return EmbeddingError(
            f"embeddings request failed: HTTP {response.status_code} {response.text[:200]}"
        )

    def _batches(self, texts: list[str]) -> list[list[str]]:
        # Most servers reject empty strings, and an empty text has no meaning to embed anyway.
        cleaned = [t if t.strip() else " " for t in texts]
        return [cleaned[i : i + self.batch_size] for i in range(0, len(cleaned), self.batch_size)]

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        client = self._client or httpx.AsyncClient(timeout=self.timeout)
        try:
            parts = [await self._post_async(client, batch) for batch in self._batches(texts)]
        finally:
            if self._client is None:
                await client.aclose()
        return np.concatenate(parts)

    async def _post_async(self, client: httpx.AsyncClient, batch: list[str]) -> np.ndarray:
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = await client.post(
                    self._url, json=self._payload(batch), headers=self._headers()
                )
            except httpx.TransportError as exc:
                if last:
                    raise EmbeddingError(
                        f"embeddings request to {self._url} failed: {exc}"
                    ) from exc
            else:
                if response.status_code < 400:
                    return self._parse(response, len(batch))
                if last or response.status_code not in _RETRY_STATUS:
                    raise self._fail(response)
            await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")
