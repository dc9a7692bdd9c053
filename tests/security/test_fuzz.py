"""API fuzzing with schemathesis: every operation of the app's own ``/openapi.json``, every dialect.

Each operation gets generated inputs that its schema calls valid (``positive``) and inputs that it
calls invalid (``negative``), with a valid workspace key (the admin key of ``tests/conftest.py``)
and with an invalid one. Whatever arrives, the server must answer without a 5xx
(``not_a_server_error``), and a documented response must match its documented schema and content
type (``response_schema_conformance``, ``content_type_conformance``). Bounded for CI: a few
examples per operation, derandomized (the same inputs every run), no example database, no
shrinking (every failure is collected with a curl line that reproduces it, instead of the first
one being minimised).

To reach past the 404 that a random id gets, half of the examples name the seeded tenant's real
bot (by id or by slug), source, conversation, message, session and spare key wherever a path,
query or body field names one (never the admin key itself). Streaming replies are read by
schemathesis to their end (or its event cap); their bodies have no schema to check (an
event-stream or plain-text 200 is documented without one), so only their status and content type
are checked.

Nothing leaves the machine: any generated field named ``*url`` (URL sources, webhooks, avatars)
is pointed at a loopback discard address before it is sent, which the crawler and the webhook
sender refuse without connecting (private addresses are off).

Every operation is fuzzed; none is excluded. Operations whose inputs have no invalid form (no
parameters, or only free strings) cannot be negated: that is recorded, not failed.

What it found (fixed; ``test_the_openapi_documents_each_doors_real_errors`` guards it): no 5xx on
either engine, but the document was wrong about errors. Every operation documented FastAPI's
``422 HTTPValidationError``, which the server never sends (validation errors are 400s in the door's
own shape), and none documented the 400, 401, 403, 404, 409, 413, 429 and 503 it does send. The
document now lists them with each door's error schema (native, OpenAI, ChatIQ, ChatbotIQ, chatbots
API, developer API, Chatbase, and either of the last two on the shared ``/api/v1/chat``), and the
fuzzer checks every error body against it (``status_code_conformance`` and
``response_schema_conformance`` now cover errors too).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app
from tests.security.tenants import Tenant, seed_tenant
from tests.services import WORKER, copy_database

pytestmark = pytest.mark.slow

GENEROUS = "100000/minute"
INVALID_KEY = "cw_not-a-key-of-this-server-0000000000000"
LOOPBACK_URL = "http://127.0.0.1:9/fuzz"  # refused unsent: private addresses are off
# Examples per operation: (positive, negative).
VALID_EXAMPLES = (15, 10)
INVALID_EXAMPLES = (6, 4)

# Operations by the door they belong to (tags of the OpenAPI); one test per group and key.
GROUPS = {
    "native-admin": {"system", "bots", "sources", "search", "keys", "leads", "widget"},
    "native-chat": {"chat", "handoff", "openai"},
    "widget-api": {"chatbotiq"},
    "platforms": {"chatiq", "chatbots_v1", "devapi", "chatbase"},
    "builders": {"dify", "flowise"},
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
BOT_FIELDS = {"bot_id", "bot_slug", "chatbot_id", "chatbotId", "chatId"}


@dataclass
class World:
    schema: Any
    tenant: Tenant
    operations: list[Any]


@dataclass
class Findings:
    failures: list[str] = field(default_factory=list)
    not_negatable: list[str] = field(default_factory=list)
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@pytest.fixture
def fuzz_settings(make_settings: Callable[..., Settings]) -> Settings:
    # Limits high enough that the fuzzer reaches the code behind them (429s are tested elsewhere);
    # a visitor's event stream (read to its end) lives a moment instead of ten minutes.
    return make_settings(
        api_rate_limits=GENEROUS,
        public_rate_limits=GENEROUS,
        history_rate_limits=GENEROUS,
        auth_failure_rate_limits="",
        public_event_stream_seconds=0.2,
    )


# A seeded database and data directory per backend in this process, and the tenant in them.
_seeds: dict[str, tuple[str, Path, Tenant]] = {}


def _seeded(
    fuzz_settings: Settings, request: pytest.FixtureRequest, where: Path
) -> tuple[str, Path, Tenant]:
    """Seed a copy of this test's fresh database once; later tests copy the seeded one."""
    if fuzz_settings.database_url.startswith("postgresql"):
        server = request.getfixturevalue("postgres_server")
        url = server.url(f"fuzz_seed_{WORKER}".lower())
    else:
        url = f"sqlite+aiosqlite:///{where / 'chatwell.db'}"
    copy_database(fuzz_settings.database_url, url, request)
    settings = fuzz_settings.model_copy(update={"database_url": url, "data_dir": where / "data"})

    async def seed() -> Tenant:
        seeding = build_app(settings, announce=lambda _: None)
        async with seeding.router.lifespan_context(seeding):
            return await seed_tenant(seeding, "Fuzz", owner_key=ADMIN_KEY)

    return url, settings.data_dir, asyncio.run(seed())


