"""The OpenAI doors driven by the official ``openai`` SDK (strict response validation): the
Responses API, parameters honoured or refused, tool calls and JSON through a configured model,
conversations that continue, the legacy completions, model lookup, quota and rate-limit headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.clients.conftest import Served, conversations
from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import empty_wallet

QUESTION = "How long do parcels to Norway take?"
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_parcel",
        "description": "Find a parcel",
        "parameters": {
            "type": "object",
            "properties": {"country": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["country", "days"],
        },
    },
}


class Delivery(BaseModel):
    country: str
    days: int


OPENED: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def sdk(served: Served, key: str = ADMIN_KEY, *, strict: bool = True) -> openai.OpenAI:
    client = openai.OpenAI(
        base_url=served.v1, api_key=key, max_retries=0, _strict_response_validation=strict
    )
    OPENED.append(client)
    return client


def messages_of(served: Served, conversation_id: str) -> list[dict[str, Any]]:
    with served.admin() as http:
        return http.get(f"/v1/conversations/{conversation_id}").json()["messages"]


# ------------------------------------------------------------------------------ Responses API


def test_responses_plain_stored_continued_retrieved_and_deleted(offline: Served) -> None:
    client = sdk(offline)
    first = client.responses.create(model="support-bot", input=QUESTION)
    assert first.status == "completed" and "four days" in first.output_text
    text = first.output[0].content[0]
    assert text.annotations and text.annotations[0].type == "file_citation"
    assert text.annotations[0].filename == "Shipping"
    assert text.text[text.annotations[0].index :].startswith("[1]")
    assert first.usage is not None and first.usage.output_tokens > 0
    second = client.responses.create(
        model="support-bot",
        input="Is there express delivery to Norway?",
        previous_response_id=first.id,
    )
    assert "one day" in second.output_text and second.previous_response_id == first.id
    stored = conversations(offline)
    assert len(stored) == 1  # the second response continued the first one's conversation
    assert [m["role"] for m in messages_of(offline, stored[0]["id"])] == ["user", "assistant"] * 2
    again = client.responses.retrieve(second.id)
    assert again.output_text == second.output_text and again.previous_response_id == first.id
    assert again.output[0].content[0].annotations[0].filename == "Shipping"
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)
    assert len(messages_of(offline, stored[0]["id"])) == 2
    with pytest.raises(openai.NotFoundError):  # another bot's key can't read the response
        sdk(offline, offline.other_key).responses.retrieve(first.id)


def test_responses_stream_event_sequence(offline: Served) -> None:
    client = sdk(offline)
    events = list(client.responses.create(model="support-bot", input=QUESTION, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-5:] == [
        "response.output_text.annotation.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1
    done = events[-1].response
    assert done.output_text == "".join(deltas) and done.usage is not None
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert client.responses.retrieve(done.id).output_text == done.output_text


def test_responses_store_false_keeps_nothing(offline: Served) -> None:
    reply = sdk(offline).responses.create(model="support-bot", input=QUESTION, store=False)
    assert "four days" in reply.output_text
    assert conversations(offline) == []
    with pytest.raises(openai.NotFoundError):
        sdk(offline).responses.retrieve(reply.id)


def test_responses_with_a_configured_model_call_tools_and_write_json(modelled: Served) -> None:
    client = sdk(modelled)
    tool = {
        "type": "function",
        "name": "lookup_parcel",
        "parameters": LOOKUP["function"]["parameters"],
    }
    called = client.responses.create(
        model="support-bot",
        input=QUESTION,
        tools=[tool],
        instructions="Use the tool when you can.",
        max_output_tokens=50,
        temperature=0.2,
    )
    call = called.output[-1]
    assert call.type == "function_call" and call.name == "lookup_parcel"
    assert json.loads(call.arguments) == {"country": "Norway", "days": 4}
    sent = modelled.upstream.state.bodies[-1]
    assert sent["tools"][0]["function"]["name"] == "lookup_parcel" and sent["max_tokens"] == 50
    assert (
        sent["temperature"] == 0.2
        and "Use the tool when you can." in sent["messages"][0]["content"]
    )
    # The function's result goes back with the conversation so far; the model then answers.
    answered = client.responses.create(
        model="support-bot",
        tools=[tool],
        input=[
            {"role": "user", "content": QUESTION},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "4 days"},
        ],
    )
    assert "four days" in answered.output_text
    sent = modelled.upstream.state.bodies[-1]["messages"]
    assert [m["role"] for m in sent[-3:]] == ["user", "assistant", "tool"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "4 days"}
    streamed = list(
        client.responses.create(model="support-bot", input=QUESTION, tools=[tool], stream=True)
    )
    kinds = [e.type for e in streamed]
    assert "response.function_call_arguments.done" in kinds and kinds[-1] == "response.completed"
    assert streamed[-1].response.output[-1].type == "function_call"
    parsed = client.responses.parse(model="support-bot", input=QUESTION, text_format=Delivery)
    assert parsed.output_parsed == Delivery(country="Norway", days=4)
    assert modelled.upstream.state.bodies[-1]["response_format"]["type"] == "json_schema"


def test_a_response_continued_from_an_earlier_one_branches_from_it(modelled: Served) -> None:
    """previous_response_id naming an earlier response than the latest: the model sees the
    conversation up to that response, not the turns written after it."""
    client = sdk(modelled)
    first = client.responses.create(model="support-bot", input=QUESTION)
    client.responses.create(
        model="support-bot",
        input="And to Sweden, by bicycle courier?",
        previous_response_id=first.id,
    )
    branch = client.responses.create(
        model="support-bot", input="Is there express delivery?", previous_response_id=first.id
    )
    sent = modelled.upstream.state.bodies[-1]["messages"]
    said = " ".join(str(m.get("content")) for m in sent)
    assert QUESTION in said and "Is there express delivery?" in said
    assert "bicycle courier" not in said  # the other branch
    assert branch.previous_response_id == first.id
    assert client.responses.retrieve(branch.id).previous_response_id == first.id
    # Going on from the branch: its history is the first exchange and the branch's, never the
    # other branch written between them.
    asked = len(modelled.upstream.state.bodies)
    third = client.responses.create(
        model="support-bot",
        input="How long do parcels to Finland take by express?",
        previous_response_id=branch.id,
    )
    answering = [b for b in modelled.upstream.state.bodies[asked:] if "sources" in str(b)][-1]
    history = [(m["role"], m["content"]) for m in answering["messages"][1:-1]]
    assert [text for role, text in history if role == "user"] == [
        QUESTION,
        "Is there express delivery?",
    ], history
    assert client.responses.retrieve(third.id).previous_response_id == branch.id


def test_responses_continue_with_only_the_function_results(modelled: Served) -> None:
    """The client ran the tools a response called and sends back only their outputs, after
    ``previous_response_id``: the model gets the question, the calls and the results, and answers."""
    client = sdk(modelled)
    tool = {
        "type": "function",
        "name": "lookup_parcel",
        "parameters": LOOKUP["function"]["parameters"],
    }
    for stream in (False, True):
        called = client.responses.create(model="support-bot", input=QUESTION, tools=[tool])
        call = called.output[-1]
        assert call.type == "function_call"
        request = {
            "model": "support-bot",
            "tools": [tool],
            "previous_response_id": called.id,
            "input": [
                {"type": "function_call_output", "call_id": call.call_id, "output": "4 days"}
            ],
        }
        if stream:
            answered = list(client.responses.create(**request, stream=True))[-1].response
        else:
            answered = client.responses.create(**request)
        assert answered.status == "completed" and "four days" in answered.output_text
        assert answered.previous_response_id == called.id
        sent = modelled.upstream.state.bodies[-1]["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
        assert QUESTION in sent[1]["content"]  # asked once, with its sources
        assert sent[2]["tool_calls"][0]["id"] == call.call_id
        assert sent[2]["tool_calls"][0]["function"]["name"] == "lookup_parcel"
        assert sent[3] == {"role": "tool", "tool_call_id": call.call_id, "content": "4 days"}
    assert len(conversations(modelled)) == 2  # each answer continued its call's conversation
    assert client.responses.retrieve(answered.id).output_text == answered.output_text
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(
            model="support-bot",
            tools=[tool],
            previous_response_id=called.id,
            input=[{"type": "function_call_output", "call_id": "call_other", "output": "4"}],
        )
    assert unknown.value.param == "input[0].call_id" and "call_other" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as alone:  # no response to continue: no question
        client.responses.create(
            model="support-bot",
            tools=[tool],
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "4"}],
        )
    assert alone.value.param == "input"


# -------------------------------------------------------------- parameters: honoured or refused


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [LOOKUP]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ],
)
def test_the_offline_answerer_refuses_what_it_cannot_do(
    offline: Served, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(offline).chat.completions.create(
            model="support-bot", messages=[{"role": "user", "content": QUESTION}], **extra
        )
    assert refused.value.code == "unsupported_parameter" and refused.value.param == param
    assert conversations(offline) == []  # refused before anything was stored


def test_the_offline_answerer_refuses_structured_output_on_every_door(offline: Served) -> None:
    client = sdk(offline)
    with pytest.raises(openai.BadRequestError) as parse:
        client.chat.completions.parse(
            model="support-bot",
            messages=[{"role": "user", "content": QUESTION}],
            response_format=Delivery,
        )
    assert parse.value.param == "response_format"
    with pytest.raises(openai.BadRequestError) as responses:
        client.responses.create(
            model="support-bot",
            input=QUESTION,
            tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        )
    assert responses.value.code == "unsupported_parameter" and responses.value.param == "tools"
    with pytest.raises(openai.BadRequestError) as web:
        client.responses.create(model="support-bot", input=QUESTION, tools=[{"type": "web_search"}])
    assert web.value.param == "tools[0]"


def test_the_offline_answerer_honours_max_tokens_and_stop(offline: Served) -> None:
    client = sdk(offline)
    ask = [{"role": "user", "content": QUESTION}]
    short = client.chat.completions.create(model="support-bot", messages=ask, max_tokens=4)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens <= 4
    stopped = client.chat.completions.create(model="support-bot", messages=ask, stop=["four"])
    assert stopped.choices[0].message.content.rstrip().endswith("take")
    streamed = list(
        client.chat.completions.create(
            model="support-bot", messages=ask, max_completion_tokens=4, stream=True
        )
    )
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "length"


def test_parameters_reach_a_configured_model(modelled: Served) -> None:
    reply = sdk(modelled).chat.completions.create(
        model="support-bot",
        temperature=0.3,
        top_p=0.9,
        seed=7,
        stop=["END"],
        max_tokens=40,
        presence_penalty=0.1,
        messages=[
            {"role": "system", "content": "Answer like a pirate."},
            {"role": "developer", "content": "Mention the country."},
            {"role": "user", "content": QUESTION},
        ],
    )
    assert "four days" in reply.choices[0].message.content
    sent = modelled.upstream.state.bodies[-1]
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["stop"], sent["max_tokens"]) == (
        0.3,
        0.9,
        7,
        ["END"],
        40,
    )
    assert sent["presence_penalty"] == 0.1
    system = sent["messages"][0]["content"]
    # The caller's instructions come under the bot's rules, which win.
    assert (
        system.index("using only the")
        < system.index("confidential")
        < system.index("Answer like a pirate.")
    )
    assert "Mention the country." in system
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_tool_calls_and_json_through_a_configured_model(modelled: Served) -> None:
    client = sdk(modelled)
    ask = [{"role": "user", "content": QUESTION}]
    parsed = client.chat.completions.parse(
        model="support-bot", messages=ask, response_format=Delivery
    )
    assert parsed.choices[0].message.parsed == Delivery(country="Norway", days=4)
    assert (
        modelled.upstream.state.bodies[-1]["response_format"]["json_schema"]["name"] == "Delivery"
    )
    called = client.chat.completions.create(
        model="support-bot",
        messages=ask,
        tools=[LOOKUP],
        tool_choice={"type": "function", "function": {"name": "lookup_parcel"}},
    )
    assert called.choices[0].finish_reason == "tool_calls"
    call = called.choices[0].message.tool_calls[0]
    assert (
        call.function.name == "lookup_parcel" and json.loads(call.function.arguments)["days"] == 4
    )
    assert modelled.upstream.state.bodies[-1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "lookup_parcel"},
    }
    chunks = list(
        client.chat.completions.create(
            model="support-bot", messages=ask, tools=[LOOKUP], stream=True
        )
    )
    streamed = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert streamed[0].function.name == "lookup_parcel" and streamed[0].id == streamed[0].id
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    # A final tool message: the model gets the call and its result after the question, and answers.
    answered = client.chat.completions.create(
        model="support-bot",
        tools=[LOOKUP],
        messages=[
            *ask,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "4 days"},
        ],
    )
    assert "four days" in answered.choices[0].message.content
    sent = modelled.upstream.state.bodies[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == call.id and sent[-1]["role"] == "tool"


def test_a_structured_request_reaches_the_model_even_when_no_source_matches(
    modelled: Served,
) -> None:
    reply = sdk(modelled).chat.completions.parse(
        model="support-bot",
        messages=[{"role": "user", "content": "zebra quantum violin"}],
        response_format=Delivery,
    )
    assert reply.choices[0].message.parsed is not None


# ------------------------------------------------------------------- conversations that continue


def test_a_resent_history_continues_its_conversation(offline: Served) -> None:
    client = sdk(offline)
    history: list[dict[str, Any]] = []
    for question in (
        QUESTION,
        "Is there express delivery to Norway?",
        "Are returns from Norway free?",
    ):
        history.append({"role": "user", "content": question})
        reply = client.chat.completions.create(
            model="support-bot", messages=[{"role": "system", "content": "Be brief."}, *history]
        )
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    stored = conversations(offline)
    assert len(stored) == 1 and len(messages_of(offline, stored[0]["id"])) == 6
    # The same history under another end user is another conversation; so is a streamed fresh start.
    client.chat.completions.create(model="support-bot", messages=history[:3], user="someone-else")
    assert len(conversations(offline)) == 2
    extension = client.chat.completions.create(
        model="support-bot",
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"conversation_id": stored[0]["id"]},
    )
    assert extension.model_extra["conversation_id"] == stored[0]["id"]
    assert len(conversations(offline)) == 2


# ------------------------------------------------------- completions, models, errors and headers


def test_legacy_completions_and_model_lookup(offline: Served) -> None:
    client = sdk(offline)
    reply = client.completions.create(model="support-bot", prompt=QUESTION)
    assert "four days" in reply.choices[0].text and reply.usage.total_tokens > 0
    # Streamed chunks carry finish_reason null, as OpenAI's do (which the SDK's strict mode refuses).
    lenient = sdk(offline, strict=False)
    streamed = "".join(
        c.choices[0].text
        for c in lenient.completions.create(model="support-bot", prompt=QUESTION, stream=True)
        if c.choices
    )
    assert "four days" in streamed
    assert client.models.retrieve("support-bot").id == "support-bot"
    with pytest.raises(openai.NotFoundError) as hidden:
        sdk(offline, offline.other_key).models.retrieve("support-bot")
    assert hidden.value.code == "model_not_found" and hidden.value.param == "model"
    with pytest.raises(openai.BadRequestError) as two:
        client.completions.create(model="support-bot", prompt=["a", "b"])
    assert two.value.param == "prompt"


def test_rate_limit_headers_and_error_params(offline: Served) -> None:
    with httpx.Client(
        base_url=offline.v1, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as http:
        for path, body in (
            ("/chat/completions", {"messages": [{"role": "user", "content": QUESTION}]}),
            ("/responses", {"input": QUESTION}),
            ("/completions", {"prompt": QUESTION}),
        ):
            for stream in (False, True):
                reply = http.post(path, json={"model": "support-bot", "stream": stream, **body})
                assert reply.status_code == 200, reply.text
                assert int(reply.headers["x-ratelimit-limit-requests"]) > 0
                assert int(reply.headers["x-ratelimit-remaining-requests"]) >= 0
                assert reply.headers["x-ratelimit-reset-requests"].endswith("s")
        invalid = http.post(
            "/chat/completions",
            json={
                "model": "support-bot",
                "temperature": 9,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "temperature"


def test_reads_carry_the_rate_limit_headers_and_count_nothing(offline: Served) -> None:
    """Models and stored responses answer with the key's chat figures, as the next chat request
    would find them; reading spends none of them."""
    client = sdk(offline, offline.bot_key)
    made = client.responses.with_raw_response.create(model="support-bot", input=QUESTION)
    left = int(made.headers["x-ratelimit-remaining-requests"])
    limit = made.headers["x-ratelimit-limit-requests"]
    rid = made.parse().id
    reads = [
        client.models.with_raw_response.list(),
        client.models.with_raw_response.retrieve("support-bot"),
        client.responses.with_raw_response.retrieve(rid),
        client.responses.with_raw_response.retrieve(rid),
    ]
    for read in reads:
        assert read.headers["x-ratelimit-limit-requests"] == limit
        assert read.headers["x-ratelimit-reset-requests"].endswith("s")
    assert [int(r.headers["x-ratelimit-remaining-requests"]) for r in reads[1:]] == [left] * 3
    assert int(reads[0].headers["x-ratelimit-remaining-requests"]) >= left  # no bot named
    deleted = sdk(offline).responses.with_raw_response.delete(rid)
    assert deleted.headers["x-ratelimit-limit-requests"] == limit
    again = client.responses.with_raw_response.create(model="support-bot", input=QUESTION)
    assert int(again.headers["x-ratelimit-remaining-requests"]) == left - 1
    # Errors carry them too once the key is known: an unknown model, a malformed request.
    with httpx.Client(
        base_url=offline.base, headers={"Authorization": f"Bearer {offline.bot_key}"}, timeout=30
    ) as http:
        refusals = [
            http.post("/v1/chat/completions", json={"model": "no-such-bot", "messages": []}),
            http.post("/v1/chat/completions", json={"model": "support-bot"}),
            http.get("/v1/models/no-such-bot"),
            http.get("/v1/responses/resp_unknown"),
        ]
        for refusal in refusals:
            assert 400 <= refusal.status_code < 500, refusal.text
            assert refusal.headers["x-ratelimit-limit-requests"] == limit, refusal.request.url
        unknown_key = http.get("/v1/models", headers={"Authorization": "Bearer cw_nope"})
        assert unknown_key.status_code == 401
        assert "x-ratelimit-limit-requests" not in unknown_key.headers


def test_unknown_routes_under_v1_answer_in_openai_shape_other_doors_keep_theirs(
    offline: Served,
) -> None:
    from chatwell.api.chatbotiq.routes import chatbotiq_error
    from chatwell.api.chatbots_v1.routes import chatbots_v1_error
    from chatwell.api.dify.routes import dify_error
    from chatwell.errors import NotFound

    with pytest.raises(openai.NotFoundError) as unknown:
        sdk(offline).get("/files", cast_to=object)
    assert unknown.value.code == "not_found" and unknown.value.type == "not_found_error"
    with httpx.Client(
        base_url=offline.base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as http:
        for path in ("/v1/nope", "/v1", "/v1/assistants/a/b", "/v1/models/a/b"):
            reply = http.post(path, json={})
            assert reply.status_code == 404, path
            assert set(reply.json()["error"]) == {"message", "type", "param", "code"}, path
        native = http.get("/v1/bots/x/nope")  # the native API's resources keep the native shape
        assert native.status_code == 404 and set(native.json()["error"]) == {"code", "message"}
        for path in ("/v1/conversations/x/nope", "/v1/keys/x/y", "/v1/handoff/nope"):
            assert set(http.get(path).json()["error"]) == {"code", "message"}, path
        missing = NotFound("no such endpoint", code="not_found")
        for path, fmt in (
            ("/v1/public/nope", chatbotiq_error),
            ("/api/v1/chatbots/x/nope", chatbots_v1_error),
            ("/dify/v1/nope", dify_error),
        ):
            reply = http.get(path)
            assert reply.status_code == 404, path
            assert reply.json() == json.loads(fmt(missing, 404).body), path
        assert set(http.get("/api/v1/nope").json()["error"]) == {"code", "message"}


def test_an_empty_workspace_is_insufficient_quota(offline: Served) -> None:
    empty_wallet(offline.database_url)
    with pytest.raises(openai.RateLimitError) as quota:
        sdk(offline).chat.completions.create(
            model="support-bot", messages=[{"role": "user", "content": QUESTION}]
        )
    assert quota.value.code == "insufficient_quota" and quota.value.type == "insufficient_quota"
    assert quota.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.RateLimitError):
        sdk(offline).responses.create(model="support-bot", input=QUESTION)
