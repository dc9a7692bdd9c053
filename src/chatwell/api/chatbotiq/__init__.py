"""The chatbotiq dialect (see routes.py)."""
