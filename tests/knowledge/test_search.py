"""What search returns: only the asking bot's knowledge, only to keys that may reach the bot,
matching Q&A pairs first, and an honest ``relevant`` flag."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from chatwell.services import workspaces
from tests.helpers import bearer, make_bot, make_key

from .helpers import add, idle, search, top, upload

SHARED = "The rooftop terrace is open from May to September and serves cold lemonade."


async def test_a_bot_only_ever_finds_its_own_chunks(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot_a = await make_bot(client, name="Bot A")
    bot_b = await make_bot(client, name="Bot B")
    a_source = await add(client, bot_a, type="text", title="Terrace", text=SHARED)
    b_source = await add(client, bot_b, type="text", title="Terrace", text=SHARED)
    b_only = await add(
        client,
        bot_b,
        type="text",
        title="Sauna",
        text="The sauna in the basement is heated to ninety degrees on weekends.",
    )
    await idle(app)
    assert a_source["id"] != b_source["id"]  # same text, other bot: not deduplicated across bots

    for query in ("When is the rooftop terrace open?", "lemonade", "sauna basement ninety degrees"):
        found = await search(client, bot_a, query, k=50)
        assert {p["source_id"] for p in found["data"]} <= {a_source["id"]}, (query, found)
    assert [p["source_id"] for p in (await search(client, bot_a, "terrace", k=50))["data"]] == [
        a_source["id"]
    ]
    b_found = {p["source_id"] for p in (await search(client, bot_b, "terrace sauna", k=50))["data"]}
    assert b_found == {b_source["id"], b_only["id"]}
    # Slugs work as well as ids.
    by_slug = await client.post(f"/v1/bots/{bot_a['slug']}/search", json={"query": "terrace"})
    assert by_slug.status_code == 200 and top(by_slug.json())["source_id"] == a_source["id"]


async def test_search_keys_reach_only_their_bots(client: httpx.AsyncClient, app: FastAPI) -> None:
    bot_a = await make_bot(client, name="Bot A")
    bot_b = await make_bot(client, name="Bot B")
    a_source = await add(client, bot_a, type="text", title="Terrace", text=SHARED)
    await add(client, bot_b, type="text", title="Terrace", text=SHARED)
    await idle(app)
    body = {"query": "When is the terrace open?"}

    _, foreign_key = await workspaces.create_workspace(app.state.runtime.db, name="Other")
    foreign = await client.post(
        f"/v1/bots/{bot_a['id']}/search", json=body, headers=bearer(foreign_key)
    )
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "bot_not_found"
    assert "terrace" not in foreign.text.lower()
    by_slug = await client.post(
        f"/v1/bots/{bot_a['slug']}/search", json=body, headers=bearer(foreign_key)
    )
    assert by_slug.status_code == 404

    bot_key = (await make_key(client, bot_id=bot_a["id"]))["key"]
    own = await client.post(f"/v1/bots/{bot_a['id']}/search", json=body, headers=bearer(bot_key))
    assert own.status_code == 200, own.text
    assert [p["source_id"] for p in own.json()["data"]] == [a_source["id"]]
    sibling = await client.post(
        f"/v1/bots/{bot_b['id']}/search", json=body, headers=bearer(bot_key)
    )
    assert sibling.status_code == 404

    anonymous = await client.post(
        f"/v1/bots/{bot_a['id']}/search", json=body, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401


async def test_a_matching_qa_pair_ranks_first(client: httpx.AsyncClient, app: FastAPI) -> None:
    bot = await make_bot(client)
    # A long text that touches returns in passing, in a paragraph of its own, with the same words.
    long_text = "\n\n".join(
        [
            (
                "Welcome to Northwind Outfitters. We sell hiking boots, tents, sleeping bags and rain gear "
                "for every season, and our staff test every product on the trails around the valley. "
            )
            * 3,
            (
                "Our flagship store is in the old town, next to the river. Parking is free for customers "
                "and the store hosts map-reading workshops on the first Saturday of each month. "
            )
            * 3,
            (
                "What is your return policy? Customers ask us that a lot at the counter, along with "
                "questions about tent sizes, boot fitting and our loyalty card."
            ),
            "We repair zips, seams and soles in our workshop and recycle worn-out gear we cannot fix. "
            * 3,
        ]
    )
    text = await add(client, bot, type="text", title="About Northwind Outfitters", text=long_text)
    qa = await add(
        client,
        bot,
        type="qa",
        question="What is your return policy?",
        answer="Unused items can be brought back within 30 days with the receipt for a full refund.",
    )
    await idle(app)

    result = await search(client, bot, "What is your return policy?", k=5)
    assert top(result)["source_id"] == qa["id"] and top(result)["source_type"] == "qa", result
    assert top(result)["score"] == 1.0
    assert text["id"] in {p["source_id"] for p in result["data"]}  # the text is found, but second
    paraphrase = await search(client, bot, "Can I return items I bought?", k=5)
    assert top(paraphrase)["source_id"] == qa["id"], paraphrase
    # A question the pair does not answer still goes to the text.
    other = await search(client, bot, "Where is the flagship store?", k=5)
    assert top(other)["source_id"] == text["id"], other


async def test_a_qa_pair_asked_word_for_word_beats_a_text_that_only_repeats_the_question(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client)
    text = await add(
        client,
        bot,
        type="text",
        title="Counter notes",
        text="Customers often ask: what is your return policy? Staff at the counter will "
        "explain it, together with our loyalty card and boot fitting.",
    )
    qa = await add(
        client,
        bot,
        type="qa",
        question="What is your return policy?",
        answer="Unused items can be brought back within 30 days with the receipt for a full refund.",
    )
    await idle(app)
    result = await search(client, bot, "What is your return policy?", k=2)
    ranking = [(p["source_type"], p["score"], p["similarity"]) for p in result["data"]]
    assert {p["source_id"] for p in result["data"]} == {text["id"], qa["id"]}
    # The pair's question is the query itself: it is the answer, the text only echoes the question.
    assert top(result)["source_id"] == qa["id"], f"Q&A pair not lifted above the text: {ranking}"


async def test_relevant_tells_related_from_unrelated_questions(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client)
    empty = await search(client, bot, "When are you open?")
    assert empty == {"relevant": False, "data": []}
    await add(
        client,
        bot,
        type="text",
        title="Opening hours",
        text="The bakery is open Monday to Saturday from seven in the morning until two in the "
        "afternoon. Fresh sourdough bread comes out of the oven at eight.",
    )
    await add(
        client,
        bot,
        type="qa",
        question="Do you bake gluten-free bread?",
        answer="Yes, a gluten-free loaf is baked every Friday.",
    )
    await idle(app)

    related = await search(client, bot, "What time does the bakery open?")
    assert related["relevant"] is True and related["data"]
    assert max(p["similarity"] for p in related["data"]) >= 0.25
    for question in (
        "What is the orbital period of Jupiter's moon Io?",
        "How do I configure a VLAN trunk on a network switch?",
    ):
        unrelated = await search(client, bot, question)
        assert unrelated["relevant"] is False, (question, unrelated)
        assert all(p["similarity"] < 0.25 for p in unrelated["data"]), unrelated
    # Scores are in [0, 1], best first.
    scores = [p["score"] for p in related["data"]]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


async def test_a_reranker_hook_reorders_the_results(client, app) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace as dc_replace

    class ReverseByLength:
        calls = 0

        async def rerank(self, query, passages):  # type: ignore[no-untyped-def]
            ReverseByLength.calls += 1
            return [
                dc_replace(p, score=1.0 / (1 + i))
                for i, p in enumerate(sorted(passages, key=lambda p: len(p.text)))
            ]

    bot = (await client.post("/v1/bots", json={"name": "Rerank"})).json()
    for title, text in (("Long", "Cats sleep a lot. " * 20), ("Short", "Cats purr.")):
        await client.post(
            f"/v1/bots/{bot['id']}/sources", json={"type": "text", "title": title, "text": text}
        )
    await app.state.runtime.ingestion.idle()
    app.state.runtime.knowledge.retriever.reranker = ReverseByLength()
    found = (
        await client.post(f"/v1/bots/{bot['id']}/search", json={"query": "cats", "k": 2})
    ).json()["data"]
    assert ReverseByLength.calls == 1 and [p["title"] for p in found] == ["Short", "Long"]


def _page(title: str, body: str) -> bytes:
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>".encode()


FAQ_PAGE = _page(
    "Frequently Asked Questions",
    """<div class="qandaset"><table>
