"""Tool passthrough against a real model server: llama.cpp (llama-cpp-python's server, SmolLM2-135M,
``chatml-function-calling``) behind a bot, driven by the ``openai`` SDK. The tools the client sends
reach the model (it calls one by the name only the request gave it, with arguments under the
request's schema), and its call reaches the client in OpenAI's shape, plain and streamed, on chat
completions and on the Responses API; a JSON response format reaches it too."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.clients.conftest import Served
from tests.conftest import ADMIN_KEY
from tests.llm_server import LLMServer

QUESTION = "What is the status of parcel 42 to Oslo?"
NAME = "parcel_status_7f3a"  # a name the model only knows from the request's tools
PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "parcel": {"type": "integer"}},
    "required": ["city", "parcel"],
}
CHAT_TOOL = {
    "type": "function",
    "function": {"name": NAME, "description": "A parcel's status", "parameters": PARAMETERS},
}
RESPONSES_TOOL = {
    "type": "function",
    "name": NAME,
    "description": "A parcel's status",
    "parameters": PARAMETERS,
}
SAMPLING: dict[str, Any] = {"temperature": 0, "max_tokens": 60}


@pytest.fixture
def llama(serve: Callable[..., Served], llm_tool_server: LLMServer) -> Iterator[openai.OpenAI]:
    served = serve(llm_base_url=llm_tool_server.base_url, llm_model=llm_tool_server.model)
    with openai.OpenAI(base_url=served.v1, api_key=ADMIN_KEY, max_retries=0) as client:
        yield client


def arguments_fit(arguments: str) -> None:
    given = json.loads(arguments)
    assert set(given) == {"city", "parcel"} and isinstance(given["parcel"], int), arguments


def test_chat_completions_tool_call_from_llama(llama: openai.OpenAI) -> None:
    ask: dict[str, Any] = {
        "model": "support-bot",
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": [CHAT_TOOL],
        "tool_choice": {"type": "function", "function": {"name": NAME}},
        **SAMPLING,
    }
    reply = llama.chat.completions.create(**ask)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == NAME and call.id
    arguments_fit(call.function.arguments)
    chunks = list(llama.chat.completions.create(**ask, stream=True))
    pieces = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert pieces and pieces[0].function.name == NAME and pieces[0].id
    assert {p.index for p in pieces} == {0}
    arguments_fit("".join(p.function.arguments or "" for p in pieces))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_responses_function_call_from_llama(llama: openai.OpenAI) -> None:
    ask: dict[str, Any] = {
        "model": "support-bot",
        "input": QUESTION,
        "tools": [RESPONSES_TOOL],
        "tool_choice": {"type": "function", "name": NAME},
        "temperature": 0,
        "max_output_tokens": 60,
    }
    reply = llama.responses.create(**ask)
    assert reply.status == "completed"
    (call,) = [item for item in reply.output if item.type == "function_call"]
    assert call.name == NAME and call.call_id
    arguments_fit(call.arguments)
    events = list(llama.responses.create(**ask, stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and done[0].name == NAME
    arguments_fit(done[0].arguments)
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[-1].type == "function_call"
    # The client ran the tool: its output after previous_response_id gets the model's answer.
    answered = llama.responses.create(
        model="support-bot",
        previous_response_id=reply.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Delivered."}],
        tools=[RESPONSES_TOOL],
        tool_choice="none",
        temperature=0,
        max_output_tokens=40,
    )
    assert (
        answered.status in ("completed", "incomplete") and answered.previous_response_id == reply.id
    )
    assert answered.output_text.strip()


def test_a_json_response_format_reaches_llama(
    serve: Callable[..., Served], llm_server: LLMServer
) -> None:
    """llama.cpp's server takes ``json_object`` (its grammar makes the model write JSON; it refuses
    ``json_schema``): the format reaches it through both doors."""
    served = serve(llm_base_url=llm_server.base_url, llm_model=llm_server.model)
    with openai.OpenAI(base_url=served.v1, api_key=ADMIN_KEY, max_retries=0) as client:
        ask = "How long do parcels to Norway take? Answer in JSON with the country and the days."
        chat = client.chat.completions.create(
            model="support-bot",
            messages=[{"role": "user", "content": ask}],
            response_format={"type": "json_object"},
            **SAMPLING,
        )
        answers = [chat.choices[0].message.content or ""]
        reply = client.responses.create(
            model="support-bot",
            input=ask,
            text={"format": {"type": "json_object"}},
            temperature=0,
            max_output_tokens=60,
        )
        answers.append(reply.output_text)
    for text in answers:
        assert text.lstrip().startswith("{"), text
