"""The Flowise door against a real server, judged by Flowise's Python SDK (``flowise``, pinned in
the test extras): predictions streamed and not, with history and a session id; the widget's
other endpoints (config, streaming check, feedback, leads, abort) and the keyed message history;
the documented request shapes replayed; session namespaces; errors in Flowise's shape."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from flowise import Flowise, IMessage, PredictionData

from tests.dialects.conftest import World

HOURS_QUESTION = "What are your business hours?"


def sdk(world: World, key: str | None = None) -> Flowise:
    return Flowise(base_url=world.base, api_key=key)


def streamed(client: Flowise, data: PredictionData) -> list[dict[str, Any]]:
    return [json.loads(chunk) for chunk in client.create_prediction(data)]


def assert_flowise_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert (
        body["statusCode"] == status
        and body["success"] is False
        and body["message"]
        and body["stack"] == {}
    )
    return body


def test_prediction_without_streaming(world: World) -> None:
    [reply] = list(
        sdk(world).create_prediction(
            PredictionData(chatflowId=world.bot_id, question=HOURS_QUESTION)
        )
    )
    assert "Monday through Friday" in reply["text"] and reply["question"] == HOURS_QUESTION
    assert (
        reply["chatId"] == reply["sessionId"] and len(reply["chatId"]) == 36
    )  # a new UUID, as Flowise
    assert reply["chatMessageId"] and reply["isStreamValid"] is False
    [first, *_] = reply["sourceDocuments"]
    assert first["metadata"]["title"] == "Business hours" and "Monday" in first["pageContent"]


def test_prediction_streamed(world: World) -> None:
    events = streamed(
        sdk(world),
        PredictionData(chatflowId=world.bot_slug, question=HOURS_QUESTION, streaming=True),
    )
    names = [e["event"] for e in events]
    assert (
        names[0] == "start" and names[-2:] == ["metadata", "end"] and "sourceDocuments" in names
    ), names
    assert set(names[1 : names.index("sourceDocuments")]) == {"token"}
    text = "".join(e["data"] for e in events if e["event"] == "token")
    assert "Monday through Friday" in text
    sources = next(e["data"] for e in events if e["event"] == "sourceDocuments")
    assert sources[0]["metadata"]["title"] == "Business hours"
    metadata = events[-2]["data"]
    assert metadata["question"] == HOURS_QUESTION and metadata["chatId"] == metadata["sessionId"]
    assert events[-1]["data"] == "[DONE]"


def test_raw_stream_framing_matches_flowise(world: World) -> None:
    with httpx.stream(
        "POST",
        f"{world.base}/api/v1/prediction/{world.bot_id}",
        json={"question": HOURS_QUESTION, "streaming": True},
        timeout=30,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert (
            response.headers["cache-control"] == "no-cache"
            and response.headers["x-accel-buffering"] == "no"
        )
        raw = "".join(response.iter_text())
    assert raw.startswith('message:\ndata:{"event":"start","data":""}\n\n')
    assert raw.endswith('message:\ndata:{"event":"end","data":"[DONE]"}\n\n')


def test_session_id_history_and_keyed_namespace(world: World) -> None:
    client = sdk(world)
    first = next(
        client.create_prediction(
            PredictionData(
                chatflowId=world.bot_id,
                question=HOURS_QUESTION,
                overrideConfig={"sessionId": "visitor-7"},
            )
        )
    )
    assert first["sessionId"] == "visitor-7" and first["chatId"] == "visitor-7"
    follow = streamed(
        client,
        PredictionData(
            chatflowId=world.bot_id, question="and on weekends?", streaming=True, chatId="visitor-7"
        ),
    )
    assert "weekends" in "".join(e["data"] for e in follow if e["event"] == "token").lower()
    # history given by a client, for a session this server has not seen, carries the context
    fresh = next(
        client.create_prediction(
            PredictionData(
                chatflowId=world.bot_id,
                question="and on weekends?",
                chatId="another-visitor",
                history=[
                    IMessage(message=HOURS_QUESTION, type="userMessage"),
                    IMessage(message="Monday through Friday, 9 AM to 5 PM EST.", type="apiMessage"),
                ],
            )
        )
    )
    assert "weekends" in fresh["text"].lower() and fresh["chatId"] == "another-visitor"

    with world.client(world.workspace_key) as http:
        messages = http.get(
            f"/api/v1/chatmessage/{world.bot_id}", params={"chatId": "visitor-7"}
        ).json()
    assert [m["role"] for m in messages] == ["userMessage", "apiMessage"] * 2
    assert messages[0]["content"] == HOURS_QUESTION and messages[1]["id"] == first["chatMessageId"]
    assert messages[1]["sourceDocuments"][0]["metadata"]["title"] == "Business hours"
    assert {m["chatId"] for m in messages} == {"visitor-7"}

    # The same session id with a key is another conversation, and the key reads only its own.
    keyed = next(
        sdk(world, world.bot_key).create_prediction(
            PredictionData(
                chatflowId=world.bot_id, question="How do I get started?", chatId="visitor-7"
            )
        )
    )
    assert keyed["chatId"] == "visitor-7"
    with world.client(world.bot_key) as http:
        own = http.get(f"/api/v1/chatmessage/{world.bot_id}", params={"chatId": "visitor-7"}).json()
    assert [m["content"] for m in own if m["role"] == "userMessage"] == ["How do I get started?"]


def test_widget_endpoints(world: World) -> None:
    with world.admin() as admin:
        assert (
            admin.patch(
                f"/v1/bots/{world.bot_slug}",
                json={
                    "suggested_questions": ["What are your business hours?"],
                    "contact_form": {"enabled": True, "success_message": "We will call you."},
                },
            ).status_code
            == 200
        )
    with world.client() as http:
        assert http.get(f"/api/v1/chatflows-streaming/{world.bot_id}").json() == {
            "isStreaming": True
        }
        config = http.get(f"/api/v1/public-chatbotConfig/{world.bot_slug}").json()
        assert config["starterPrompts"] == {"0": {"prompt": "What are your business hours?"}}
        assert config["chatFeedback"] == {"status": True}
        assert (
            config["leads"]["status"] is True
            and config["leads"]["successMessage"] == "We will call you."
        )
        assert config["uploads"]["isImageUploadAllowed"] is False

        reply = http.post(
            f"/api/v1/prediction/{world.bot_id}",
            json={"question": HOURS_QUESTION, "chatId": "chat-1"},
        ).json()
        rated = http.post(
            f"/api/v1/feedback/{world.bot_id}",
            json={
                "chatflowid": world.bot_id,
                "chatId": "chat-1",
                "messageId": reply["chatMessageId"],
                "rating": "THUMBS_DOWN",
            },
        )
        assert rated.status_code == 200, rated.text
        feedback = rated.json()
        assert feedback["id"] == reply["chatMessageId"] and feedback["rating"] == "THUMBS_DOWN"
        updated = http.put(
            f"/api/v1/feedback/{feedback['id']}", json={"content": "too short"}
        ).json()
        assert updated["content"] == "too short" and updated["rating"] == "THUMBS_DOWN"
        # another chat cannot rate this answer
        assert_flowise_error(
            http.post(
                f"/api/v1/feedback/{world.bot_id}",
                json={
                    "chatId": "chat-2",
                    "messageId": reply["chatMessageId"],
                    "rating": "THUMBS_UP",
                },
            ),
            404,
        )

        lead = http.post(
            "/api/v1/leads/",
            json={
                "chatflowid": world.bot_id,
                "chatId": "chat-1",
                "name": "Ada",
                "email": "ada@example.com",
                "phone": "+1 555 0100",
            },
        )
        assert lead.status_code == 200, lead.text
        assert lead.json()["email"] == "ada@example.com" and lead.json()["chatId"] == "chat-1"
        assert_flowise_error(
            http.post(
                "/api/v1/leads/",
                json={"chatflowid": world.bot_id, "chatId": "chat-1", "email": "not-an-email"},
            ),
            400,
        )
        aborted = http.put(f"/api/v1/chatmessage/abort/{world.bot_id}/chat-1")
        assert aborted.json() == {"status": 200, "message": "Chat message aborted"}
    with world.client(world.workspace_key) as http:
        listed = http.get(f"/api/v1/leads/{world.bot_id}").json()
        assert [x["email"] for x in listed] == ["ada@example.com"]
        messages = http.get(
            f"/api/v1/chatmessage/{world.bot_id}", params={"chatId": "chat-1"}
        ).json()
        assert messages[1]["feedback"] == "THUMBS_DOWN"
    with world.client(world.bot_key) as http:  # leads need a workspace key
        assert_flowise_error(http.get(f"/api/v1/leads/{world.bot_id}"), 403)


def test_private_bot_needs_its_key(world: World) -> None:
    with world.admin() as admin:
        private = admin.post("/v1/bots", json={"name": "Internal", "slug": "internal"}).json()
        other_key = admin.post(
            "/v1/keys", json={"label": "internal", "bot_id": private["id"]}
        ).json()["key"]
    with world.client() as http:
        assert_flowise_error(http.post("/api/v1/prediction/internal", json={"question": "hi"}), 401)
        assert_flowise_error(http.get("/api/v1/public-chatbotConfig/internal"), 403)
    reply = next(
        sdk(world, other_key).create_prediction(
            PredictionData(chatflowId="internal", question="hi")
        )
    )
    assert reply["text"]
    # A rating on the private bot: its id alone (Flowise's PUT names no bot) tells a caller without
    # the key nothing more than an unknown id does.
    with world.client(other_key) as http:
        history = http.get("/api/v1/chatmessage/internal").json()
        answer = next(m for m in history if m["role"] == "apiMessage")
        assert (
            http.post(
                "/api/v1/feedback/internal",
                json={"chatId": answer["chatId"], "messageId": answer["id"], "rating": "THUMBS_UP"},
            ).status_code
            == 200
        )
    with world.client() as http:
        hidden = assert_flowise_error(
            http.put(f"/api/v1/feedback/{answer['id']}", json={"content": "x"}), 404
        )
        unknown = assert_flowise_error(
            http.put(f"/api/v1/feedback/{uuid.uuid4()}", json={"content": "x"}), 404
        )
        assert hidden == unknown
    with world.client(other_key) as http:
        assert (
            http.put(f"/api/v1/feedback/{answer['id']}", json={"content": "ok"}).json()["content"]
            == "ok"
        )
    # a key of one bot does not reach another
    with world.client(other_key) as http:
        assert_flowise_error(
            http.post(f"/api/v1/prediction/{world.bot_id}", json={"question": "hi"}), 404
        )
        assert_flowise_error(http.get(f"/api/v1/chatmessage/{world.bot_id}"), 404)


def test_widget_cors_and_origins(world: World) -> None:
    with world.admin() as admin:
        assert (
            admin.patch(
                f"/v1/bots/{world.bot_slug}", json={"allowed_origins": ["https://shop.example"]}
            ).status_code
            == 200
        )
    with world.client() as http:
        preflight = http.options(
            f"/api/v1/prediction/{world.bot_id}",
            headers={
                "Origin": "https://anywhere.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 204
        ok = http.post(
            f"/api/v1/prediction/{world.bot_id}",
            json={"question": "hi"},
            headers={"Origin": "https://shop.example"},
        )
        assert (
            ok.status_code == 200
            and ok.headers["access-control-allow-origin"] == "https://shop.example"
        )
        refused = http.post(
            f"/api/v1/prediction/{world.bot_id}",
            json={"question": "hi"},
            headers={"Origin": "https://evil.example"},
        )
        assert_flowise_error(refused, 403)
        config = http.get(
            f"/api/v1/public-chatbotConfig/{world.bot_id}",
            headers={"Origin": "https://evil.example"},
        )
        assert_flowise_error(config, 403)


@pytest.mark.parametrize(
    "case",
    [
        "unknown chatflow",
        "bad key",
        "no question",
        "bad json",
        "not an object",
        "long chat id",
        "bad rating",
        "unknown feedback",
        "history keyless",
        "bad upload",
        "bad order",
    ],
)
def test_bad_input_in_flowises_shape(world: World, case: str) -> None:
    url = f"/api/v1/prediction/{world.bot_id}"
    with world.client() as http:
        if case == "unknown chatflow":
            response, status = (
                http.post("/api/v1/prediction/no-such-flow", json={"question": "hi"}),
                404,
            )
        elif case == "bad key":
            response = http.post(
                url, json={"question": "hi"}, headers={"Authorization": "Bearer nope"}
            )
            status = 401
        elif case == "no question":
            response, status = http.post(url, json={"streaming": True}), 400
        elif case == "bad json":
            response, status = (
                http.post(url, content=b"{", headers={"Content-Type": "application/json"}),
                400,
            )
        elif case == "not an object":
            response, status = http.post(url, json="hi"), 400
        elif case == "long chat id":
            response, status = http.post(url, json={"question": "hi", "chatId": "x" * 201}), 400
        elif case == "bad rating":
            response = http.post(
                f"/api/v1/feedback/{world.bot_id}",
                json={"chatId": "a", "messageId": "b", "rating": "MEH"},
            )
            status = 400
        elif case == "unknown feedback":
            response, status = (
                http.put("/api/v1/feedback/not-a-feedback", json={"content": "x"}),
                404,
            )
        elif case == "history keyless":
            response, status = http.get(f"/api/v1/chatmessage/{world.bot_id}"), 401
        elif case == "bad upload":
            response = http.post(
                url,
                json={
                    "question": "hi",
                    "uploads": [
                        {
                            "data": "data:image/png;base64,@@@",
                            "type": "file",
                            "name": "x.png",
                            "mime": "image/png",
                        }
                    ],
                },
            )
            status = 400
        else:
            with world.client(world.workspace_key) as keyed:
                response, status = (
                    keyed.get(f"/api/v1/chatmessage/{world.bot_id}", params={"order": "up"}),
                    400,
                )
    assert_flowise_error(response, status)


def test_abort_ends_a_streaming_answer(start_world: Any, live_server: Any) -> None:
    """The widget's stop button (PUT /chatmessage/abort/{id}/{chatId}), with a model that writes
    five words a second: the stream sends abort and end at once; the chat id of another
    namespace (a key's) stops nothing."""
    from tests.upstream import scripted_upstream

    upstream = live_server.start(
        scripted_upstream(" ".join(["word"] * 40) + " [1].", tokens_per_second=5)
    )
    world = start_world(llm_base_url=upstream + "/v1", llm_model="scripted")
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=world.base, timeout=30) as http:
        with http.stream(
            "POST",
            f"/api/v1/prediction/{world.bot_id}",
            json={"question": HOURS_QUESTION, "streaming": True, "chatId": "chat-9"},
        ) as response:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                events.append(json.loads(line[len("data:") :]))
                if [e["event"] for e in events].count("token") == 1:
                    with world.client(world.bot_key) as keyed:  # another namespace: nothing happens
                        keyed.put(f"/api/v1/chatmessage/abort/{world.bot_id}/chat-9")
                if [e["event"] for e in events].count("token") == 3:
                    assert (
                        http.put(f"/api/v1/chatmessage/abort/{world.bot_id}/chat-9").status_code
                        == 200
                    )
    names = [e["event"] for e in events]
    assert names[-2:] == ["abort", "end"] and 3 <= names.count("token") < 10, names
    with world.client(world.workspace_key) as keyed:
        [question, answer] = keyed.get(
            f"/api/v1/chatmessage/{world.bot_id}", params={"chatId": "chat-9"}
        ).json()
    assert answer["content"].startswith("word") and answer["content"].count("word") < 10


