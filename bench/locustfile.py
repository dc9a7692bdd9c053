"""A load scenario to run against your own deployment (Locust is not a chatwell dependency):

    pip install locust
    CHATWELL_KEY=cw_... CHATWELL_BOT=support-bot locust -f bench/locustfile.py --host https://chat.example.com

Visitors of the public widget API (per-IP limits apply: run from several machines or raise
CHATWELL_PUBLIC_RATE_LIMITS for the test) and API clients with a key, in a 3:1 mix. Each visitor
keeps a session, streams answers, continues its conversation and polls history like the widget.
"""

from __future__ import annotations

import json
import os
import uuid

from locust import HttpUser, between, task  # type: ignore[import-not-found]

KEY = os.environ.get("CHATWELL_KEY", "")
BOT = os.environ.get("CHATWELL_BOT", "demo")
QUESTIONS = [
    "What are your opening hours?",
    "How do I return an item?",
    "Do you ship abroad?",
    "How can I reset my password?",
    "What does the premium plan include?",
]


class Visitor(HttpUser):
    weight = 3
    wait_time = between(2, 8)

    def on_start(self) -> None:
        self.session_id = uuid.uuid4().hex
        self.conversation_id: str | None = None
        config = self.client.get(
            f"/v1/public/bots/{BOT}/config", name="/v1/public/bots/[bot]/config"
        )
        self.bot_id = config.json().get("bot_id", BOT) if config.ok else BOT

    @task(4)
    def ask(self) -> None:
        body = {
            "bot_id": self.bot_id,
            "message": QUESTIONS[hash(self.session_id) % len(QUESTIONS)],
            "session_id": self.session_id,
        }
        if self.conversation_id:
            body["conversation_id"] = self.conversation_id
        with self.client.post(
            "/v1/public/chat/stream",
            json=body,
            stream=True,
            catch_response=True,
            name="/v1/public/chat/stream",
        ) as response:
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event.get("type") == "done":
                        self.conversation_id = event.get("conversation_id")
                    elif event.get("type") == "error":
                        response.failure(event.get("error"))

    @task(1)
    def poll_history(self) -> None:
        if self.conversation_id:
            self.client.get(
                f"/v1/public/conversations/{self.conversation_id}/messages",
                params={"session_id": self.session_id},
                name="/v1/public/conversations/[id]/messages",
            )


class ApiClient(HttpUser):
    weight = 1
    wait_time = between(1, 4)

    @task
    def chat(self) -> None:
        self.client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": BOT, "messages": [{"role": "user", "content": QUESTIONS[0]}]},
            name="/v1/chat/completions",
        )
