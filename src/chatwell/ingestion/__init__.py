"""Ingestion: turn files and web pages into text sections, then into chunk drafts.

The building blocks are pure and database-free: ``loaders`` (bytes -> LoadedDocument),
``splitter`` (document -> ChunkDraft list), ``fetch`` (one SSRF-safe HTTP GET) and ``crawler``
(a polite same-site walk). They never touch storage, the API or embeddings; ``service`` and
``worker`` wire them to those.
"""
