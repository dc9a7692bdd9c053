"""Language-model providers behind one small protocol (``llm.base.ChatModel``)."""
