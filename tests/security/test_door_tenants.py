"""Tenant isolation on the Dify and Flowise doors: workspace B's keys against workspace A's app
conversations, answers and bots get exactly what a missing one gets, see none of A's data, and
change nothing of A's (the matrix of test_tenant_isolation, for the two later doors)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from tests.security.tenants import Tenant, client_for, seed_tenant


def _same(a: httpx.Response, m: httpx.Response, *blanks: tuple[str, str]) -> bool:
    text_a, text_m = a.text, m.text
    for victim_value, missing_value in blanks:
        text_a, text_m = (
            text_a.replace(victim_value, "<probed>"),
            text_m.replace(missing_value, "<probed>"),
        )
    return a.status_code == m.status_code and text_a == text_m


def _clean(victim: Tenant, response: httpx.Response, sent: str) -> list[str]:
    return [s for s in (*victim.ids(), *victim.texts()) if s in response.text and s not in sent]


async def test_dify_door_keeps_workspaces_apart(app: FastAPI) -> None:
    victim, prober = await seed_tenant(app, "Alpha"), await seed_tenant(app, "Bravo")
    async with client_for(app, victim.bot_key) as alpha:
        reply = (
            await alpha.post(
                "/dify/v1/chat-messages",
                json={"inputs": {}, "query": "When does the office open?", "user": "u1"},
            )
        ).json()
    cid, mid = reply["conversation_id"], reply["message_id"]
    missing_c, missing_m = str(uuid.uuid4()), str(uuid.uuid4())
    problems: list[str] = []
    async with client_for(app, prober.bot_key) as bravo, client_for(app, prober.owner_key) as owner:
        assert (await bravo.get("/dify/v1/conversations", params={"user": "u1"})).json()[
            "data"
        ] == []
        owner_answer = await owner.get("/dify/v1/conversations", params={"user": "u1"})
        assert owner_answer.status_code == 403 and owner_answer.json()["code"] == "forbidden"
        probes: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = [
            ("GET", "/dify/v1/messages", {"user": "u1", "conversation_id": "{c}"}, None),
            (
                "POST",
                "/dify/v1/chat-messages",
                None,
                {"inputs": {}, "query": "hi", "user": "u1", "conversation_id": "{c}"},
            ),
            ("POST", "/dify/v1/messages/{m}/feedbacks", None, {"rating": "dislike", "user": "u1"}),
            ("GET", "/dify/v1/messages/{m}/suggested", {"user": "u1"}, None),
            ("POST", "/dify/v1/conversations/{c}/name", None, {"name": "mine", "user": "u1"}),
            ("GET", "/dify/v1/conversations", {"user": "u1", "last_id": "{c}"}, None),
            ("DELETE", "/dify/v1/conversations/{c}", None, {"user": "u1"}),
        ]
        for method, path, params, body in probes:

            def fill(value: Any, c: str, m: str) -> Any:
                if isinstance(value, str):
                    return value.replace("{c}", c).replace("{m}", m)
                if isinstance(value, dict):
                    return {k: fill(v, c, m) for k, v in value.items()}
                return value

            for client in (bravo, owner):
                at_victim = await client.request(
                    method,
                    fill(path, cid, mid),
                    params=fill(params, cid, mid),
                    json=fill(body, cid, mid),
                )
                at_missing = await client.request(
                    method,
                    fill(path, missing_c, missing_m),
                    params=fill(params, missing_c, missing_m),
                    json=fill(body, missing_c, missing_m),
                )
                if at_victim.status_code < 400 or not _same(
                    at_victim, at_missing, (cid, missing_c), (mid, missing_m)
                ):
                    problems.append(
                        f"{method} {path}: {at_victim.status_code} {at_victim.text[:200]} / "
                        f"{at_missing.status_code} {at_missing.text[:200]}"
                    )
                if found := _clean(victim, at_victim, f"{cid} {mid}"):
                    problems.append(f"{method} {path} leaks {found}")
    assert not problems, "\n".join(problems)
    async with client_for(app, victim.bot_key) as alpha:  # A's conversation is as it was
        history = (
            await alpha.get("/dify/v1/messages", params={"user": "u1", "conversation_id": cid})
        ).json()
        assert [m["id"] for m in history["data"]] == [mid] and history["data"][0][
            "feedback"
        ] is None
        listed = (await alpha.get("/dify/v1/conversations", params={"user": "u1"})).json()["data"]
        assert [c["id"] for c in listed] == [cid] and listed[0][
            "name"
        ] == "When does the office open?"


async def test_flowise_door_keeps_workspaces_apart(app: FastAPI) -> None:
    victim, prober = await seed_tenant(app, "Alpha"), await seed_tenant(app, "Bravo")
    async with client_for(app, victim.bot_key) as alpha:
        reply = (
            await alpha.post(
                f"/api/v1/prediction/{victim.bot_id}",
                json={"question": "When does the office open?", "chatId": "chat-a"},
            )
        ).json()
    problems: list[str] = []
    async with client_for(app, prober.bot_key) as bravo, client_for(app, prober.owner_key) as owner:
        for client in (bravo, owner):
            for ref, missing in (
                (victim.bot_id, str(uuid.uuid4())),
                (victim.bot_slug, f"missing-{uuid.uuid4().hex[:8]}"),
            ):
                for method, path, body in (
                    ("POST", "/api/v1/prediction/{b}", {"question": "hi", "chatId": "chat-a"}),
                    ("GET", "/api/v1/chatmessage/{b}?chatId=chat-a", None),
                    ("GET", "/api/v1/leads/{b}", None),
                    (
                        "POST",
                        "/api/v1/feedback/{b}",
                        {
                            "chatId": "chat-a",
                            "messageId": reply["chatMessageId"],
                            "rating": "THUMBS_DOWN",
                        },
                    ),
                    ("PUT", "/api/v1/chatmessage/abort/{b}/chat-a", None),
                    (
                        "POST",
                        "/api/v1/leads/",
                        {"chatflowid": "{b}", "chatId": "chat-a", "email": "b@b.example"},
                    ),
                ):

                    def fill(value: Any, b: str) -> Any:
                        if isinstance(value, str):
                            return value.replace("{b}", b)
                        if isinstance(value, dict):
                            return {k: fill(v, b) for k, v in value.items()}
                        return value

                    at_victim = await client.request(method, fill(path, ref), json=fill(body, ref))
                    at_missing = await client.request(
                        method, fill(path, missing), json=fill(body, missing)
                    )
                    if at_victim.status_code < 400 or not _same(
                        at_victim, at_missing, (ref, missing)
                    ):
                        problems.append(
                            f"{method} {path} by {ref}: {at_victim.status_code} {at_victim.text[:200]} "
                            f"/ {at_missing.status_code} {at_missing.text[:200]}"
                        )
                    if found := _clean(victim, at_victim, ref + reply["chatMessageId"]):
                        problems.append(f"{method} {path} leaks {found}")
        # B's key names B's own bot with A's chat id: a conversation of B's namespace, never A's
        own = await bravo.post(
            f"/api/v1/prediction/{prober.bot_id}", json={"question": "hi", "chatId": "chat-a"}
        )
        assert own.status_code == 200
        history = (
            await owner.get(f"/api/v1/chatmessage/{prober.bot_id}", params={"chatId": "chat-a"})
        ).json()
        assert all(victim.marker not in m["content"] for m in history)
    assert not problems, "\n".join(problems)
    async with client_for(app, victim.owner_key) as alpha:
        history = (
            await alpha.get(f"/api/v1/chatmessage/{victim.bot_id}", params={"chatId": "chat-a"})
        ).json()
        assert [m["role"] for m in history] == ["userMessage", "apiMessage"] and history[1][
            "feedback"
        ] is None
