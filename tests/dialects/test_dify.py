"""The Dify service API door (``/dify/v1``) against a real server, judged by Dify's own Python
client (``dify-client``, pinned in the test extras): blocking and streaming chat, a conversation
continued, history, the conversation list, rename and delete, feedback, parameters; the
documented examples replayed; the end-user and key namespaces; errors in Dify's shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from dify_client import ChatClient

from tests.dialects.conftest import World

HOURS_QUESTION = "What are your business hours?"


def dify(world: World, key: str | None = None) -> ChatClient:
    client = ChatClient(key or world.bot_key)
    client.base_url = f"{world.base}/dify/v1"
    return client


def stream_events(response: Any) -> list[dict[str, Any]]:
    """The ``data:`` payloads of a streamed reply, as Dify's clients read them."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for line in response.iter_lines(decode_unicode=True):
        if line and line.startswith("data:"):
            events.append(json.loads(line[len("data:") :]))
    return events


def assert_dify_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert (
        set(body) == {"code", "message", "status"}
        and body["code"] == code
        and body["status"] == status
    ), body
    assert body["message"]
    return body


def test_blocking_chat_continued_history_and_conversations(world: World) -> None:
    client = dify(world)
    first = client.create_chat_message(
        inputs={"name": "dify"}, query=HOURS_QUESTION, user="abc-123"
    )
    assert first.status_code == 200, first.text
    reply = first.json()
    assert reply["event"] == "message" and reply["mode"] == "chat"
    assert (
        reply["id"] == reply["message_id"]
        and reply["task_id"]
        and isinstance(reply["created_at"], int)
    )
    assert "Monday through Friday" in reply["answer"]
    usage = reply["metadata"]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert usage["currency"] == "USD" and isinstance(usage["latency"], float)
    resources = reply["metadata"]["retriever_resources"]
    assert (
        resources
        and resources[0]["position"] == 1
        and resources[0]["document_name"] == "Business hours"
    )
    assert "Monday" in resources[0]["content"] and resources[0]["dataset_id"] == world.bot_id

    second = client.create_chat_message(
        inputs={},
        query="and on weekends?",
        user="abc-123",
        conversation_id=reply["conversation_id"],
    ).json()
    assert (
        second["conversation_id"] == reply["conversation_id"]
        and second["message_id"] != reply["message_id"]
    )
    assert "weekends" in second["answer"].lower()

    history = client.get_conversation_messages(
        "abc-123", conversation_id=reply["conversation_id"]
    ).json()
    assert history["has_more"] is False and history["limit"] == 20
    assert [m["query"] for m in history["data"]] == [HOURS_QUESTION, "and on weekends?"]
    assert [m["id"] for m in history["data"]] == [reply["message_id"], second["message_id"]]
    assert history["data"][0]["answer"] == reply["answer"] and history["data"][0]["inputs"] == {
        "name": "dify"
    }
    assert history["data"][0]["retriever_resources"][0]["document_name"] == "Business hours"
    assert (
        history["data"][0]["feedback"] is None
        and history["data"][0]["conversation_id"] == reply["conversation_id"]
    )
    # first_id pagination: the page before the newest exchange is the first one, and nothing older
    older = client.get_conversation_messages(
        "abc-123", conversation_id=reply["conversation_id"], first_id=second["message_id"], limit=1
    ).json()
    assert [m["id"] for m in older["data"]] == [reply["message_id"]] and older["has_more"] is False
    newest = client.get_conversation_messages(
        "abc-123", conversation_id=reply["conversation_id"], limit=1
    ).json()
    assert [m["id"] for m in newest["data"]] == [second["message_id"]] and newest[
        "has_more"
    ] is True

    other = client.create_chat_message(
        inputs={}, query="How do I get started?", user="abc-123"
    ).json()
    assert (
        other["conversation_id"] != reply["conversation_id"]
    )  # no conversation_id: a new conversation
    listed = client.get_conversations("abc-123").json()
    assert listed["has_more"] is False and listed["limit"] == 20
    assert [c["id"] for c in listed["data"]] == [
        other["conversation_id"],
        reply["conversation_id"],
    ]  # -updated_at
    assert listed["data"][1]["name"] == HOURS_QUESTION and listed["data"][1]["status"] == "normal"
    assert listed["data"][1]["inputs"] == {"name": "dify"}
    page = client.get_conversations("abc-123", limit=1).json()
    assert page["has_more"] is True and len(page["data"]) == 1
    rest = client.get_conversations("abc-123", last_id=page["data"][0]["id"], limit=1).json()
    assert [c["id"] for c in rest["data"]] == [reply["conversation_id"]] and rest[
        "has_more"
    ] is False

    renamed = client.rename_conversation(reply["conversation_id"], "Opening hours", "abc-123")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Opening hours"
    assert renamed.json()["id"] == reply["conversation_id"]


