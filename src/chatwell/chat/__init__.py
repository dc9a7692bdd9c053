"""The chat engine: history, retrieval, prompting, generation, filtering, persistence — once."""
