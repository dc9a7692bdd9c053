"""Answer quality on the embedded default (offline embedder + offline answerer), as a new user
tries it: the getting-started question, the same question twice, a one-word question to a
bakery bot whose site menu leaks into every page, and a question the content does not answer.
Every reply says whether it answered (``answered``) or abstained."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from chatwell.chat.service import retrieval_query
from chatwell.domain.events import HistoryTurn
from tests.fakes import FixedRegistry, ScriptedModel
from tests.helpers import make_bot

# The getting-started sentence shares its chunk with other topics: the chunk as a whole is far
# from "How do I get started?" in meaning (cosine 0.16), which a best-chunk threshold refused.
HANDBOOK = (
    "Acme employee handbook. Welcome to Acme! We are glad you are here. "
    "To get started, create an account, verify your email address, and install the Acme desktop app. "
    "Time off: employees accrue 25 days of paid leave per year; requests go through the HR portal at least "
    "two weeks ahead. Expenses: submit receipts within 30 days; travel must be approved by your manager. "
    "Security: lock your laptop when you leave your desk and report lost devices to IT within 24 hours. "
    "To reset your password, open the sign-in page and choose Forgot password; the link works for one hour."
)

BAKERY_MENU = "Home | Menu | Bread | Cakes | Pastries | Opening hours | Contact | Order online"
# One page of a small bakery's site, menu included, as a crawl or a paste brings it in.
BAKERY_PAGE = f"""{BAKERY_MENU}

Welcome to the Corner Bakery, a family bakery since 1982.
We bake sourdough, rye and spelt loaves every morning from organic flour. Our sourdough rests for 48 hours.
The shop is open Monday to Saturday from 7 am to 6 pm. On Sundays we are closed.
Birthday cakes can be ordered three days in advance. We decorate them with fresh fruit.
Our butter croissants are baked fresh every morning and usually sell out by ten.
Call us at 555-0100 or write to hello@bakery.example for orders and questions.