def test_streaming_chat(world: World) -> None:
    client = dify(world)
    response = client.create_chat_message(
        inputs={}, query=HOURS_QUESTION, user="abc-123", response_mode="streaming"
    )
    events = stream_events(response)
    names = [e["event"] for e in events]
    assert names[-1] == "message_end" and set(names[:-1]) == {"message"}, names
    chunks = events[:-1]
    message_id, conversation_id, task_id = (
        chunks[0]["message_id"],
        chunks[0]["conversation_id"],
        chunks[0]["task_id"],
    )
    assert all(
        c["message_id"] == message_id
        and c["conversation_id"] == conversation_id
        and c["task_id"] == task_id
        for c in chunks
    )
    answer = "".join(c["answer"] for c in chunks)
    assert "Monday through Friday" in answer
    end = events[-1]
    assert (
        end["message_id"] == end["id"] == message_id and end["conversation_id"] == conversation_id
    )
    assert end["metadata"]["retriever_resources"][0]["document_name"] == "Business hours"
    assert end["metadata"]["usage"]["completion_tokens"] > 0

    follow = stream_events(
        client.create_chat_message(
            inputs={},
            query="and on weekends?",
            user="abc-123",
            response_mode="streaming",
            conversation_id=conversation_id,
        )
    )
    assert follow[-1]["conversation_id"] == conversation_id
    history = client.get_conversation_messages("abc-123", conversation_id=conversation_id).json()[
        "data"
    ]
    assert [m["id"] for m in history] == [message_id, follow[-1]["message_id"]]
    assert history[0]["answer"] == answer


def test_feedback_parameters_meta_info_and_suggested(world: World) -> None:
    with world.admin() as admin:
        assert (
            admin.patch(
                f"/v1/bots/{world.bot_slug}",
                json={
                    "welcome_message": "Hello! Ask me about our hours.",
                    "suggested_questions": [
                        "What are your business hours?",
                        "How do I get started?",
                    ],
                },
            ).status_code
            == 200
        )
    client = dify(world)
    reply = client.create_chat_message(inputs={}, query=HOURS_QUESTION, user="abc-123").json()
    liked = client.message_feedback(reply["message_id"], "like", "abc-123")
    assert liked.status_code == 200 and liked.json() == {"result": "success"}
    history = client.get_conversation_messages(
        "abc-123", conversation_id=reply["conversation_id"]
    ).json()["data"]
    assert history[0]["feedback"] == {"rating": "like"}
    assert client.message_feedback(reply["message_id"], None, "abc-123").json() == {
        "result": "success"
    }
    history = client.get_conversation_messages(
        "abc-123", conversation_id=reply["conversation_id"]
    ).json()["data"]
    assert history[0]["feedback"] is None

    params = client.get_application_parameters("abc-123")
    assert params.status_code == 200
    body = params.json()
    assert body["opening_statement"] == "Hello! Ask me about our hours."
    assert body["suggested_questions"] == ["What are your business hours?", "How do I get started?"]
    assert body["retriever_resource"] == {"enabled": True} and body["user_input_form"] == []
    assert body["file_upload"]["image"]["enabled"] is False  # the offline answerer takes no images

    with world.client(world.bot_key) as http:
        suggested = http.get(
            f"/dify/v1/messages/{reply['message_id']}/suggested", params={"user": "abc-123"}
        )
        assert suggested.json() == {"result": "success", "data": ["How do I get started?"]}
        assert http.get("/dify/v1/meta").json() == {"tool_icons": {}}
        info = http.get("/dify/v1/info").json()
        assert info["name"] == "Support Bot" and info["mode"] == "chat" and info["tags"] == []


