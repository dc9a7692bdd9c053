"""The chat engine against a real OpenAI-compatible server over HTTP: llama-cpp-python's server
running SmolLM2-135M-Instruct. A streamed cited answer; the upstream killed mid-stream; a client
that leaves stops the generation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app

TEXT = (
    "Acme Cloud backups run every night at 02:00 UTC. Backups are kept for 30 days. "
    "To restore a backup, open the Backups page and press Restore."
)
QUESTION = "When do Acme Cloud backups run?"


def events_of(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            yield name, json.loads(line[6:])


def serve(live_server, tmp_path: Path, llm, **extra: Any) -> tuple[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path / "d",
        admin_key=ADMIN_KEY,
        llm_base_url=llm.base_url,
        llm_model=llm.model,
        llm_timeout_seconds=30,
        **extra,
    )
    base = live_server.start(build_app(settings, announce=lambda _: None))
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as http:
        bot = http.post(
            "/v1/bots", json={"name": "Backups", "model": {"max_tokens": 48, "temperature": 0}}
        ).json()
        http.post(
            f"/v1/bots/{bot['id']}/sources", json={"type": "text", "title": "Backups", "text": TEXT}
        )
        deadline = time.monotonic() + 60
        while http.get(f"/v1/bots/{bot['id']}/sources").json()["data"][0]["status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    return base, bot


def test_a_streamed_cited_answer_from_a_real_model(live_server, tmp_path: Path, llm_server) -> None:  # type: ignore[no-untyped-def]
    base, bot = serve(live_server, tmp_path, llm_server)
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as http:
        with http.stream(
            "POST", f"/v1/bots/{bot['id']}/chat", json={"message": QUESTION}
        ) as response:
            events = list(events_of(response.iter_lines()))
        names = [name for name, _ in events]
        assert names[:1] == ["status"] and "offline_answerer" not in json.dumps(events)
        deltas = [data["text"] for name, data in events if name == "delta"]
        assert len(deltas) > 1 and "".join(deltas).strip()  # really streamed, token by token
        assert names[-3:] == ["citations", "usage", "done"]
        citations = events[-3][1]["citations"]
        assert citations and citations[0]["title"] == "Backups"
        usage = events[-2][1]
        assert usage["model"] == llm_server.model and usage["completion_tokens"] > 0
        transcript = http.get(f"/v1/conversations/{events[-1][1]['conversation_id']}").json()
        assert [m["role"] for m in transcript["messages"]] == ["user", "assistant"]
        assert transcript["messages"][1]["content"] == "".join(deltas)


def test_upstream_killed_mid_stream_ends_with_an_error_and_keeps_both_turns(
    live_server, tmp_path: Path, llm_server_fresh
) -> None:  # type: ignore[no-untyped-def]
    base, bot = serve(live_server, tmp_path, llm_server_fresh)
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as http:
        http.patch(f"/v1/bots/{bot['id']}", json={"model": {"max_tokens": 400}})
        seen: list[tuple[str, dict[str, Any]]] = []
        with http.stream(
            "POST",
            f"/v1/bots/{bot['id']}/chat",
            json={"message": QUESTION + " Explain in great detail, step by step."},
        ) as response:
            for name, data in events_of(response.iter_lines()):
                seen.append((name, data))
                if name == "delta" and sum(1 for n, _ in seen if n == "delta") == 2:
                    llm_server_fresh.kill()
        assert seen[-1][0] == "error", seen[-3:]
        assert seen[-1][1]["code"].startswith("upstream")
        conversation = http.get("/v1/conversations").json()["data"][0]
        messages = http.get(f"/v1/conversations/{conversation['id']}").json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["error"]["code"] == seen[-1][1]["code"] and messages[1]["content"]


def test_client_disconnect_stops_the_generation_upstream(
    live_server, tmp_path: Path, llm_server_fresh
) -> None:  # type: ignore[no-untyped-def]
    base, bot = serve(live_server, tmp_path, llm_server_fresh)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        http.patch(f"/v1/bots/{bot['id']}", json={"model": {"max_tokens": 1500}})
        with http.stream(
            "POST",
            f"/v1/bots/{bot['id']}/chat",
            json={"message": QUESTION + " Write a very long essay about it."},
        ) as response:
            for name, _ in events_of(response.iter_lines()):
                if name == "delta":
                    break  # the visitor closes the tab
    # The model server serves one request at a time: if it were still writing 1,500 tokens, a
    # one-token request would wait for it. It answers at once because chatwell closed the stream.
    started = time.monotonic()
    with httpx.Client(timeout=120) as direct:
        reply = direct.post(
            f"{llm_server_fresh.base_url}/chat/completions",
            json={
                "model": llm_server_fresh.model,
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert reply.status_code == 200
    assert time.monotonic() - started < 8
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        deadline = time.monotonic() + 10
        while True:
            conversation = http.get("/v1/conversations").json()["data"][0]
            messages = http.get(f"/v1/conversations/{conversation['id']}").json()["messages"]
            if len(messages) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert messages[1]["error"]["code"] == "cancelled"
