"""The chatbase dialect (see routes.py)."""