def test_delete_conversation(world: World) -> None:
    client = dify(world)
    reply = client.create_chat_message(inputs={}, query=HOURS_QUESTION, user="abc-123").json()
    deleted = client._send_request(
        "DELETE", f"/conversations/{reply['conversation_id']}", {"user": "abc-123"}
    )
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get_conversations("abc-123").json()["data"] == []
    gone = client.get_conversation_messages("abc-123", conversation_id=reply["conversation_id"])
    assert assert_dify_error(gone, 404, "not_found")["message"] == "Conversation Not Exists."
    again = client._send_request(
        "DELETE", f"/conversations/{reply['conversation_id']}", {"user": "abc-123"}
    )
    assert_dify_error(again, 404, "not_found")
    continued = client.create_chat_message(
        inputs={}, query="hi", user="abc-123", conversation_id=reply["conversation_id"]
    )
    assert_dify_error(continued, 404, "not_found")


def test_users_see_only_their_own_conversations(world: World) -> None:
    client = dify(world)
    alice = client.create_chat_message(inputs={}, query=HOURS_QUESTION, user="alice").json()
    cid, mid = alice["conversation_id"], alice["message_id"]
    assert client.get_conversations("bob").json()["data"] == []
    with world.client(world.bot_key) as http:  # no user at all: Dify's DEFAULT-USER, not everyone
        assert http.get("/dify/v1/conversations").json()["data"] == []
    assert_dify_error(
        client.get_conversation_messages("bob", conversation_id=cid), 404, "not_found"
    )
    assert_dify_error(
        client.create_chat_message(inputs={}, query="hi", user="bob", conversation_id=cid),
        404,
        "not_found",
    )
    assert_dify_error(client.message_feedback(mid, "dislike", "bob"), 404, "not_found")
    assert_dify_error(client.rename_conversation(cid, "mine now", "bob"), 404, "not_found")
    assert_dify_error(
        client._send_request("DELETE", f"/conversations/{cid}", {"user": "bob"}), 404, "not_found"
    )
    with world.client(world.bot_key) as http:
        assert_dify_error(
            http.get(f"/dify/v1/messages/{mid}/suggested", params={"user": "bob"}), 404, "not_found"
        )
    # alice's conversation is untouched
    history = client.get_conversation_messages("alice", conversation_id=cid).json()["data"]
    assert len(history) == 1 and history[0]["feedback"] is None
    assert client.get_conversations("alice").json()["data"][0]["name"] == HOURS_QUESTION


def test_session_namespaces_of_keys_and_doors(world: World) -> None:
    """``user`` abc-123 of one app key, of another key, of the developer API and of a public
    visitor are four different people."""
    with world.admin() as admin:
        other_key = admin.post(
            "/v1/keys", json={"label": "second app", "bot_id": world.bot_id}
        ).json()["key"]
    client = dify(world)
    mine = client.create_chat_message(inputs={}, query=HOURS_QUESTION, user="abc-123").json()
    cid = mine["conversation_id"]
    other = dify(world, other_key)
    assert other.get_conversations("abc-123").json()["data"] == []
    assert_dify_error(
        other.get_conversation_messages("abc-123", conversation_id=cid), 404, "not_found"
    )
    assert_dify_error(
        other.create_chat_message(inputs={}, query="hi", user="abc-123", conversation_id=cid),
        404,
        "not_found",
    )
    with world.client(world.bot_key) as http:
        # the developer API's session "abc-123" with the very same key is another conversation
        dev = http.post("/api/v1/chat", json={"message": "hi", "session_id": "abc-123"}).json()
        assert dev["conversation_id"] != cid
    with world.client() as anonymous:  # a public visitor who calls themselves abc-123 reads nothing
        assert (
            anonymous.get(
                f"/v1/public/conversations/{cid}/messages", params={"session_id": "abc-123"}
            ).status_code
            == 404
        )
        visitor = anonymous.post(
            "/v1/public/chat/stream",
            json={
                "bot_id": world.bot_id,
                "message": "hello",
                "session_id": "abc-123",
                "conversation_id": cid,
            },
        )
        assert visitor.status_code == 404
    assert [c["id"] for c in client.get_conversations("abc-123").json()["data"]] == [cid]
    assert len(client.get_conversation_messages("abc-123", conversation_id=cid).json()["data"]) == 1