def test_documented_examples(world: World) -> None:
    """The request bodies of Flowise's prediction API page, with only the host and id changed."""
    url = f"/api/v1/prediction/{world.bot_id}"
    with world.client() as http:
        plain = http.post(url, json={"question": "Hey, how are you?"})
        assert plain.status_code == 200 and plain.json()["text"]
        with_history = http.post(
            url,
            json={
                "question": "Hey, how are you?",
                "history": [
                    {"role": "apiMessage", "content": "Hello how can I help?"},
                    {"role": "userMessage", "content": "Hi there!"},
                    {"role": "apiMessage", "content": "Hello Hi there!"},
                ],
            },
        )
        assert with_history.status_code == 200 and with_history.json()["text"]
        override = http.post(
            url,
            json={
                "question": "Hey, how are you?",
                "overrideConfig": {"sessionId": "123", "returnSourceDocuments": True},
            },
        )
        assert override.status_code == 200 and override.json()["sessionId"] == "123"
        with http.stream(
            "POST", url, json={"question": "Hey, how are you?", "streaming": True}
        ) as response:
            assert response.status_code == 200
            raw = "".join(response.iter_text())
        assert '"event":"start"' in raw and '"event":"end"' in raw
        # an image upload, for a bot whose model takes none (the offline answerer): refused plainly
        image = http.post(
            url,
            json={
                "question": "Can you describe the image?",
                "uploads": [
                    {
                        "data": "data:image/png;base64,iVBORw0KGgo=",
                        "type": "file",
                        "name": "Flowise.png",
                        "mime": "image/png",
                    }
                ],
            },
        )
        assert_flowise_error(image, 400)
    with world.client(world.bot_key) as keyed:  # "Authorization: Bearer <your-api-key>"
        assert keyed.post(url, json={"question": "Hey, how are you?"}).status_code == 200


def test_a_model_failure_in_flowises_words(start_world: Any) -> None:
    """The model server is gone: JSON answers 502 in Flowise's error shape; a stream sends error
    (the message) and end, no metadata."""
    from tests.services import free_port

    world = start_world(llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_model="gone")
    with world.client() as http:
        assert_flowise_error(
            http.post(f"/api/v1/prediction/{world.bot_id}", json={"question": HOURS_QUESTION}), 502
        )
    events = streamed(
        sdk(world), PredictionData(chatflowId=world.bot_id, question=HOURS_QUESTION, streaming=True)
    )
    names = [e["event"] for e in events]
    assert names[0] == "start" and names[-2:] == ["error", "end"] and "metadata" not in names, names
    assert events[-2]["data"]
