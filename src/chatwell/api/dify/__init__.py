"""Dify service API door."""