def test_documented_examples(world: World) -> None:
    """The examples of Dify's chat app API page, with only the base URL and key changed."""
    with world.client(world.bot_key, headers={"Content-Type": "application/json"}) as http:
        # Send Chat Message (its example continues a conversation this server never had)
        body = {
            "inputs": {},
            "query": "eh",
            "response_mode": "streaming",
            "conversation_id": "1c7e55fb-1ba2-4e10-81b5-30addcea2276",
            "user": "abc-123",
        }
        assert_dify_error(http.post("/dify/v1/chat-messages", json=body), 404, "not_found")
        with http.stream(
            "POST", "/dify/v1/chat-messages", json={**body, "conversation_id": ""}
        ) as response:
            raw = "".join(response.iter_text())
        assert raw.startswith("data: {") and '"event":"message_end"' in raw.replace(" ", "")
        # the example with an image by URL: this server fetches no URLs for a caller
        with_image = {
            **body,
            "conversation_id": "",
            "files": [
                {
                    "type": "image",
                    "transfer_method": "remote_url",
                    "url": "https://cloud.dify.ai/logo/logo-site.png",
                }
            ],
        }
        assert_dify_error(
            http.post("/dify/v1/chat-messages", json=with_image), 400, "invalid_param"
        )
        blocking = http.post(
            "/dify/v1/chat-messages",
            json={
                **body,
                "conversation_id": "",
                "response_mode": "blocking",
                "query": HOURS_QUESTION,
            },
        ).json()
        # Stop Generate
        stop = http.post(
            f"/dify/v1/chat-messages/{blocking['task_id']}/stop", json={"user": "abc-123"}
        )
        assert stop.status_code == 200 and stop.json() == {"result": "success"}
        # Message Feedback
        feedback = http.post(
            f"/dify/v1/messages/{blocking['message_id']}/feedbacks",
            json={"rating": "like", "user": "abc-123", "content": "message feedback information"},
        )
        assert feedback.json() == {"result": "success"}
        # Next Suggested Questions
        suggested = http.get(
            f"/dify/v1/messages/{blocking['message_id']}/suggested", params={"user": "abc-123"}
        )
        assert suggested.status_code == 200 and suggested.json()["result"] == "success"
        # Get Conversation History Messages (its example leaves conversation_id empty)
        assert http.get("/dify/v1/messages?user=abc-123&conversation_id=").json() == {
            "limit": 20,
            "has_more": False,
            "data": [],
        }
        history = http.get(
            "/dify/v1/messages",
            params={"user": "abc-123", "conversation_id": blocking["conversation_id"]},
        ).json()
        assert history["data"][0]["feedback"] == {"rating": "like"}
        # Get Conversations
        listed = http.get("/dify/v1/conversations?user=abc-123&last_id=&limit=20").json()
        assert (
            listed["limit"] == 20
            and [c["id"] for c in listed["data"]][0] == blocking["conversation_id"]
        )
        assert set(listed["data"][0]) >= {
            "id",
            "name",
            "inputs",
            "status",
            "introduction",
            "created_at",
            "updated_at",
        }
        # Conversation Rename (auto_generate)
        renamed = http.post(
            f"/dify/v1/conversations/{blocking['conversation_id']}/name",
            json={"name": "", "auto_generate": True, "user": "abc-123"},
        )
        assert renamed.status_code == 200 and renamed.json()["name"] == HOURS_QUESTION
        # Get Application Basic Information / Parameters / Meta
        assert set(http.get("/dify/v1/info").json()) >= {"name", "description", "tags"}
        parameters = http.get("/dify/v1/parameters").json()
        assert set(parameters) >= {
            "opening_statement",
            "suggested_questions",
            "suggested_questions_after_answer",
            "speech_to_text",
            "retriever_resource",
            "annotation_reply",
            "user_input_form",
            "file_upload",
            "system_parameters",
        }
        assert set(http.get("/dify/v1/meta").json()) == {"tool_icons"}
        # File Upload: only for bots whose model takes images (the offline answerer does not)
        with world.client(world.bot_key) as plain:
            upload = plain.post(
                "/dify/v1/files/upload",
                files={"file": ("example.png", b"\x89PNG\r\n", "image/png")},
                data={"user": "abc-123"},
            )
        assert_dify_error(upload, 415, "unsupported_file_type")
        # Delete Conversation
        deleted = http.request(
            "DELETE",
            f"/dify/v1/conversations/{blocking['conversation_id']}",
            json={"user": "abc-123"},
            headers={"Accept": "application/json"},
        )
        assert deleted.status_code == 204


