"""OpenAI-compatible door: ``/v1/models`` lists the key's bots, ``/v1/chat/completions`` answers
with one of them (``model`` = bot slug or id), so any OpenAI SDK, LangChain or Open WebUI can
talk to a bot. Citations ride in an extra top-level ``citations`` field that strict clients ignore.
"""
