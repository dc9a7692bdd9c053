"""The MiniLM word-piece tokenizer, and :func:`count_tokens` in its unit: the chunk splitter,
the prompt budget and the offline answerer's usage all measure text in the pieces the default
embedder truncates at."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from chatwell.embedders.base import EmbeddingError

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def _tokenizer_file() -> Path:
    # Shipped in the package: chatwell/data/minilm/ (its NOTICE.md says where it comes from).
    path = Path(str(resources.files("chatwell") / "data" / "minilm" / "tokenizer.json"))
    if not path.is_file():
        raise EmbeddingError(f"MiniLM tokenizer file not found at {path}")
    return path


def load_tokenizer(max_length: int | None = None) -> Tokenizer:
    """A fresh MiniLM tokenizer: no padding, truncated at ``max_length`` pieces if given.

    The shipped ``tokenizer.json`` pads and truncates to a fixed 128, so both are reset here.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_tokenizer_file()))
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


@functools.cache
def _counting_tokenizer() -> Tokenizer:
    return load_tokenizer(None)


def count_tokens(text: str) -> int:
    """Number of MiniLM word pieces in ``text``, without the [CLS]/[SEP] markers."""
    if not text:
        return 0
    return len(_counting_tokenizer().encode(text, add_special_tokens=False).ids)
