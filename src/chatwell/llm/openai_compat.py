"""One adapter for every OpenAI-compatible server: OpenAI, Azure-compatible base URLs, Ollama,
vLLM, llama.cpp, LM Studio, OpenRouter, Groq. The official ``openai`` SDK is imported lazily.

Retries (429 and 5xx, with backoff) happen only before the first token; after it, a failure is
raised to the chat service, which ends the stream with an ``error`` event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from chatwell.llm.base import ModelDelta, ModelError, ModelEvent, ModelRequest, ModelUsage
from chatwell.llm.retry import open_with_retries
from chatwell.retrieval.embeddings import count_tokens

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAICompatibleModel:
    supports_images = True

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 max_retries: int = 2, backoff: float = 0.5):
        self.name = model
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._client: Any = None

    def _sdk(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI

            # The SDK's own retries would also retry after the first token; ours do not.
            self._client = AsyncOpenAI(base_url=self.base_url, api_key=self.api_key or "not-needed",
                                       timeout=self.timeout, max_retries=0)
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client's connection pool."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        import openai

        payload: dict[str, Any] = {
            "model": request.model or self.name,
            "messages": [_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.max_tokens is not None:
            payload["max_tokens"] = request.max_tokens
        def retryable(exc: Exception) -> bool:
            if isinstance(exc, openai.APIStatusError):
                return exc.status_code in RETRY_STATUS
            return isinstance(exc, openai.APIConnectionError)  # includes timeouts

        try:
            stream = await open_with_retries(lambda: self._sdk().chat.completions.create(**payload),
                                             retryable=retryable, max_retries=self.max_retries,
                                             backoff=self.backoff)
        except openai.APIStatusError as exc:
            code = "upstream_rate_limited" if exc.status_code == 429 else "upstream_error"
            raise ModelError(code, f"the model server answered {exc.status_code}", status=exc.status_code) from None
        except openai.APITimeoutError:
            raise ModelError("upstream_timeout", "the model server did not answer in time") from None
        except openai.APIConnectionError:
            raise ModelError("upstream_unavailable", "the model server cannot be reached") from None
        text_parts: list[str] = []
        usage: ModelUsage | None = None
        try:
            async for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = ModelUsage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                for choice in chunk.choices or ():
                    delta = getattr(choice, "delta", None)
                    content = getattr(delta, "content", None) if delta is not None else None
                    if content:
                        text_parts.append(content)
                        yield ModelDelta(content)
        except openai.APIError as exc:
            raise ModelError("upstream_error", f"the model stream broke off: {type(exc).__name__}") from None
        except (ValueError, KeyError, TypeError):
            raise ModelError("upstream_error", "the model server sent a malformed chunk") from None
        finally:
            await stream.close()
        if usage is None:  # servers that ignore include_usage: count ourselves
            prompt = sum(count_tokens(m.content) for m in request.messages)
            usage = ModelUsage(prompt, count_tokens("".join(text_parts)))
        yield usage


def _message(message: Any) -> dict[str, Any]:
    if message.image is None:
        return {"role": message.role, "content": message.content}
    return {"role": message.role, "content": [
        {"type": "text", "text": message.content},
        {"type": "image_url",
         "image_url": {"url": f"data:{message.image.media_type};base64,{message.image.data_base64}"}},
    ]}
