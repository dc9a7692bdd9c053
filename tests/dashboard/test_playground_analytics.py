"""Dashboard Playground (streamed, private, with passages and scores) and Analytics (the numbers
from seeded data; SVG charts with escaped labels)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI

from chatwell.services import analytics
from chatwell.storage.tables import Bot, Conversation, Message, UsageEvent, utcnow
from tests.dashboard.conftest import csrf_of, sign_up
from tests.dashboard.test_pages import AGENT, _create_bot, _user_in, _wait_ready
from tests.helpers import count_rows


def sse_events(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


async def _ready_bot(browser: httpx.AsyncClient, token: str) -> str:
    bot_id = await _create_bot(browser, token)
    await browser.post(
        f"/dashboard/bots/{bot_id}/sources",
        data={
            "kind": "text",
            "title": "Opening hours",
            "text": "Opening hours: the shop is open Monday through Friday, 9 AM to 5 PM. Closed on weekends.",
            "csrf_token": token,
        },
    )
    await _wait_ready(browser, bot_id)
    return bot_id


async def test_playground_streams_a_private_cited_answer_with_passages(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_id = await _ready_bot(browser, token)
    page = await browser.get(f"/dashboard/bots/{bot_id}/playground")
    assert (
        page.status_code == 200 and 'id="playground"' in page.text and "<script>" not in page.text
    )
    assert f'data-csrf="{token}"' in page.text and "Playground" in page.text
    before = await count_rows(app, Message)
    # The passages shown are the ones the answer's own search found: one search per question.
    retriever = app.state.runtime.knowledge.retriever
    searches: list[str] = []
    search = retriever.search

    async def counted(**kwargs: Any) -> Any:
        searches.append(kwargs["query"])
        return await search(**kwargs)

    retriever.search = counted
    try:
        response = await browser.post(
            f"/dashboard/bots/{bot_id}/playground/chat",
            data={"question": "When is the shop open?", "temperature": "0.2"},
            headers={"X-CSRF-Token": token},
        )
    finally:
        del retriever.search
    assert searches == ["When is the shop open?"]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "passages" and names[-2:] == ["done", "rendered"]
    assert "delta" in names and "error" not in names
    passages = events[0][1]["passages"]
    assert passages and passages[0]["title"] == "Opening hours" and 0 < passages[0]["score"] <= 1
    answer = "".join(d["text"] for n, d in events if n == "delta")
    assert "Monday" in answer
    citations = next(d["citations"] for n, d in events if n == "citations")
    assert citations and citations[0]["title"] == "Opening hours"
    rendered = events[-1][1]
    assert rendered["text"] == answer and rendered["html"].startswith("<p>")
    # A follow-up carries the page's earlier turns; a malformed history is refused.
    follow_up = await browser.post(
        f"/dashboard/bots/{bot_id}/playground/chat",
        data={
            "question": "And on Saturday?",
            "history": json.dumps(
                [
                    {"role": "user", "content": "When is the shop open?"},
                    {"role": "assistant", "content": answer},
                ]
            ),
        },
        headers={"X-CSRF-Token": token},
    )
    assert follow_up.status_code == 200 and "event: rendered" in follow_up.text
    for bad in ("[", '[{"role": "system", "content": "x"}]', '{"role": "user"}', "[1]"):
        refused = await browser.post(
            f"/dashboard/bots/{bot_id}/playground/chat",
            data={"question": "hi", "history": bad},
            headers={"X-CSRF-Token": token},
        )
        assert refused.status_code == 400 and "invalid_history" in refused.text, bad
    # Private: no conversation or message is stored, only a content-free usage row.
    assert await count_rows(app, Message) == before
    assert await count_rows(app, Conversation) == 0
    async with app.state.runtime.db.read() as session:
        from sqlalchemy import select

        channels = (await session.execute(select(UsageEvent.channel))).scalars().all()
    assert "playground" in channels


async def test_playground_refuses_without_csrf_bad_input_and_agents(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    url = f"/dashboard/bots/{bot_id}/playground/chat"
    assert (await browser.post(url, data={"question": "hi"})).status_code == 403
    assert (
        await browser.post(url, data={"question": "  "}, headers={"X-CSRF-Token": token})
    ).status_code == 400
    assert (
        await browser.post(
            url, data={"question": "hi", "temperature": "9"}, headers={"X-CSRF-Token": token}
        )
    ).status_code == 400
    assert (
        await browser.post(
            url, data={"question": "hi", "temperature": "nan"}, headers={"X-CSRF-Token": token}
        )
    ).status_code == 400
    assert (
        await browser.post(
            f"/dashboard/bots/{uuid.uuid4()}/playground/chat",
            data={"question": "hi"},
            headers={"X-CSRF-Token": token},
        )
    ).status_code == 404
    async with app.state.runtime.db.read() as session:
        from sqlalchemy import select

        workspace_id = (await session.execute(select(Bot.workspace_id))).scalar_one()
    await _user_in(app, workspace_id, AGENT["email"], AGENT["password"], "agent")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as agent:
        from tests.dashboard.conftest import sign_in

        assert (await sign_in(agent, AGENT["email"], AGENT["password"])).status_code == 303
        agent_token = csrf_of((await agent.get("/dashboard")).text)
        assert (await agent.get(f"/dashboard/bots/{bot_id}/playground")).status_code == 403
        assert (
            await agent.post(url, data={"question": "hi"}, headers={"X-CSRF-Token": agent_token})
        ).status_code == 403
        assert (await agent.get("/dashboard/analytics")).status_code == 403
        assert 'href="/dashboard/analytics"' not in (await agent.get("/dashboard")).text


async def _seed(app: FastAPI, bot_id: str) -> None:
    now = utcnow().replace(
        hour=12, minute=0, second=0, microsecond=0
    )  # midday: offsets stay on their day
    async with app.state.runtime.db.write() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
        bot.answer_settings = {
            **(bot.answer_settings or {}),
            "not_found_message": "Sorry, no idea.",
        }
        other = Bot(workspace_id=bot.workspace_id, name="Other <b>bot</b>", slug="other")
        session.add(other)
        await session.flush()

        def talk(when, pairs, bot=bot):
            conv = Conversation(
                workspace_id=bot.workspace_id, bot_id=bot.id, channel="widget", created_at=when
            )
            session.add(conv)
            return conv, [(q, a, fb) for q, a, fb in pairs]

        plan = [
            (
                now - timedelta(days=2),
                bot,
                [
                    ("When are you open?", "Monday to Friday.", "positive"),
                    ("Do you sell <script>fish</script>?", "Sorry, no idea.", "negative"),
                ],
            ),
            (
                now - timedelta(days=2, minutes=-5),
                bot,
                [("when are you open", "Monday to Friday.", "positive")],
            ),
            (
                now - timedelta(days=1),
                bot,
                [("Do you sell <script>fish</script>?", "Sorry, no idea.", None)],
            ),
            (
                now,
                other,
                [("Other question?", "Sorry, no idea.", None)],
            ),  # not this bot's not-found message
            (
                now - timedelta(days=40),
                bot,
                [("Too old?", "Sorry, no idea.", None)],
            ),  # outside the window
        ]
        for when, owner, pairs in plan:
            conv, rows = talk(when, pairs, owner)
            await session.flush()
            for i, (q, a, fb) in enumerate(rows):
                session.add(
                    Message(
                        conversation_id=conv.id,
                        role="user",
                        content=q,
                        created_at=when + timedelta(seconds=2 * i),
                    )
                )
                session.add(
                    Message(
                        conversation_id=conv.id,
                        role="assistant",
                        content=a,
                        feedback=fb,
                        created_at=when + timedelta(seconds=2 * i + 1),
                    )
                )
        for model, p, c, cost, owner in [
            ("gpt-small", 100, 20, "0.001", bot),
            ("gpt-small", 50, 10, "0.0005", bot),
            ("big<model>", 1000, 200, "0.5", other),
        ]:
            session.add(
                UsageEvent(
                    workspace_id=bot.workspace_id,
                    bot_id=owner.id,
                    channel="widget",
                    model=model,
                    prompt_tokens=p,
                    completion_tokens=c,
                    cost=Decimal(cost),
                )
            )


async def test_analytics_numbers_from_seeded_data(app: FastAPI, browser: httpx.AsyncClient) -> None:
    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    await _seed(app, bot_id)
    async with app.state.runtime.db.read() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
        workspace_id = bot.workspace_id
    one = await analytics.report(
        app.state.runtime.db, workspace_id=workspace_id, bot_id=uuid.UUID(bot_id)
    )
    assert len(one.days) == 30 and one.conversations == 3 and one.messages == 8
    assert one.conversations_per_day[-3] == 2 and one.conversations_per_day[-2] == 1
    assert one.messages_per_day[-3] == 6 and one.messages_per_day[-2] == 2
    assert one.unanswered == [("Do you sell <script>fish</script>?", 2)]
    # Case and punctuation are folded; ties are listed alphabetically.
    assert one.top_questions == [
        ("Do you sell <script>fish</script>?", 2),
        ("When are you open?", 2),
    ]
    assert (one.positive, one.negative) == (2, 1) and abs(one.feedback_ratio - 2 / 3) < 1e-9
    assert [
        (u.model, u.requests, u.prompt_tokens, u.completion_tokens, u.cost) for u in one.usage
    ] == [("gpt-small", 2, 150, 30, Decimal("0.0015"))]
    everything = await analytics.report(app.state.runtime.db, workspace_id=workspace_id)
    assert everything.conversations == 4 and everything.messages == 10
    assert [u.model for u in everything.usage] == ["big<model>", "gpt-small"]
    assert everything.unanswered == [("Do you sell <script>fish</script>?", 2)]

    page = await browser.get(f"/dashboard/analytics?bot_id={bot_id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert re.search(r'id="stat-messages">8<', html) and re.search(
        r'id="stat-conversations"><a href="/dashboard/conversations\?[^"]*">3<', html
    )
    assert re.search(r'id="stat-unanswered">2<', html) and re.search(
        r'id="stat-feedback">67%<', html
    )
    assert "<script>fish" not in html and "&lt;script&gt;fish&lt;/script&gt;" in html
    assert html.count('<svg class="chart"') == 3 and html.count("<rect ") >= 60
    assert 'data-value="6"' in html and "0.0015" in html
    all_page = (await browser.get("/dashboard/analytics")).text
    assert "big&lt;model&gt;" in all_page and "Other &lt;b&gt;bot&lt;/b&gt;" in all_page
    assert 'href="/dashboard/analytics"' in (await browser.get("/dashboard")).text
    assert (await browser.get(f"/dashboard/analytics?bot_id={uuid.uuid4()}")).status_code == 404


async def test_analytics_chart_escapes_labels() -> None:
    from datetime import date

    from chatwell.api.dashboard.analytics import bar_chart

    svg = str(bar_chart([date(2026, 1, 1)], [3], label="<script>x</script>", color='"><x'))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and '"><x' not in svg
