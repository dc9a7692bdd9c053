"""The chatiq dialect (see routes.py)."""
