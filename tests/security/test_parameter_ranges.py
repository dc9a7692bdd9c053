"""Out-of-range dates and numbers get a 400 in the door's own shape on every route, never a 500.

Issue 19 item 12: ``GET /api/v1/usage?end_date=9999-12-31`` overflowed ``datetime`` (the end day
plus the day it includes) and answered 500. The fuzz test below finds every date and number query
parameter of ``/openapi.json`` by itself (a route added later is covered without a change here),
sends hypothesis-generated extreme values with a valid workspace key and a real bot, and requires
400 for the values no route can accept; the dashboard's hand-parsed filters and numbers (not in
the OpenAPI document) are driven the same way through a signed-in session.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import ADMIN_KEY
from tests.dashboard.conftest import csrf_of, sign_up

DATE_NAMES = re.compile(r"date|^(from|to|since|until|before)$", re.IGNORECASE)
# Values no date parameter can accept: impossible days, years past datetime's edges or ours.
BAD_DATES = [
    "9999-12-31",
    "0001-01-01",
    "10000-01-01",
    "2024-02-30",
    "2024-13-01",
    "99999-01-01",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59Z",
    "2024-01-01T25:00:00",
    "²⁰²⁴-01-01",
    "١٢٣٤-01-01",
    "1e309",
    "nan",
    "-1",
]
BAD_NUMBERS = [
    "99999999999999999999999999999",
    "-99999999999999999999",
    "1e309",
    "inf",
    "nan",
    "-1",
    "0",
    "²",
    "١٢",
    "1.5",
    "9" * 5000,
]
extreme_days = (
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
    .filter(lambda d: d.year < 1900 or d.year >= 9000)
    .map(date.isoformat)
)
extreme_instants = st.builds(
    lambda d, hours: (
        datetime.combine(d, datetime.min.time())
        .replace(tzinfo=timezone(timedelta(hours=hours)))
        .isoformat()
    ),
    st.sampled_from([date(1, 1, 1), date(1899, 12, 31), date(9000, 1, 1), date(9999, 12, 31)]),
    st.integers(-23, 23),
)
huge_numbers = st.one_of(st.integers(min_value=10**9), st.integers(max_value=0)).map(str)


Operation = tuple[str, str, str, str]  # method, path, parameter, kind


async def _world(
    app: FastAPI, client: httpx.AsyncClient
) -> tuple[list[Operation], str, dict[tuple[str, str], dict[str, str]]]:
    """Every (method, path, parameter, kind) of the document, and a real bot's id. Each operation is
    sent with the first key its door accepts (a workspace key, or a key of the bot for doors whose
    keys are bot-scoped), so the values reach the parameter's parsing."""
    bot = (
        await client.post("/v1/bots", json={"name": "Ranges", "slug": "ranges", "public": True})
    ).json()
    bot_key = (await client.post("/v1/keys", json={"label": "ranges", "bot_id": bot["id"]})).json()[
        "key"
    ]
    keyed: dict[tuple[str, str], dict[str, str]] = {}
    found = []
    for path, operations in (await client.get("/openapi.json")).json()["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                schema = param.get("schema", {})
                types = str([schema.get("type"), *(s.get("type") for s in schema.get("anyOf", []))])
                if param["in"] != "query":
                    continue
                if "integer" in types or "number" in types:
                    found.append((method, path, param["name"], "number"))
                elif DATE_NAMES.search(param["name"]):
                    found.append((method, path, param["name"], "date"))
    for method, path, name, kind in found:
        for key in (ADMIN_KEY, bot_key):
            probe = await client.request(
                method.upper(),
                _url(path, bot["id"]),
                headers={"Authorization": f"Bearer {key}"},
                params={
                    **_required(path, bot["id"]),
                    name: "2024-01-01" if kind == "date" else "1",
                },
            )
            if probe.status_code not in (401, 403):
                keyed[(method, path)] = {"Authorization": f"Bearer {key}"}
                break
    return found, bot["id"], keyed


def _url(path: str, bot_id: str) -> str:
    return re.sub(
        r"\{[^}]+\}",
        lambda m: bot_id if "bot" in m.group(0) else "00000000-0000-0000-0000-000000000000",
        path,
    )


def _required(path: str, bot_id: str) -> dict[str, str]:
    return {"chatbotId": bot_id} if path.startswith("/api/v1/get-") else {}


def _is_door_error(response: httpx.Response) -> bool:
    body = response.json()
    return isinstance(body, dict) and "Traceback" not in response.text and "detail" not in body


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("end_date", ["9999-12-31", "0001-01-01"])
async def test_usage_with_an_end_date_at_the_edge_of_the_calendar_is_a_400(
    client: httpx.AsyncClient, backend: str, end_date: str
) -> None:
    response = await client.get("/api/v1/usage", params={"end_date": end_date})
    assert response.status_code == 400, response.text  # was 500 OverflowError
    assert response.json() == {
        "success": False,
        "code": "invalid_date",
        "error": response.json()["error"],
    }


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_every_date_and_number_parameter_refuses_extreme_values_with_a_400(
    app: FastAPI, client: httpx.AsyncClient, backend: str
) -> None:
    found, bot_id, keyed = await _world(app, client)

    def _key(method: str, path: str) -> dict[str, str]:
        return keyed.get((method, path), {})

    kinds = {kind for *_, kind in found}
    assert kinds == {"date", "number"} and len(found) >= 15, found  # the document still has them
    loop = asyncio.get_running_loop()

    def send(method: str, path: str, name: str, value: str) -> httpx.Response:
        params = {**_required(path, bot_id), name: value}
        return asyncio.run_coroutine_threadsafe(
            client.request(
                method.upper(), _url(path, bot_id), params=params, headers=_key(method, path)
            ),
            loop,
        ).result(30)

    @hsettings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(target=st.sampled_from(found), data=st.data())
    def check(target: tuple[str, str, str, str], data: st.DataObject) -> None:
        method, path, name, kind = target
        if kind == "date":
            value = data.draw(st.one_of(st.sampled_from(BAD_DATES), extreme_days, extreme_instants))
        else:
            value = data.draw(st.one_of(st.sampled_from(BAD_NUMBERS), huge_numbers))
        response = send(method, path, name, value)
        assert response.status_code == 400, (
            method,
            path,
            name,
            value,
            response.status_code,
            response.text[:300],
        )
        assert _is_door_error(response), response.text[:300]

    await asyncio.to_thread(check)
    for method, path, name, kind in found:  # every parameter met every fixed bad value once
        for value in BAD_DATES if kind == "date" else BAD_NUMBERS:
            response = await client.request(
                method.upper(),
                _url(path, bot_id),
                headers=_key(method, path),
                params={**_required(path, bot_id), name: value},
            )
            assert response.status_code == 400, (path, name, value, response.text[:300])


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_dashboard_dates_and_numbers_out_of_range_are_a_400_page(app: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as web:
        csrf = await sign_up(web)
        api = {"Authorization": "Bearer test-admin-key-0123456789"}
        bot = (
            await web.post("/v1/bots", json={"name": "Form", "slug": "form"}, headers=api)
        ).json()
        for value in BAD_DATES:
            for page in ("/dashboard/conversations", "/dashboard/leads"):
                for name in ("from", "to"):
                    response = await web.get(page, params={name: value})
                    assert response.status_code == 400, (page, name, value, response.status_code)
        settings_page = await web.get(f"/dashboard/bots/{bot['id']}/settings")
        assert settings_page.status_code == 200, settings_page.text[:300]
        for value in BAD_NUMBERS:
            response = await web.post(
                f"/dashboard/bots/{bot['id']}/settings",
                data={
                    "csrf_token": csrf_of(settings_page.text),
                    "name": "Form",
                    "per_minute": value,
                },
            )
            assert response.status_code == 400, (value, response.status_code, response.text[:200])
        assert csrf