<tr class="qandadiv"><td colspan="2">1. Installing</td></tr>
<tr class="question"><td>1.1.</td><td>Why does the installer stop with a missing compiler?</td></tr>
<tr class="answer"><td></td><td><p>Install the build-essential package first, then run it again.</p></td></tr>
<tr class="question"><td>1.2.</td><td>The stack traces are not helpful. How can I improve them?</td></tr>
<tr class="answer"><td></td><td><p>Compile your program with -g so that every frame shows its file
and line number, and do not strip the binary.</p></td></tr>
</table></div>""",
)


async def test_documentation_pages_a_faq_answer_and_a_reference_page_by_its_name(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client)
    faq = await upload(client, bot, "faq.html", FAQ_PAGE, "text/html")
    reference = await upload(
        client,
        bot,
        "frobctl.html",
        _page(
            "frobctl",
            "<p>frobctl starts, stops and inspects the frob daemon. Give it a subcommand such as "
            "status or restart.</p>",
        ),
        "text/html",
    )
    for n, topic in enumerate(("Upgrading", "Backups", "Logging")):
        # Pages that mention the command in passing, some of them several times.
        await upload(
            client,
            bot,
            f"guide{n}.html",
            _page(
                topic,
                f"<p>{topic} needs the daemon stopped: run frobctl stop first, and frobctl start "
                f"when {topic.lower()} is done. Keep a copy of the settings file.</p>",
            ),
            "text/html",
        )
    await idle(app)

    found = top(await search(client, bot, "Why are there no line numbers in my stack traces?"))
    assert found["source_id"] == faq["id"]
    # The answer is a passage of its own, under its question.
    assert found["heading"].endswith("How can I improve them?"), found
    assert "Compile your program with -g" in found["text"]
    assert "missing compiler" not in found["text"]
    assert top(await search(client, bot, "frobctl"))["source_id"] == reference["id"]
    assert top(await search(client, bot, "what does frobctl do"))["source_id"] == reference["id"]