{BAKERY_MENU}
Imprint · Privacy · Terms · Cookie settings
"""


async def ask(
    client: httpx.AsyncClient, bot: dict[str, Any], message: str, conversation_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "stream": False}
    if conversation_id:
        body["conversation_id"] = conversation_id
    response = await client.post(f"/v1/bots/{bot['id']}/chat", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def bot_with_texts(
    client: httpx.AsyncClient, app: FastAPI, texts: dict[str, str]
) -> dict[str, Any]:
    bot = await make_bot(client)
    for title, text in texts.items():
        response = await client.post(
            f"/v1/bots/{bot['id']}/sources", json={"type": "text", "title": title, "text": text}
        )
        assert response.status_code == 202
    await app.state.runtime.ingestion.idle()
    return bot


async def test_the_handbook_answers_how_to_get_started(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_texts(client, app, {"Handbook": HANDBOOK})
    reply = await ask(client, bot, "How do I get started?")
    assert reply["answered"] is True
    assert (
        "create an account, verify your email address, and install the Acme desktop app"
        in reply["answer"]
    )
    for unrelated in ("paid leave", "receipts", "laptop", "password"):
        assert unrelated not in reply["answer"]
    assert "[1]" in reply["answer"] and [c["index"] for c in reply["citations"]] == [1]


async def test_the_same_question_twice_is_answered_twice(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_texts(client, app, {"Handbook": HANDBOOK})
    first = await ask(client, bot, "How do I get started?")
    second = await ask(client, bot, "How do I get started?", first["conversation_id"])
    assert first["answered"] is True and second["answered"] is True
    assert second["answer"] == first["answer"]
    # A follow-up is still searched with the question it follows.
    follow_up = await ask(client, bot, "And how do I reset my password?", first["conversation_id"])
    assert follow_up["answered"] is True and "Forgot password" in follow_up["answer"]


async def test_a_one_word_question_to_a_bakery_quotes_the_croissant_sentence_only(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    # Every page starts with the site's menu, as a crawled page or a pasted one does.
    bot = await bot_with_texts(client, app, {"Corner Bakery": BAKERY_PAGE})
    reply = await ask(client, bot, "croissants?")
    assert reply["answered"] is True
    assert "butter croissants are baked fresh every morning" in reply["answer"]
    assert "Home |" not in reply["answer"] and "Order online" not in reply["answer"]
    for unrelated in ("sourdough", "Birthday", "Monday to Saturday", "555-0100"):
        assert unrelated not in reply["answer"]
    assert "Imprint" not in reply["answer"]


async def test_a_related_but_unanswered_question_is_abstained(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_texts(client, app, {"Corner Bakery": BAKERY_PAGE})
    reply = await ask(client, bot, "Do you deliver wedding cakes to Berlin?")
    assert reply["answered"] is False and reply["citations"] == []
    assert "couldn't find" in reply["answer"]


def test_follow_ups_are_searched_with_the_previous_question_repeats_and_new_topics_alone() -> None:
    history = [
        HistoryTurn("user", "When is the shop open?"),
        HistoryTurn("assistant", "Monday to Saturday [1]."),
    ]
    assert retrieval_query("and on weekends?", history) == "When is the shop open? and on weekends?"
    assert (
        retrieval_query("Is it open on Sundays?", history)
        == "When is the shop open? Is it open on Sundays?"
    )
    assert retrieval_query("When is the shop open?", history) == "When is the shop open?"
    assert retrieval_query("croissants?", history) == "croissants?"
    assert retrieval_query("How do I get started?", history) == "How do I get started?"
    # A follow-up asked twice means what it meant the first time.
    twice = [
        *history,
        HistoryTurn("user", "and on weekends?"),
        HistoryTurn("assistant", "Closed on Sundays [1]."),
    ]
    assert retrieval_query("And on weekends?", twice) == "When is the shop open? And on weekends?"


async def test_a_model_saying_not_in_the_sources_is_an_abstention(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_texts(client, app, {"Handbook": HANDBOOK})
    model = ScriptedModel(deltas=("NOT_", "IN_SOU", "RCES", "."))
    app.state.runtime.chat.models = FixedRegistry(model)
    reply = await ask(client, bot, "How many vacation days do I get?")
    assert "NOT_IN_SOURCES" in model.requests[0].messages[0].content  # the prompt names the outcome
    assert reply["answered"] is False and reply["citations"] == [] and "NOT_" not in reply["answer"]
    assert "couldn't find" in reply["answer"]
    response = await client.post(
        f"/v1/bots/{bot['id']}/chat", json={"message": "How many vacation days do I get?"}
    )
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "NOT_" not in response.text and '"answered": false' in events[-1].replace(
        '":false', '": false'
    )
    # An answer starting like the marker ("No, ...", "NOT always") is released as it is.
    app.state.runtime.chat.models = FixedRegistry(
        ScriptedModel(deltas=("N", "o, 25 days ", "a year [1]."))
    )
    reply = await ask(client, bot, "How many vacation days do I get?")
    assert reply["answered"] is True and reply["answer"] == "No, 25 days a year [1]."


async def test_with_a_model_a_follow_up_is_searched_as_the_question_the_model_writes(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await bot_with_texts(
        client,
        app,
        {
            "Opening hours": "The shop is open Monday to Saturday from 7 am to 6 pm.",
            "Gift cards": "Gift cards can be returned within 14 days of purchase for a full refund.",
        },
    )
    model = ScriptedModel(deltas=("Standalone question: ", "Can gift cards be returned?"))
    app.state.runtime.chat.models = FixedRegistry(model)
    first = await ask(client, bot, "When is the shop open?")
    # "and that?" joined to the first question would search the opening hours; the model's
    # standalone question finds the gift-card rule.
    await ask(client, bot, "and what about that?", first["conversation_id"])
    condense, answer = model.requests[1], model.requests[2]
    assert condense.messages[0].content.startswith("You rewrite the user's last message")
    assert "User: When is the shop open?" in condense.messages[1].content
    assert "Last message: and what about that?" in condense.messages[1].content
    assert "Gift cards can be returned within 14 days" in answer.grounding[0].text
    # Switched off, the follow-up is searched with the previous question, and the model is
    # asked only for the answer.
    response = await client.patch(
        f"/v1/bots/{bot['id']}", json={"answer": {"condense_follow_ups": False}}
    )
    assert response.status_code == 200 and response.json()["answer"]["condense_follow_ups"] is False
    model.requests.clear()
    await ask(client, bot, "and what about that?", first["conversation_id"])
    assert len(model.requests) == 1
    assert "open Monday to Saturday" in model.requests[0].grounding[0].text


async def test_an_unusable_rewrite_falls_back_to_the_previous_question() -> None:
    from chatwell.chat.condense import standalone_question

    history = [HistoryTurn("user", "When is the shop open?"), HistoryTurn("assistant", "9-5.")]
    assert await standalone_question(ScriptedModel(deltas=("",)), "m", history, "and then?") is None
    broken = ScriptedModel(fail_after=0)
    assert await standalone_question(broken, "m", history, "and then?") is None
    rambling = ScriptedModel(deltas=("x" * 400,))
    assert await standalone_question(rambling, "m", history, "and then?") is None
    slow = ScriptedModel(deltas=("When is the shop open on weekends?",), delay=0.5)
    assert await standalone_question(slow, "m", history, "and then?", timeout=0.1) is None
    assert await standalone_question(ScriptedModel(deltas=("A?",)), "m", [], "and then?") is None
