"""ChatbotIQ (seed 001) against a real server: the stream example, the citation object, widget
config, history polling, and every error row (before the stream and inside it)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.dialects.conftest import World, empty_wallet, seed_bot

CONFIG_FIELDS = {
    "bot_id",
    "bot_name",
    "widget_settings",
    "suggested_questions",
    "show_suggested_questions",
    "suggested_questions_count",
    "welcome_message",
    "warning_message",
    "recaptcha_site_key",
    "include_links",
    "language",
    "mcp_url",
    "handoff_enabled",
    "handoff_trigger",
    "handoff_offline_message",
    "handoff_agent_label",
    "handoff_available",
    "allow_user_images",
    "contact_form_enabled",
    "contact_form_trigger",
    "contact_form_fields",
    "contact_form_success_message",
    "contact_form_button_display",
}
EXTRA_CONFIG_FIELDS = {"contact_form_after_messages"}
CITATION_FIELDS = {"page_title", "source_url", "source_id", "score", "from_web_search"}
EXTRA_CITATION_FIELDS = {"index"}  # chatwell's addition: the [n] marker


def events(client: httpx.Client, body: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    with connect_sse(client, "POST", "/v1/public/chat/stream", json=body, **kwargs) as source:
        assert source.response.status_code == 200, source.response.read()
        found = []
        for event in source.iter_sse():
            assert event.event == "message"  # data-only frames, as the document shows
            found.append(json.loads(event.data))
        return found


def example(world: World, **extra: Any) -> dict[str, Any]:
    """The document's curl body, with our bot's id."""
    return {
        "bot_id": world.bot_id,
        "message": "How do I get started?",
        "session_id": "unique-session-id",
        **extra,
    }


def test_stream_example(world: World) -> None:
    with world.client() as client:
        found = events(client, example(world))
    types = [e["type"] for e in found]
    assert found[0] == {"type": "status", "stage": "retrieving"}
    assert {"type": "status", "stage": "generating"} in found
    assert types[-1] == "done" and "content" in types
    generating = found.index({"type": "status", "stage": "generating"})
    assert 0 < generating < types.index("content")
    text = "".join(e["content"] for e in found if e["type"] == "content")
    assert "To get started, you need to create an account" in text
    for e in found:
        assert "token" not in e and e.get("done") is None  # no token field, no boolean done field
        if e["type"] == "notice":
            assert set(e) >= {"code", "level", "message_key"}
    done = found[-1]
    assert set(done) == {"type", "conversation_id", "assistant_message_id", "citations"}
    uuid.UUID(done["conversation_id"]), uuid.UUID(done["assistant_message_id"])
    citation = done["citations"][0]
    assert set(citation) == CITATION_FIELDS | EXTRA_CITATION_FIELDS
    assert (
        citation["page_title"] == "Getting Started" and citation["source_url"] == ""
    )  # a text source
    assert 0 < citation["score"] <= 1 and citation["from_web_search"] is False
    uuid.UUID(citation["source_id"])


def test_conversation_continues_within_its_session(world: World) -> None:
    with world.client() as client:
        first = events(client, example(world))[-1]
        second = events(
            client,
            example(
                world,
                message="What are your business hours?",
                conversation_id=first["conversation_id"],
            ),
        )[-1]
        assert second["conversation_id"] == first["conversation_id"]
        # Another session can not continue it.
        stolen = client.post(
            "/v1/public/chat/stream",
            json=example(
                world, session_id="someone-else", conversation_id=first["conversation_id"]
            ),
        )
    assert stolen.status_code == 404 and stolen.json()["error"] == "conversation_not_found"


def test_citations_hidden_links_and_disabled_citations(world: World) -> None:
    with world.admin() as admin:
        bot = seed_bot(admin, name="Docs", slug="docs-bot", public=True, texts=())
        added = admin.post(
            "/v1/bots/docs-bot/sources",
            json={
                "type": "qa",
                "question": "How do I get started?",
                "answer": "Create an account, then add a document.",
            },
        )
        assert added.status_code == 202
        from tests.dialects.conftest import wait_ready

        wait_ready(admin, "docs-bot")
        body = {"bot_id": bot["id"], "message": "How do I get started?", "session_id": "s1"}
        with world.client() as client:
            done = events(client, body)[-1]
            assert done["citations"] and done["citations"][0]["source_url"] == ""
            assert (
                admin.patch(
                    "/v1/bots/docs-bot", json={"answer": {"citations_enabled": False}}
                ).status_code
                == 200
            )
            done = events(client, body)[-1]
            assert "citations" not in done


def test_config_has_every_documented_field(world: World) -> None:
    with world.admin() as admin:
        patched = admin.patch(
            f"/v1/bots/{world.bot_id}",
            json={
                "welcome_message": "Hi! Ask me anything.",
                "suggested_questions": ["How do I get started?"],
                "answer": {
                    "include_links": False,
                    "warning_message": "Slow down, please.",
                    "language": "de",
                },
                "handoff": {"enabled": True, "trigger": "both", "agent_label": "Support team"},
                "contact_form": {
                    "enabled": True,
                    "fields": [{"name": "email", "label": "Email", "type": "email"}],
                },
                "widget": {"primary_color": "#112233"},
            },
        )
        assert patched.status_code == 200, patched.text
    with world.client() as client:
        config = client.get(f"/v1/public/bots/{world.bot_id}/config")
    assert config.status_code == 200
    data = config.json()
    assert set(data) == CONFIG_FIELDS | EXTRA_CONFIG_FIELDS
    assert data["bot_id"] == world.bot_id and data["bot_name"] == "Support Bot"
    assert data["welcome_message"] == "Hi! Ask me anything." and data["suggested_questions"] == [
        "How do I get started?"
    ]
    assert (
        data["include_links"] is False
        and data["language"] == "de"
        and data["warning_message"] == "Slow down, please."
    )
    assert data["handoff_enabled"] is True and data["handoff_trigger"] == "both"
    assert data["handoff_agent_label"] == "Support team" and data["handoff_available"] is False
    assert (
        data["contact_form_enabled"] is True and data["contact_form_fields"][0]["name"] == "email"
    )
    assert data["contact_form_button_display"] == "after_response"
    assert data["widget_settings"]["primary_color"] == "#112233"
    assert data["recaptcha_site_key"] is None and data["mcp_url"] == f"{world.base}/mcp"
    assert isinstance(data["suggested_questions_count"], int) and isinstance(
        data["show_suggested_questions"], bool
    )


def test_history_polling_with_ownership(world: World) -> None:
    with world.client() as client:
        done = events(client, example(world))[-1]
        cid = done["conversation_id"]
        history = client.get(
            f"/v1/public/conversations/{cid}/messages", params={"session_id": "unique-session-id"}
        )
        assert history.status_code == 200
        data = history.json()
        assert (
            set(data) == {"messages", "conversation_status"}
            and data["conversation_status"] == "open"
        )
        user, assistant = data["messages"]
        for message in (user, assistant):
            assert set(message) == {
                "id",
                "role",
                "content",
                "citations",
                "feedback",
                "image_preview",
                "created_at",
            }
        assert (
            user["role"] == "user"
            and user["content"] == "How do I get started?"
            and user["citations"] is None
        )
        assert assistant["role"] == "assistant" and assistant["id"] == done["assistant_message_id"]
        assert set(assistant["citations"][0]) == CITATION_FIELDS | EXTRA_CITATION_FIELDS
        assert assistant["created_at"].endswith("Z")
        # Polling: only what came after a message.
        after = client.get(
            f"/v1/public/conversations/{cid}/messages",
            params={"session_id": "unique-session-id", "after": user["id"]},
        ).json()
        assert [m["id"] for m in after["messages"]] == [assistant["id"]]
        latest = client.get(
            f"/v1/public/conversations/{cid}/messages",
            params={"session_id": "unique-session-id", "after": assistant["id"]},
        ).json()
        assert latest["messages"] == []
        # Ownership: another session, an unknown id, a missing session id.
        other = client.get(
            f"/v1/public/conversations/{cid}/messages", params={"session_id": "intruder"}
        )
        assert other.status_code == 404 and other.json()["error"] == "conversation_not_found"
        assert (
            client.get(
                f"/v1/public/conversations/{uuid.uuid4()}/messages",
                params={"session_id": "unique-session-id"},
            ).status_code
            == 404
        )
        missing = client.get(f"/v1/public/conversations/{cid}/messages")
        assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_history_is_limited_to_30_per_minute_per_ip(world: World) -> None:
    with world.client() as client:
        cid = events(client, example(world))[-1]["conversation_id"]
        url = f"/v1/public/conversations/{cid}/messages"
        statuses = [
            client.get(url, params={"session_id": "unique-session-id"}).status_code
            for _ in range(31)
        ]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["message"]


def test_400_missing_or_invalid_fields(world: World) -> None:
    with world.client() as client:
        for body in (
            {"message": "hi", "session_id": "s"},
            {"bot_id": world.bot_id, "session_id": "s"},
            {"bot_id": world.bot_id, "message": "hi"},
            {**example(world), "message": 5},
            {**example(world), "conversation_id": "nope"},
            {**example(world), "image_data": "aGk=", "image_media_type": "image/gif"},
            {**example(world), "image_data": "aGk="},
        ):
            _error(client.post("/v1/public/chat/stream", json=body), 400, "invalid_request")
        _error(
            client.post(
                "/v1/public/chat/stream", content=b"[", headers={"Content-Type": "application/json"}
            ),
            400,
            "malformed_json",
        )
        # Images on a bot whose model takes none.
        _error(
            client.post(
                "/v1/public/chat/stream",
                json={**example(world), "image_data": "aGk=", "image_media_type": "image/png"},
            ),
            400,
            "images_not_supported",
        )


def test_403_not_public_inactive_or_foreign_origin(world: World) -> None:
    with world.admin() as admin:
        private = admin.post("/v1/bots", json={"name": "Internal", "public": False}).json()
        inactive = admin.post(
            "/v1/bots", json={"name": "Old", "public": True, "active": False}
        ).json()
        assert (
            admin.patch(
                f"/v1/bots/{world.bot_id}", json={"allowed_origins": ["https://shop.example.com"]}
            ).status_code
            == 200
        )
    with world.client() as client:
        _error(
            client.post("/v1/public/chat/stream", json={**example(world), "bot_id": private["id"]}),
            403,
            "bot_not_public",
        )
        _error(client.get(f"/v1/public/bots/{private['id']}/config"), 403, "bot_not_public")
        _error(
            client.post(
                "/v1/public/chat/stream", json={**example(world), "bot_id": inactive["id"]}
            ),
            403,
            "bot_inactive",
        )
        _error(
            client.post(
                "/v1/public/chat/stream",
                json=example(world),
                headers={"Origin": "https://evil.example.net"},
            ),
            403,
            "origin_not_allowed",
        )
        allowed = client.post(
            "/v1/public/chat/stream",
            json=example(world),
            headers={"Origin": "https://shop.example.com"},
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example.com"
        # No Origin (a server, curl): the document's example works as is.
        assert client.post("/v1/public/chat/stream", json=example(world)).status_code == 200


def test_404_unknown_bot(world: World) -> None:
    with world.client() as client:
        _error(
            client.post(
                "/v1/public/chat/stream", json={**example(world), "bot_id": str(uuid.uuid4())}
            ),
            404,
            "bot_not_found",
        )
        _error(
            client.post("/v1/public/chat/stream", json={**example(world), "bot_id": "your-bot-id"}),
            404,
            "bot_not_found",
        )
        _error(client.get(f"/v1/public/bots/{uuid.uuid4()}/config"), 404, "bot_not_found")


def test_429_per_ip_baseline_and_stricter_bot_limit(world: World) -> None:
    with world.client() as client:
        statuses = [
            client.post(
                "/v1/public/chat/stream", json=example(world, session_id=f"s{i}")
            ).status_code
            for i in range(16)
        ]
        assert statuses == [200] * 15 + [429]
        limited = client.post("/v1/public/chat/stream", json=example(world))
        _error(limited, 429, "rate_limited")
        assert 0 < int(limited.headers["Retry-After"]) <= 60
    with world.admin() as admin:
        strict = seed_bot(
            admin,
            name="Strict",
            slug="strict-bot",
            public=True,
            texts=(),
            rate_limits={"per_minute": 2, "message": "Easy there!"},
        )
    with world.client() as client:
        body = {"bot_id": strict["id"], "message": "hi", "session_id": "s"}
        statuses = [client.post("/v1/public/chat/stream", json=body).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = client.post("/v1/public/chat/stream", json=body)
        assert limited.json()["message"] == "Easy there!"


def test_in_stream_errors(start_world: Any, database_url: str) -> None:
    world = start_world(
        blocked_input_patterns=["(?i)password"], blocked_output_patterns=["(?i)EST"]
    )
    with world.client() as client:
        blocked = events(client, example(world, message="Tell me the admin password"))
        assert (
            blocked[-1]["type"] == "error"
            and blocked[-1]["error"] == "content_filtered"
            and blocked[-1]["message"]
        )
        replaced = events(client, example(world, message="What are your business hours?"))
        kinds = [e["type"] for e in replaced]
        assert "replace" in kinds and kinds[-1] == "done"
        assert "EST" not in next(e for e in replaced if e["type"] == "replace")["content"]

        empty_wallet(database_url)
        broke = client.post("/v1/public/chat/stream", json=example(world))
        assert broke.status_code == 200  # credits surface mid-stream, never as a 402
        last = json.loads(broke.text.strip().split("\n\n")[-1][len("data: ") :])
        assert last == {"type": "error", "error": "service_unavailable", "message": last["message"]}


@pytest.fixture
def recaptcha(live_server: Any) -> str:
    """A siteverify stand-in on a real port: the token "good" passes."""
    from fastapi import FastAPI, Form

    verify = FastAPI()

    @verify.post("/siteverify")
    async def siteverify(secret: str = Form(...), response: str = Form(...)) -> dict[str, Any]:
        return {"success": secret == "test-secret" and response == "good"}

    return live_server.start(verify) + "/siteverify"


def test_recaptcha_required_and_verified(start_world: Any, recaptcha: str) -> None:
    world = start_world(
        recaptcha_secret_key="test-secret",
        recaptcha_site_key="site-key-1",
        recaptcha_verify_url=recaptcha,
    )
    with world.admin() as admin:
        assert (
            admin.patch(
                f"/v1/bots/{world.bot_id}", json={"widget": {"recaptcha_enabled": True}}
            ).status_code
            == 200
        )
    with world.client() as client:
        assert (
            client.get(f"/v1/public/bots/{world.bot_id}/config").json()["recaptcha_site_key"]
            == "site-key-1"
        )
        _error(
            client.post("/v1/public/chat/stream", json=example(world)), 400, "recaptcha_required"
        )
        _error(
            client.post("/v1/public/chat/stream", json=example(world, recaptcha_token="bad")),
            403,
            "recaptcha_failed",
        )
        assert (
            client.post(
                "/v1/public/chat/stream", json=example(world, recaptcha_token="good")
            ).status_code
            == 200
        )


def test_a_model_failure_after_the_stream_opened_is_an_error_event(start_world: Any) -> None:
    from tests.services import free_port

    world = start_world(llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_model="gone")
    with world.client() as client:
        found = events(client, example(world))
    assert found[0] == {"type": "status", "stage": "retrieving"}
    assert (
        found[-1]["type"] == "error"
        and found[-1]["error"] == "upstream_unavailable"
        and found[-1]["message"]
    )
    assert all(e["type"] != "done" for e in found)
