"""Measurement of retrieval quality on public data, with the server's own code paths."""
