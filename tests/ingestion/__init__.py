"""Tests of the database-free ingestion building blocks."""
