"""The devapi dialect (see routes.py)."""
