"""The chatbots_v1 dialect (see routes.py)."""
