"""Agent and RAG frameworks as their users configure them, against the OpenAI doors: LangChain
(``langchain-openai``: structured output in every method, the Responses API), LlamaIndex
(``OpenAILike`` with its defaults: the legacy completions endpoint) and pydantic-ai (the Responses
model with an ``output_type``). Structured output goes through the scripted model (``modelled``);
the offline answerer answers prose and refuses the rest with OpenAI's error."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.clients.conftest import Served, conversations
from tests.conftest import ADMIN_KEY

QUESTION = "How long do parcels to Norway take?"


class Delivery(BaseModel):
    """How long a parcel takes to a country."""

    country: str
    days: int


OPENED: list[Any] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    """The frameworks keep an SDK client per model; close them (and collect what they dropped)
    within the test, so no unclosed socket is reported against a later one."""
    yield
    while OPENED:
        OPENED.pop().close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def chat_model(served: Served, **options: object):  # type: ignore[no-untyped-def]
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(
        model="support-bot", base_url=served.v1, api_key=ADMIN_KEY, max_retries=0, **options
    )
    OPENED.append(model.root_client)
    return model


# -------------------------------------------------------------------------------------- LangChain


@pytest.mark.parametrize("method", ["function_calling", "json_mode", "json_schema"])
def test_langchain_structured_output_in_every_method(modelled: Served, method: str) -> None:
    structured = chat_model(modelled).with_structured_output(Delivery, method=method)
    prompt = QUESTION + (" Answer in JSON with country and days." if method == "json_mode" else "")
    assert structured.invoke(prompt) == Delivery(country="Norway", days=4)
    sent = modelled.upstream.state.bodies[-1]
    if method == "function_calling":
        assert (
            sent["tools"][0]["function"]["name"] == "Delivery"
            and sent["tool_choice"]["function"]["name"] == "Delivery"
        )
    else:
        assert (
            sent["response_format"]["type"]
            == {"json_mode": "json_object", "json_schema": "json_schema"}[method]
        )


def test_langchain_structured_output_over_the_responses_api(modelled: Served) -> None:
    model = chat_model(modelled, use_responses_api=True)
    assert "four days" in model.invoke(QUESTION).text
    for method in ("function_calling", "json_schema"):
        assert model.with_structured_output(Delivery, method=method).invoke(QUESTION) == Delivery(
            country="Norway", days=4
        )


def test_langchain_prose_streaming_and_refusals_with_the_offline_answerer(offline: Served) -> None:
    model = chat_model(offline)
    assert "four days" in model.invoke([("system", "Be brief."), ("human", QUESTION)]).content
    assert "four days" in "".join(chunk.content for chunk in model.stream(QUESTION))
    responses = chat_model(offline, use_responses_api=True)
    assert "four days" in responses.invoke(QUESTION).text
    # No silent None: structured output the offline answerer can't write is an error the caller sees.
    with pytest.raises(openai.BadRequestError) as refused:
        model.with_structured_output(Delivery, method="function_calling").invoke(QUESTION)
    assert refused.value.code == "unsupported_parameter"


def test_langchain_multi_turn_is_one_conversation(offline: Served) -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    model = chat_model(offline)
    history: list[object] = [HumanMessage(QUESTION)]
    history.append(AIMessage(model.invoke(history).content))
    history.append(HumanMessage("Is there express delivery to Norway?"))
    assert "one day" in model.invoke(history).content
    assert len(conversations(offline)) == 1


# -------------------------------------------------------------------------------------- LlamaIndex


def test_llamaindex_openai_like_with_its_defaults(offline: Served) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(model="support-bot", api_base=offline.v1, api_key=ADMIN_KEY)
    assert "four days" in llm.complete(QUESTION).text  # is_chat_model=False: /v1/completions
    assert "four days" in "".join(r.delta or "" for r in llm.stream_complete(QUESTION))
    assert "four days" in llm.chat([ChatMessage(role="user", content=QUESTION)]).message.content
    chat = OpenAILike(
        model="support-bot", api_base=offline.v1, api_key=ADMIN_KEY, is_chat_model=True
    )
    assert "four days" in chat.complete(QUESTION).text


# ------------------------------------------------------------------------------------- pydantic-ai


async def test_pydantic_ai_responses_model_with_an_output_type(modelled: Served) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=modelled.v1, api_key=ADMIN_KEY)
    agent = Agent(
        OpenAIResponsesModel("support-bot", provider=provider),
        output_type=Delivery,
        instructions="Answer about deliveries.",
    )
    result = await agent.run(QUESTION)
    await provider.client.close()
    assert result.output == Delivery(country="Norway", days=4)
    sent = modelled.upstream.state.bodies[-1]
    assert sent["tools"] and "Answer about deliveries." in sent["messages"][0]["content"]


async def test_pydantic_ai_plain_answers_from_the_offline_answerer(offline: Served) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=offline.v1, api_key=ADMIN_KEY)
    for model in (
        OpenAIResponsesModel("support-bot", provider=provider),
        OpenAIChatModel("support-bot", provider=provider),
    ):
        assert "four days" in (await Agent(model).run(QUESTION)).output
    await provider.client.close()