@pytest.fixture
def world(
    fuzz_settings: Settings,
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """A database seeded with one of everything in the admin key's workspace (a copy of one
    seeded once per backend and worker), and a fresh app on it that schemathesis drives over
    ASGI (it runs the app's lifespan in its own event loop)."""
    if backend not in _seeds:
        _seeds[backend] = _seeded(fuzz_settings, request, tmp_path_factory.mktemp("fuzz-seed"))
    seed_url, seed_data, tenant = _seeds[backend]
    assert fuzz_settings.database_url is not None
    copy_database(seed_url, fuzz_settings.database_url, request)
    shutil.copytree(seed_data, fuzz_settings.data_dir, dirs_exist_ok=True)
    app = build_app(fuzz_settings, announce=lambda _: None)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        yield World(schema, tenant, operations)
    finally:
        schemathesis_asgi.shutdown_lifespans()


def group_of(operation: Any) -> str:
    """The operation's group; a door added later (a tag no group names) is fuzzed in "other"."""
    tags = set(operation.definition.raw.get("tags") or ())
    return next((name for name, members in GROUPS.items() if tags & members), "other")


def destructive(operation: Any) -> bool:
    return operation.method.upper() == "DELETE"


def ordered(operations: list[Any]) -> list[Any]:
    """Deleting operations last, so they do not take the seeded resources from the others."""
    return sorted(operations, key=destructive)


def _replacements(tenant: Tenant, public: bool, by_slug: bool) -> dict[str, str]:
    return {
        "bot": tenant.bot_slug if by_slug else tenant.bot_id,
        "source_id": tenant.source_ids[0],
        # The public door reads a visitor's own conversation; the keyed doors any of the workspace.
        "conversation": tenant.session_conversation_id if public else tenant.conversation_id,
        "message_id": tenant.message_id,
        "after": tenant.agent_message_id,
        "key_id": tenant.spare_key_id,  # never the admin key: revoking it would end the run
        "session_id": tenant.session_id,
    }


def _substitute(values: dict[str, Any], known: dict[str, str], key: str | None) -> None:
    for name in list(values):
        if name in BOT_FIELDS or (name == "model" and isinstance(values[name], str)):
            values[name] = known["bot"]
        elif name in ("conversation_id", "conversationId"):
            values[name] = known["conversation"]
        elif name in known:
            values[name] = known[name]
        elif name == "api_key" and key is not None:
            values[name] = key


def _no_network(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: LOOPBACK_URL
            if isinstance(k, str) and k.lower().endswith("url") and isinstance(v, str)
            else _no_network(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_no_network(v) for v in value]
    return value


def prepare(case: Any, tenant: Tenant, key: str, substitute: bool, by_slug: bool) -> None:
    """Authenticate the case, keep it on this machine, and (when asked) name real resources."""
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
    if isinstance(case.body, dict | list):
        case.body = _no_network(case.body)
    if isinstance(case.query, dict) and "api_key" in case.query:
        case.query["api_key"] = key
    if not substitute:
        return
    known = _replacements(tenant, case.operation.path.startswith("/v1/public"), by_slug)
    if case.path_parameters:
        _substitute(case.path_parameters, known, None)
    if isinstance(case.query, dict):
        _substitute(case.query, known, key)
    if isinstance(case.body, dict):
        _substitute(case.body, known, key)


def fuzz(
    world: World, operations: list[Any], key: str, examples: tuple[int, int], checks: list[Any]
) -> Findings:
    findings = Findings()
    for operation in ordered(operations):
        for mode, count in (
            (GenerationMode.POSITIVE, examples[0]),
            (GenerationMode.NEGATIVE, examples[1]),
        ):

            @hypothesis.settings(
                max_examples=count,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            @hypothesis.given(
                case=operation.as_strategy(generation_mode=mode),
                substitute=st.booleans(),
                by_slug=st.booleans(),
            )
            def run(case: Any, substitute: bool, by_slug: bool) -> None:
                prepare(case, world.tenant, key, substitute, by_slug)
                response = case.call()
                findings.requests += 1
                findings.statuses[response.status_code] = (
                    findings.statuses.get(response.status_code, 0) + 1
                )
                for check in checks:
                    try:
                        case.validate_response(response, checks=[check])
                    except (
                        Failure,
                        FailureGroup,
                    ) as exc:  # collect it, with a curl line that reproduces it
                        problems = (
                            [str(e) for e in exc.exceptions]
                            if isinstance(exc, FailureGroup)
                            else [str(exc)]
                        )
                        findings.failures.append(
                            f"{operation.label} [{mode.value}] {check.__name__}: {response.status_code} "  # noqa: B023 (run() is called inside this iteration)
                            f"{response.text[:300]!r}\n  {' / '.join(p.strip()[:300] for p in problems)}\n"
                            f"  {case.as_curl_command()[:600]}"
                        )

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                if mode is not GenerationMode.NEGATIVE:
                    raise
                findings.not_negatable.append(operation.label)
    return findings


def report(name: str, findings: Findings) -> str:
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(findings.statuses.items()))
    return (
        f"{name}: {findings.requests} requests ({statuses}); not negatable: "
        f"{len(findings.not_negatable)}; failures: {len(findings.failures)}"
    )


def test_the_groups_cover_every_operation(world: World) -> None:
    """No operation is left out silently: each belongs to exactly one fuzzed group."""
    for operation in world.operations:
        tags = set(operation.definition.raw.get("tags") or ())
        assert sum(bool(tags & members) for members in GROUPS.values()) <= 1, (
            operation.label,
            tags,
        )
    assert len(world.operations) >= 50
    assert sum(
        1 for group in [*GROUPS, "other"] for op in world.operations if group_of(op) == group
    ) == len(world.operations)


@pytest.mark.parametrize("group", [*GROUPS, "other"])
def test_fuzz_with_a_valid_key(world: World, group: str) -> None:
    operations = [op for op in world.operations if group_of(op) == group]
    findings = fuzz(world, operations, ADMIN_KEY, VALID_EXAMPLES, CHECKS)
    print(report(f"{group}, valid key", findings))
    assert findings.requests >= len(operations) * VALID_EXAMPLES[0] // 2
    assert not findings.failures, "\n".join(findings.failures)


def test_fuzz_with_an_invalid_key(world: World) -> None:
    findings = fuzz(world, world.operations, INVALID_KEY, INVALID_EXAMPLES, CHECKS)
    print(report("all operations, invalid key", findings))
    assert findings.requests >= len(world.operations) * INVALID_EXAMPLES[0] // 2
    assert not findings.failures, "\n".join(findings.failures)


def test_the_openapi_documents_each_doors_real_errors(
    make_settings: Callable[..., Settings],
) -> None:
    """Regression (found by the fuzzer): FastAPI's default 422 was documented and never sent."""
    document = build_app(make_settings(), announce=lambda _: None).openapi()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    expected = {
        "/v1/bots": "Error",
        "/v1/bots/{bot_id}/leads": "Error",
        "/v1/conversations/{conversation_id}": "Error",
        "/v1/agents/presence": "Error",
        "/v1/handoff/queue": "Error",
        "/v1/keys/{key_id}": "Error",
        "/v1/chat/completions": "OpenAIError",
        "/v1/responses/{response_id}": "OpenAIError",
        "/v1/models/{model}": "OpenAIError",
        "/api/chat": "ChatIQError",
        "/v1/public/chat/stream": "ChatbotIQError",
        "/v1/public/conversations/{conversation_id}/events": "ChatbotIQError",
        "/api/v1/chatbots/{chatbot_id}/chat": "ChatbotsError",
        "/api/v1/usage": "DevApiError",
        "/api/v1/get-leads": "ChatbaseError",
        "/api/v1/chat": "ChatError",
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            assert "422" not in responses, path
            assert {"400", "401", "403", "404", "413", "429"} <= set(responses), path
            if path in expected:
                ref = responses["400"]["content"]["application/json"]["schema"]["$ref"]
                assert ref == f"#/components/schemas/{expected[path]}", path
    assert "402" in document["paths"]["/api/v1/chatbots/{chatbot_id}/chat"]["post"]["responses"]
    assert schemas["ChatbotIQError"]["required"] == ["error", "message", "detail"]