@pytest.mark.parametrize(
    "case",
    [
        "no key",
        "bad key",
        "workspace key",
        "no query",
        "no user",
        "bad mode",
        "bad conversation id",
        "bad json",
        "not an object",
        "unknown route",
        "bad limit",
        "bad sort",
        "bad rating",
        "unknown message",
        "last_id unknown",
        "first_id unknown",
        "rename without name",
        "long user",
    ],
)
def test_bad_input_in_difys_shape(world: World, case: str) -> None:
    chat = {"inputs": {}, "query": "hi", "user": "abc-123"}
    with world.client(world.bot_key) as http:
        cid = http.post("/dify/v1/chat-messages", json=chat).json()["conversation_id"]
        expected: tuple[int, str]
        if case == "no key":
            response, expected = (
                httpx.post(f"{world.base}/dify/v1/chat-messages", json=chat),
                (401, "unauthorized"),
            )
        elif case == "bad key":
            response = httpx.post(
                f"{world.base}/dify/v1/chat-messages",
                json=chat,
                headers={"Authorization": "Bearer app-not-a-key"},
            )
            expected = (401, "unauthorized")
        elif case == "workspace key":
            with world.client(world.workspace_key) as ws:
                response, expected = (
                    ws.post("/dify/v1/chat-messages", json=chat),
                    (403, "forbidden"),
                )
        elif case == "no query":
            response, expected = (
                http.post("/dify/v1/chat-messages", json={"user": "abc-123"}),
                (400, "invalid_param"),
            )
        elif case == "no user":
            response, expected = (
                http.post("/dify/v1/chat-messages", json={"query": "hi"}),
                (400, "invalid_param"),
            )
        elif case == "bad mode":
            response = http.post("/dify/v1/chat-messages", json={**chat, "response_mode": "fast"})
            expected = (400, "invalid_param")
        elif case == "bad conversation id":
            response = http.post(
                "/dify/v1/chat-messages", json={**chat, "conversation_id": "not-a-uuid"}
            )
            expected = (400, "invalid_param")
        elif case == "bad json":
            response = http.post(
                "/dify/v1/chat-messages",
                content=b"{nope",
                headers={"Content-Type": "application/json"},
            )
            expected = (400, "bad_request")
        elif case == "not an object":
            response, expected = (
                http.post("/dify/v1/chat-messages", json=["hi"]),
                (400, "invalid_param"),
            )
        elif case == "unknown route":
            response, expected = http.get("/dify/v1/workflows/run"), (404, "not_found")
        elif case == "bad limit":
            response = http.get("/dify/v1/conversations", params={"user": "abc-123", "limit": 0})
            expected = (400, "invalid_param")
        elif case == "bad sort":
            response = http.get(
                "/dify/v1/conversations", params={"user": "abc-123", "sort_by": "name"}
            )
            expected = (400, "invalid_param")
        elif case == "bad rating":
            mid = http.get(
                "/dify/v1/messages", params={"user": "abc-123", "conversation_id": cid}
            ).json()["data"][0]["id"]
            response = http.post(
                f"/dify/v1/messages/{mid}/feedbacks", json={"rating": "great", "user": "abc-123"}
            )
            expected = (400, "invalid_param")
        elif case == "unknown message":
            response = http.post(
                "/dify/v1/messages/0b8f4a1e-0000-4000-8000-000000000000/feedbacks",
                json={"rating": "like", "user": "abc-123"},
            )
            expected = (404, "not_found")
        elif case == "last_id unknown":
            response = http.get(
                "/dify/v1/conversations",
                params={"user": "abc-123", "last_id": "0b8f4a1e-0000-4000-8000-000000000000"},
            )
            expected = (404, "not_found")
        elif case == "first_id unknown":
            response = http.get(
                "/dify/v1/messages",
                params={"user": "abc-123", "conversation_id": cid, "first_id": "nope"},
            )
            expected = (404, "not_found")
        elif case == "rename without name":
            response = http.post(f"/dify/v1/conversations/{cid}/name", json={"user": "abc-123"})
            expected = (400, "invalid_param")
        else:
            response = http.get("/dify/v1/conversations", params={"user": "u" * 201})
            expected = (400, "invalid_param")
    assert_dify_error(response, *expected)


