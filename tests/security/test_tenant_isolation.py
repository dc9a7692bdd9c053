"""Tenant isolation: workspace B's keys, on every route of every dialect, against workspace A's ids.

Two workspaces are seeded with one of everything (``tests.security.tenants``). Each probe is sent
with B's owner key and with B's bot-scoped key, once naming A's resource and once naming a random
missing one of the same kind (a bot by id *and* by slug). Three things must hold:

- no id, name or content string of A appears in any response to B (apart from what B itself sent);
- no existence oracle: A's resource gets exactly the answer a missing one gets — the same status,
  the same error code, and the same body once the probed value is blanked out;
- A's data is untouched afterwards (nothing B did reached it, even where a response was silent).

Probes that should work on B's own resources run first with B's own ids (a control: a 404 caused
by a typo in a probe would otherwise pass for isolation).

Public (keyless) widget routes are not keyed by workspace but by the visitor's ``session_id``: they
are probed with B's session against A's conversations and messages. A public bot's own widget
configuration is public by design and not probed. Bot slugs are one namespace for the whole server
(public URLs name bots by slug), so creating a bot with a slug another workspace holds is a
``409 slug_taken``; that is documented in SECURITY.md and asserted below as the one known oracle.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatwell.settings import Settings
from tests.security.tenants import Tenant, client_for, seed_tenant

GENEROUS = "100000/minute"


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(
        api_rate_limits=GENEROUS,
        public_rate_limits=GENEROUS,
        history_rate_limits=GENEROUS,
        public_event_stream_seconds=1,
    )


@dataclass(frozen=True)
class Probe:
    """One request; ``{name}`` placeholders in the path, params and JSON name a resource.

    ``foreign``: the placeholders that name the victim's (A's) resource; the others are filled with
    the prober's (B's) own. ``works``: the statuses the control (everything B's own) gets.
    """

    method: str
    path: str
    foreign: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    works: tuple[int, ...] = (200,)
    destructive: bool = False
    keyless: bool = False

    @property
    def label(self) -> str:
        return f"{self.method} {self.path} {self.foreign}"


def _chat() -> str:
    return "When does the office open?"


# Every route that takes a key (and the session-scoped public ones), with each resource it names.
PROBES: list[Probe] = [
    # -- native: bots, sources, search, chat
    Probe("GET", "/v1/bots/{bot}", ("bot",)),
    Probe("PATCH", "/v1/bots/{bot}", ("bot",), json={"instructions": "hijacked"}),
    Probe(
        "POST",
        "/v1/bots/{bot}/sources",
        ("bot",),
        json={"type": "text", "title": "t", "text": "hijack"},
        works=(202,),
    ),
    Probe("GET", "/v1/bots/{bot}/sources", ("bot",)),
    Probe("GET", "/v1/bots/{bot}/sources/{source}", ("bot", "source")),
    Probe("GET", "/v1/bots/{bot}/sources/{source}", ("source",)),
    Probe("POST", "/v1/bots/{bot}/sources/{source}/sync", ("source",), works=(202,)),
    Probe("POST", "/v1/bots/{bot}/sources/{source}/sync", ("bot", "source"), works=(202,)),
    Probe("POST", "/v1/bots/{bot}/search", ("bot",), json={"query": "When does the office open?"}),
    Probe("POST", "/v1/bots/{bot}/chat", ("bot",), json={"message": _chat(), "stream": False}),
    Probe(
        "POST",
        "/v1/bots/{bot}/chat",
        ("conversation",),
        json={"message": _chat(), "stream": False, "conversation_id": "{conversation}"},
    ),
    Probe(
        "POST",
        "/v1/bots/{bot}/chat",
        ("bot", "conversation"),
        json={"message": _chat(), "stream": False, "conversation_id": "{conversation}"},
    ),
    # -- native: conversations, feedback, handoff
    Probe("GET", "/v1/conversations", ("bot",), params={"bot_id": "{bot}"}),
    Probe("GET", "/v1/conversations/{conversation}", ("conversation",)),
    Probe("GET", "/v1/conversations/{session_conversation}", ("session_conversation",)),
    Probe("POST", "/v1/messages/{message}/feedback", ("message",), json={"rating": "negative"}),
    Probe(
        "POST",
        "/v1/messages/{user_message}/feedback",
        ("user_message",),
        json={"rating": "negative"},
        works=(404,),
    ),  # feedback is for answers: B's own user message is a 404 too
    Probe(
        "POST",
        "/v1/conversations/{session_conversation}/messages",
        ("session_conversation",),
        json={"content": "an agent from elsewhere"},
        works=(201,),
    ),
    Probe("POST", "/v1/conversations/{conversation}/resolve", ("conversation",)),
    Probe("GET", "/v1/conversations/export", ("session",), params={"session_id": "{session}"}),
    Probe("GET", "/v1/conversations/export", ("email",), params={"email": "{email}"}),
    # -- native: keys, leads, webhooks
    Probe("POST", "/v1/keys", ("bot",), json={"label": "stolen", "bot_id": "{bot}"}, works=(201,)),
    Probe("GET", "/v1/bots/{bot}/leads", ("bot",)),
    Probe("GET", "/v1/bots/{bot}/leads.csv", ("bot",)),
    Probe("GET", "/v1/bots/{bot}/webhook-deliveries", ("bot",)),
    Probe("POST", "/v1/bots/{bot}/webhook-secret", ("bot",)),
    # -- OpenAI
    Probe(
        "POST",
        "/v1/chat/completions",
        ("bot",),
        json={"model": "{bot}", "messages": [{"role": "user", "content": _chat()}]},
    ),
    Probe(
        "POST",
        "/v1/chat/completions",
        ("conversation",),
        json={
            "model": "{bot}",
            "conversation_id": "{conversation}",
            "messages": [{"role": "user", "content": _chat()}],
        },
    ),
    # -- ChatIQ
    Probe(
        "POST",
        "/api/chat",
        ("bot",),
        json={"message": _chat(), "bot_slug": "{bot}", "stream": False},
    ),
    Probe(
        "POST",
        "/api/chat",
        ("conversation",),
        json={
            "message": _chat(),
            "bot_slug": "{bot}",
            "stream": False,
            "conversation_id": "{conversation}",
        },
    ),
    # -- chatbots API
    Probe(
        "POST", "/api/v1/chatbots/{bot}/chat", ("bot",), json={"message": _chat(), "stream": False}
    ),
    Probe(
        "POST",
        "/api/v1/chatbots/{bot}/chat",
        ("conversation",),
        json={"message": _chat(), "stream": False, "conversationId": "{conversation}"},
    ),
    # -- developer API
    Probe("POST", "/api/v1/chat", ("bot",), json={"message": _chat(), "bot_id": "{bot}"}),
    Probe(
        "POST",
        "/api/v1/chat",
        ("session",),
        json={"message": _chat(), "bot_id": "{bot}", "session_id": "{session}"},
    ),
    # -- Chatbase
    Probe(
        "POST",
        "/api/v1/chat",
        ("bot",),
        json={"messages": [{"role": "user", "content": _chat()}], "chatbotId": "{bot}"},
    ),
    Probe(
        "POST",
        "/api/v1/chat",
        ("session",),
        json={
            "messages": [{"role": "user", "content": _chat()}],
            "chatbotId": "{bot}",
            "conversationId": "{session}",
        },
    ),
    Probe(
        "POST",
        "/api/v1/update-chatbot-data",
        ("bot",),
        json={"chatbotId": "{bot}", "sourceText": "hijacked text"},
    ),
    Probe(
        "POST",
        "/api/v1/update-chatbot-settings",
        ("bot",),
        json={"chatbotId": "{bot}", "instructions": "hijacked"},
    ),
    Probe("GET", "/api/v1/get-conversations", ("bot",), params={"chatbotId": "{bot}"}),
    Probe("GET", "/api/v1/get-leads", ("bot",), params={"chatbotId": "{bot}"}),
    # -- public widget routes: B's session against A's conversations and messages
    Probe(
        "GET",
        "/v1/public/conversations/{session_conversation}/messages",
        ("session_conversation",),
        params={"session_id": "{session}"},
        keyless=True,
    ),
    Probe(
        "GET",
        "/v1/public/conversations/{conversation}/messages",
        ("conversation",),
        params={"session_id": "{session}"},
        keyless=True,
        works=(404,),
    ),  # keyed: no session reads it
    Probe(
        "GET",
        "/v1/public/conversations/{session_conversation}/events",
        ("session_conversation",),
        params={"session_id": "{session}"},
        keyless=True,
    ),  # the control's stream ends after 1 s
    Probe(
        "GET",
        "/v1/public/conversations/{conversation}/events",
        ("conversation",),
        params={"session_id": "{session}"},
        keyless=True,
        works=(404,),
    ),
    Probe(
        "POST",
        "/v1/public/messages/{message}/feedback",
        ("message",),
        json={"session_id": "{session}", "rating": "negative"},
        keyless=True,
        works=(404,),
    ),
    Probe(
        "POST",
        "/v1/public/conversations/{session_conversation}/handoff",
        ("session_conversation",),
        json={"session_id": "{session}"},
        keyless=True,
    ),
    Probe(
        "POST",
        "/v1/public/chat/stream",
        ("conversation",),
        keyless=True,
        works=(404,),
        json={
            "bot_id": "{bot}",
            "message": _chat(),
            "session_id": "{session}",
            "conversation_id": "{conversation}",
        },
    ),
    Probe(
        "POST",
        "/v1/public/chat/stream",
        ("bot", "conversation"),
        keyless=True,
        works=(404,),
        json={
            "bot_id": "{bot}",
            "message": _chat(),
            "session_id": "{session}",
            "conversation_id": "{conversation}",
        },
    ),
    Probe(
        "POST",
        "/v1/public/chat/stream",
        ("bot", "session_conversation"),
        keyless=True,
        json={
            "bot_id": "{bot}",
            "message": _chat(),
            "session_id": "{session}",
            "conversation_id": "{session_conversation}",
        },
    ),
    Probe(
        "POST",
        "/v1/public/chat/stream",
        ("session_conversation",),
        keyless=True,
        json={
            "bot_id": "{bot}",
            "message": _chat(),
            "session_id": "{session}",
            "conversation_id": "{session_conversation}",
        },
    ),
    Probe(
        "POST",
        "/v1/public/leads",
        ("session_conversation",),
        keyless=True,
        works=(201,),
        json={
            "bot_id": "{bot}",
            "session_id": "{session}",
            "conversation_id": "{session_conversation}",
            "name": "Visitor",
            "email": "v@visitor.example",
        },
    ),
    # -- destructive, last
    Probe("DELETE", "/v1/keys/{key}", ("key",), works=(204,), destructive=True),
    Probe("DELETE", "/v1/keys/{bot_key}", ("bot_key",), works=(204,), destructive=True),
    Probe("DELETE", "/v1/bots/{bot}/sources/{source}", ("source",), works=(204,), destructive=True),
    Probe(
        "DELETE",
        "/v1/bots/{bot}/sources/{source}",
        ("bot", "source"),
        works=(204,),
        destructive=True,
    ),
    Probe(
        "DELETE",
        "/v1/conversations/{conversation}",
        ("conversation",),
        works=(204,),
        destructive=True,
    ),
    Probe(
        "DELETE",
        "/api/v1/delete-chatbot",
        ("bot",),
        params={"chatbotId": "{bot}"},
        destructive=True,
    ),
    Probe("DELETE", "/v1/bots/{bot}", ("bot",), works=(204,), destructive=True),
]

# Routes that name no resource: B's view of them must hold nothing of A.
LISTINGS = [
    "/v1/bots",
    "/v1/keys",
    "/v1/conversations",
    "/v1/handoff/queue",
    "/v1/models",
    "/api/v1/usage",
    "/api/v1/sessions?include_all=true",
    "/api/v1/get-chatbots",
]

UUID_KINDS = {
    "source",
    "conversation",
    "session_conversation",
    "message",
    "user_message",
    "key",
    "bot_key",
}


def values_of(tenant: Tenant, bot_ref: str) -> dict[str, str]:
    return {
        "bot": bot_ref,
        "source": tenant.source_ids[0],
        "conversation": tenant.conversation_id,
        "session_conversation": tenant.session_conversation_id,
        "message": tenant.message_id,
        "user_message": tenant.user_message_id,
        "key": tenant.spare_key_id,
        "bot_key": tenant.bot_key_id,
        "session": tenant.session_id,
        "email": tenant.lead_email,
    }


def missing_values(bot_ref_kind: str) -> dict[str, str]:
    values = {kind: str(uuid.uuid4()) for kind in UUID_KINDS}
    values["bot"] = str(uuid.uuid4()) if bot_ref_kind == "id" else f"missing-{uuid.uuid4().hex[:8]}"
    values["session"] = f"sess-missing{uuid.uuid4().hex[:8]}"
    values["email"] = f"missing{uuid.uuid4().hex[:8]}@visitor.example"
    return values


def fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    return template


@dataclass
class Sent:
    request: str  # everything the prober sent, to tell an echo from a leak
    response: httpx.Response


async def send(client: httpx.AsyncClient, probe: Probe, values: dict[str, str]) -> Sent:
    path, params, body = (
        fill(probe.path, values),
        fill(probe.params, values),
        fill(probe.json, values),
    )
    response = await client.request(probe.method, path, params=params or None, json=body)
    return Sent(json.dumps([path, params, body]), response)


def error_code(response: httpx.Response) -> str | None:
    if response.status_code < 400:
        return None
    body = response.json()
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("code")
    return body.get("code") or error


def leaks(victim: Tenant, sent: Sent) -> list[str]:
    """A's ids and strings in the response that the prober did not send itself."""
    text = sent.response.text
    return [
        needle
        for needle in victim.ids() + victim.texts()
        if needle in text and needle not in sent.request
    ]


def variants(probe: Probe) -> Iterator[str]:
    """A bot is named by id and by slug wherever a probe names one."""
    uses_bot = "{bot}" in json.dumps([probe.path, probe.params, probe.json])
    yield "id"
    if uses_bot:
        yield "slug"


@pytest.fixture
async def tenants(app: FastAPI) -> tuple[Tenant, Tenant]:
    return await seed_tenant(app, "Alpha"), await seed_tenant(app, "Bravo")


async def test_no_route_lets_one_workspace_reach_another(
    app: FastAPI, tenants: tuple[Tenant, Tenant]
) -> None:
    victim, prober = tenants
    problems: list[str] = []
    tried = 0
    async with (
        client_for(app, prober.owner_key) as owner,
        client_for(app, prober.bot_key) as bot_key,
        client_for(app) as anonymous,
    ):
        for path in LISTINGS:
            for client in (owner, bot_key):
                response = await client.get(path)
                tried += 1
                if response.status_code >= 500 or (found := leaks(victim, Sent("", response))):
                    problems.append(
                        f"{path}: {response.status_code} leaks {found if response.status_code < 500 else response.text}"
                    )
        for probe in PROBES:
            clients = (
                [("anonymous", anonymous)]
                if probe.keyless
                else [("owner key", owner), ("bot key", bot_key)]
            )
            for ref_kind in variants(probe):
                for who, client in clients:
                    own = values_of(prober, prober.bot_id if ref_kind == "id" else prober.bot_slug)
                    if who in ("owner key", "anonymous") and not probe.destructive:
                        control = await send(client, probe, own)
                        if control.response.status_code not in probe.works:
                            problems.append(
                                f"control {probe.label} by {ref_kind}: {control.response.status_code} "
                                f"{control.response.text[:200]}"
                            )
                    foreign_values = values_of(
                        victim, victim.bot_id if ref_kind == "id" else victim.bot_slug
                    )
                    missing = missing_values(ref_kind)
                    if (
                        probe.keyless
                    ):  # A's bot is public: only the conversation or message is A's own
                        missing["bot"] = foreign_values["bot"]
                    at_victim = await send(
                        client, probe, {**own, **{k: foreign_values[k] for k in probe.foreign}}
                    )
                    at_missing = await send(
                        client, probe, {**own, **{k: missing[k] for k in probe.foreign}}
                    )
                    tried += 2
                    label = f"{probe.label} by {ref_kind} ({who})"
                    if found := leaks(victim, at_victim):
                        problems.append(
                            f"{label}: the response holds A's {found}: {at_victim.response.text[:300]}"
                        )
                    a, m = at_victim.response, at_missing.response
                    if (a.status_code, error_code(a)) != (m.status_code, error_code(m)):
                        problems.append(
                            f"{label}: A's resource answers {a.status_code} {error_code(a)}, a missing "
                            f"one {m.status_code} {error_code(m)}: {a.text[:200]}"
                        )
                    elif a.status_code >= 400 and _blank(a.text, foreign_values, probe) != _blank(
                        m.text, missing, probe
                    ):
                        problems.append(
                            f"{label}: error bodies differ: {a.text[:200]} / {m.text[:200]}"
                        )
    print(f"tenant isolation: {len(PROBES)} probes, {tried} requests")
    assert tried > 200
    assert not problems, "\n".join(problems)
    await assert_untouched(app, victim)


def _blank(text: str, values: dict[str, str], probe: Probe) -> str:
    for kind in probe.foreign:
        text = text.replace(values[kind], "<probed>")
    return text


async def assert_untouched(app: FastAPI, victim: Tenant) -> None:
    """Whatever B sent, A's bot, sources, keys, conversations and leads are as they were."""
    async with client_for(app, victim.owner_key) as owner:
        bot = (await owner.get(f"/v1/bots/{victim.bot_id}")).json()
        assert bot["instructions"] == f"{victim.marker} instructions", bot
        sources = (await owner.get(f"/v1/bots/{victim.bot_id}/sources")).json()["data"]
        assert {s["id"] for s in sources} == set(victim.source_ids), sources
        assert {s["status"] for s in sources} == {"ready"}
        listed = {k["id"] for k in (await owner.get("/v1/keys")).json()["data"]}
        assert {victim.owner_key_id, victim.spare_key_id, victim.bot_key_id} <= listed
        conversation = (await owner.get(f"/v1/conversations/{victim.conversation_id}")).json()
        assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"], conversation
        assert conversation["messages"][1]["feedback"] == "positive"
        assert conversation["status"] == "open"
        held = (await owner.get(f"/v1/conversations/{victim.session_conversation_id}")).json()
        assert held["status"] == "human" and [m["role"] for m in held["messages"]] == [
            "user",
            "assistant",
            "agent",
        ]
        leads = (await owner.get(f"/v1/bots/{victim.bot_id}/leads")).json()["data"]
        assert [lead["id"] for lead in leads] == [victim.lead_id]
        deliveries = (await owner.get(f"/v1/bots/{victim.bot_id}/webhook-deliveries")).json()[
            "data"
        ]
        assert [d["id"] for d in deliveries] == [victim.delivery_id]
    async with client_for(app, victim.bot_key) as bot_key:
        assert (await bot_key.get(f"/v1/bots/{victim.bot_id}")).status_code == 200


async def test_slugs_are_one_namespace_for_the_server(
    client: httpx.AsyncClient, app: FastAPI, tenants: tuple[Tenant, Tenant]
) -> None:
    """The one documented oracle: a slug another workspace holds is taken (public URLs use slugs)."""
    victim, prober = tenants
    async with client_for(app, prober.owner_key) as owner:
        taken = await owner.post("/v1/bots", json={"name": "Copy", "slug": victim.bot_slug})
        assert taken.status_code == 409 and taken.json()["error"]["code"] == "slug_taken"
        assert not leaks(victim, Sent(victim.bot_slug, taken))
        free = await owner.post(
            "/v1/bots", json={"name": "Copy", "slug": f"free-{uuid.uuid4().hex[:8]}"}
        )
        assert free.status_code == 201


async def test_a_visitor_cannot_continue_a_keyed_conversation(
    app: FastAPI, tenants: tuple[Tenant, Tenant]
) -> None:
    """Regression: public chat on a public bot took any conversation id of that bot that had no
    session (one opened with a key), appending the visitor's turn to it and answering with its
    history. A session now continues only its own conversations; anything else is not found."""
    victim, _ = tenants
    async with client_for(app) as visitor:
        response = await visitor.post(
            "/v1/public/chat/stream",
            json={
                "bot_id": victim.bot_id,
                "message": "What did we talk about?",
                "session_id": "sess-intruder",
                "conversation_id": victim.conversation_id,
            },
        )
        assert (
            response.status_code == 404 and response.json()["error"] == "conversation_not_found"
        ), response.text
        own = await visitor.post(
            "/v1/public/chat/stream",
            json={
                "bot_id": victim.bot_id,
                "message": "And now?",
                "session_id": victim.session_id,
                "conversation_id": victim.session_conversation_id,
            },
        )
        assert own.status_code == 200 and "conversation_not_found" not in own.text
    async with client_for(app, victim.owner_key) as owner:
        keyed = (await owner.get(f"/v1/conversations/{victim.conversation_id}")).json()
    assert [m["role"] for m in keyed["messages"]] == ["user", "assistant"]
