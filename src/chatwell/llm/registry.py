"""Which model answers for a bot: providers register by name, built-ins the same way as plugins.

The operator configures endpoints and keys (``CHATWELL_LLM_*``, ``CHATWELL_ANTHROPIC_API_KEY``);
a bot picks a provider, model, temperature and token limit within that. With nothing configured
every bot answers with the offline answerer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chatwell.domain.models import ModelSettings
from chatwell.embedders.base import Embedder
from chatwell.llm.anthropic import AnthropicModel
from chatwell.llm.base import ChatModel
from chatwell.llm.extractive import OfflineAnswerer
from chatwell.llm.openai_compat import OpenAICompatibleModel
from chatwell.settings import Settings

ProviderFactory = Callable[[Settings, str | None], ChatModel | None]
_providers: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Add a provider; ``factory(settings, model_name)`` returns a model or None if unconfigured."""
    _providers[name] = factory


def _openai(settings: Settings, model: str | None) -> ChatModel | None:
    if not settings.llm_base_url:
        return None
    return OpenAICompatibleModel(
        base_url=settings.llm_base_url,
        model=model or settings.llm_model or "default",
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        timeout=settings.llm_timeout_seconds,
    )


def _anthropic(settings: Settings, model: str | None) -> ChatModel | None:
    if settings.anthropic_api_key is None:
        return None
    return AnthropicModel(
        model=model or "claude-3-5-haiku-latest",
        api_key=settings.anthropic_api_key.get_secret_value(),
        timeout=settings.llm_timeout_seconds,
    )


register_provider("openai", _openai)
register_provider("anthropic", _anthropic)


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    model: ChatModel
    is_offline: bool
    fallback_reason: str | None = None


class ModelRegistry:
    def __init__(self, settings: Settings, embedder: Embedder | None):
        self.settings = settings
        self.offline = OfflineAnswerer(embedder)
        self._cache: dict[tuple[str, str | None], ChatModel] = {}

    async def aclose(self) -> None:
        for model in self._cache.values():
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()
        self._cache.clear()

    def resolve(self, bot_model: ModelSettings) -> ResolvedModel:
        provider = bot_model.provider or ("openai" if self.settings.llm_base_url else "offline")
        if provider == "offline":
            return ResolvedModel(self.offline, True)
        key = (provider, bot_model.model)
        model = self._cache.get(key)
        if model is None:
            factory = _providers.get(provider)
            model = factory(self.settings, bot_model.model) if factory else None
            if model is None:
                return ResolvedModel(
                    self.offline, True, f"provider {provider!r} is not configured on this server"
                )
            self._cache[key] = model
        return ResolvedModel(model, False)