def test_stop_ends_a_streaming_answer(start_world: Any, live_server: Any) -> None:
    """Dify's stop button, with a model that writes five words a second: the stream ends at once
    with message_end, and the partial answer is stored as stopped."""
    from tests.upstream import scripted_upstream

    upstream = live_server.start(
        scripted_upstream(" ".join(["word"] * 40) + " [1].", tokens_per_second=5)
    )
    world = start_world(llm_base_url=upstream + "/v1", llm_model="scripted")
    client = dify(world)
    response = client.create_chat_message(
        inputs={}, query=HOURS_QUESTION, user="abc-123", response_mode="streaming"
    )
    events: list[dict[str, Any]] = []
    stopped = False
    for line in response.iter_lines(decode_unicode=True):
        if not line or not line.startswith("data:"):
            continue
        events.append(json.loads(line[len("data:") :]))
        if events[-1]["event"] == "message" and not stopped:
            stop = client._send_request(
                "POST", f"/chat-messages/{events[-1]['task_id']}/stop", {"user": "abc-123"}
            )
            assert stop.json() == {"result": "success"}
            stopped = True
    assert events[-1]["event"] == "message_end"
    said = "".join(e["answer"] for e in events if e["event"] == "message")
    assert 0 < said.count("word") < 10  # not the whole 40-word answer
    history = client.get_conversation_messages(
        "abc-123", conversation_id=events[-1]["conversation_id"]
    ).json()
    [stored] = history["data"]
    assert stored["id"] == events[-1]["message_id"] and stored["status"] == "error"
    assert stored["answer"].startswith("word")


def test_image_upload_reaches_a_model_that_takes_images(start_world: Any, live_server: Any) -> None:
    """POST /files/upload, then a message naming it (transfer_method local_file): the model is sent
    the image; another user cannot use that upload."""
    import base64

    from tests.upstream import scripted_upstream

    model = scripted_upstream("A small red square [1].")
    upstream = live_server.start(model)
    world = start_world(llm_base_url=upstream + "/v1", llm_model="scripted")
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    )
    client = dify(world)
    assert (
        client.get_application_parameters("abc-123").json()["file_upload"]["image"]["enabled"]
        is True
    )
    uploaded = client.file_upload("abc-123", {"file": ("red.png", png, "image/png")})
    assert uploaded.status_code == 201, uploaded.text
    info = uploaded.json()
    assert (
        info["extension"] == "png" and info["mime_type"] == "image/png" and info["size"] == len(png)
    )
    files = [{"type": "image", "transfer_method": "local_file", "upload_file_id": info["id"]}]
    stranger = client.create_chat_message(
        inputs={}, query="What is in this picture of our hours?", user="bob", files=files
    )
    assert_dify_error(stranger, 404, "not_found")
    reply = client.create_chat_message(
        inputs={}, query="What is in this picture of our hours?", user="abc-123", files=files
    )
    assert reply.status_code == 200, reply.text
    sent = model.state.served["last_body"]["messages"][-1]["content"]
    images = [part for part in sent if isinstance(part, dict) and part.get("type") == "image_url"]
    assert images and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    too_big = client.file_upload(
        "abc-123", {"file": ("big.png", b"\0" * (10 * 1024 * 1024 + 1), "image/png")}
    )
    assert_dify_error(too_big, 413, "file_too_large")
    wrong_type = client.file_upload("abc-123", {"file": ("notes.txt", b"hello", "text/plain")})
    assert_dify_error(wrong_type, 415, "unsupported_file_type")


def test_a_model_failure_in_difys_words(start_world: Any) -> None:
    """The model server is gone: blocking answers 400 completion_request_error, streaming ends with
    an error event {status, code, message} and no message_end (as Dify's InvokeError)."""
    from tests.services import free_port

    world = start_world(llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_model="gone")
    client = dify(world)
    blocking = client.create_chat_message(inputs={}, query=HOURS_QUESTION, user="abc-123")
    assert_dify_error(blocking, 400, "completion_request_error")
    events = stream_events(
        client.create_chat_message(
            inputs={}, query=HOURS_QUESTION, user="abc-123", response_mode="streaming"
        )
    )
    assert events[-1]["event"] == "error" and events[-1]["code"] == "completion_request_error"
    assert events[-1]["status"] == 400 and events[-1]["message"] and events[-1]["message_id"]
    assert all(e["event"] != "message_end" for e in events)
