"""Flowise prediction API and embed-widget door."""
