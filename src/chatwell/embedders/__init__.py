"""Text embedders: everything that turns text into vectors, behind the :class:`~.base.Embedder`
protocol, so retrieval and ingestion never know which model is behind it.

- ``base``: the protocol, its error and row normalisation;
- ``tokenizer``: the MiniLM word-piece tokenizer and :func:`~.tokenizer.count_tokens`, the unit
  chunk sizes and prompt budgets are measured in;
- ``minilm``: the offline default, all-MiniLM-L6-v2 (int8 ONNX) on the CPU, and ``sessions``,
  which of its ONNX sessions runs each batch;
- ``cache``: a SQLite cache of any embedder's vectors;
- ``openai``: a client of OpenAI's ``POST /embeddings`` for an online model.
"""
