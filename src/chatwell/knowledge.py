"""Assembles the knowledge runtime (embedder, indexes, ingestor, retriever) from settings.

The server, the CLI and ``chatwell eval`` all build it here, so they run the same code with the
same defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from chatwell.chat.filters import ContentFilter
from chatwell.chat.service import ChatService
from chatwell.embedders.base import Embedder
from chatwell.embedders.cache import CachedEmbedder
from chatwell.embedders.minilm import MiniLMOnnxEmbedder
from chatwell.embedders.openai import OpenAICompatibleEmbedder
from chatwell.ingestion.extraction import ExtractionLimits
from chatwell.ingestion.service import IngestionConfig, Ingestor
from chatwell.llm.pricing import PriceTable
from chatwell.llm.registry import ModelRegistry
from chatwell.retrieval.batching import BatchingEmbedder
from chatwell.retrieval.index import SearchIndex, search_index_for
from chatwell.retrieval.service import RetrievalConfig, Retriever
from chatwell.settings import Settings
from chatwell.storage.database import Database


@dataclass(slots=True)
class Knowledge:
    embedder: Embedder
    index: SearchIndex
    ingestor: Ingestor
    retriever: Retriever


def build_embedder(settings: Settings, *, offline_model: Embedder | None = None) -> Embedder:
    """The embedder ``settings`` select, cached and batching.

    ``offline_model`` is an already loaded offline MiniLM model to use instead of loading another
    when the settings select it (the tests build many apps in one process and share one model).
    """
    inner: Embedder
    if settings.fastembed_model:
        from chatwell.retrieval.fastembed import FastEmbedEmbedder

        inner = FastEmbedEmbedder(
            settings.fastembed_model,
            cache_dir=settings.data_dir / "cache" / "fastembed",
            model_path=settings.fastembed_model_path,
        )
    elif settings.embedding_base_url:
        inner = OpenAICompatibleEmbedder(
            base_url=settings.embedding_base_url,
            model=settings.embedding_model or "text-embedding-3-small",
            api_key=settings.embedding_api_key.get_secret_value()
            if settings.embedding_api_key
            else None,
        )
    else:
        inner = offline_model or MiniLMOnnxEmbedder()
    # Cache first (identical text costs nothing), then coalesce the misses into larger batches.
    return CachedEmbedder(BatchingEmbedder(inner), settings.data_dir / "cache")


def build_knowledge(
    db: Database,
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    offline_model: Embedder | None = None,
    retrieval: RetrievalConfig | None = None,
) -> Knowledge:
    embedder = embedder or build_embedder(settings, offline_model=offline_model)
    index = search_index_for(db)
    ingestor = Ingestor(
        db,
        embedder,
        index,
        IngestionConfig(
            chunk_tokens=settings.chunk_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
            max_file_bytes=settings.max_upload_bytes,
            allow_private=settings.crawl_allow_private,
            lease=timedelta(seconds=settings.ingestion_lease_seconds),
            limits=ExtractionLimits(
                max_text_chars=settings.ingestion_max_text_chars,
                max_chunks=settings.ingestion_max_chunks,
                memory_bytes=settings.ingestion_memory_mb * 1024 * 1024,
                cpu_seconds=settings.ingestion_cpu_seconds,
                timeout_seconds=settings.ingestion_timeout_seconds,
                concurrency=settings.ingestion_extract_concurrency,
            ),
        ),
    )
    return Knowledge(embedder, index, ingestor, Retriever(db, index, embedder, retrieval))


def build_chat_service(db: Database, settings: Settings, knowledge: Knowledge) -> ChatService:
    return ChatService(
        db,
        knowledge.retriever,
        ModelRegistry(settings, knowledge.embedder),
        PriceTable(settings.model_prices),
        ContentFilter(settings.blocked_input_patterns, settings.blocked_output_patterns),
        context_tokens=settings.llm_context_tokens,
    )
