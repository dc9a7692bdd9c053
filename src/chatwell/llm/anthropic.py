"""Anthropic's Messages API through the official ``anthropic`` SDK (imported lazily; install the
``chatwell[anthropic]`` extra). Same retry rule as the OpenAI adapter: only before the first token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from chatwell.llm.base import ModelDelta, ModelError, ModelEvent, ModelRequest, ModelUsage
from chatwell.llm.retry import open_with_retries

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504, 529})
DEFAULT_MAX_TOKENS = 1024


class AnthropicModel:
    supports_images = True
    supports_tools = (
        False  # tools and JSON formats are refused for Anthropic bots (not translated yet)
    )

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        backoff: float = 0.5,
    ):
        self.name = model
        self.api_key = api_key
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._client: Any = None

    def _sdk(self) -> Any:
        if self._client is None:
            try:
                from anthropic import AsyncAnthropic
            except ImportError:
                raise ModelError(
                    "provider_unavailable",
                    "the anthropic package is not installed (pip install 'chatwell[anthropic]')",
                ) from None
            self._client = AsyncAnthropic(
                api_key=self.api_key, base_url=self.base_url, timeout=self.timeout, max_retries=0
            )
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client's connection pool."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        import anthropic

        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        messages = [_message(m) for m in request.messages if m.role != "system"]
        payload: dict[str, Any] = {
            "model": request.model or self.name,
            "messages": messages,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            payload["system"] = system
        if request.temperature is not None:
            # Newer SDKs dropped the keyword; the API still takes it in the body.
            payload["extra_body"] = {"temperature": min(request.temperature, 1.0)}
        sampling = {"top_p": request.top_p, "stop_sequences": list(request.stop) or None}
        if any(value is not None for value in sampling.values()):
            payload.setdefault("extra_body", {}).update(
                {k: v for k, v in sampling.items() if v is not None}
            )

        def retryable(exc: Exception) -> bool:
            if isinstance(exc, anthropic.APIStatusError):
                return exc.status_code in RETRY_STATUS
            return isinstance(exc, anthropic.APIConnectionError)

        try:
            stream = await open_with_retries(
                lambda: self._sdk().messages.create(stream=True, **payload),
                retryable=retryable,
                max_retries=self.max_retries,
                backoff=self.backoff,
            )
        except anthropic.APIStatusError as exc:
            raise ModelError(
                "upstream_error",
                f"the model server answered {exc.status_code}",
                status=exc.status_code,
            ) from None
        except anthropic.APIConnectionError:
            raise ModelError("upstream_unavailable", "the model server cannot be reached") from None
        prompt_tokens = completion_tokens = 0
        try:
            async for event in stream:
                kind = getattr(event, "type", "")
                if kind == "message_start":
                    prompt_tokens = event.message.usage.input_tokens or 0
                elif (
                    kind == "content_block_delta"
                    and getattr(event.delta, "type", "") == "text_delta"
                ):
                    yield ModelDelta(event.delta.text)
                elif kind == "message_delta" and getattr(event, "usage", None):
                    completion_tokens = event.usage.output_tokens or 0
        except anthropic.APIError as exc:
            raise ModelError(
                "upstream_error", f"the model stream broke off: {type(exc).__name__}"
            ) from None
        finally:
            await stream.close()
        yield ModelUsage(prompt_tokens, completion_tokens)


def _message(message: Any) -> dict[str, Any]:
    if message.image is None:
        return {"role": message.role, "content": message.content}
    return {
        "role": message.role,
        "content": [
            {
                "type": "image",
                "source": {
                    "type": "base64",
                    "media_type": message.image.media_type,
                    "data": message.image.data_base64,
                },
            },
            {"type": "text", "text": message.content},
        ],
    }
