"""The ``chatwell`` command: management commands on a real database, and ``serve`` as a real process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from chatwell.cli import app

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def db_args(empty_database_url: str, tmp_path: Path) -> list[str]:
    return ["--data-dir", str(tmp_path / "data"), "--database-url", empty_database_url]


def test_workspace_bot_and_key_lifecycle(db_args: list[str]) -> None:
    assert "revision" in run("migrate", *db_args)
    created = json.loads(run("workspaces", "create", "Acme", "--json", *db_args))
    assert created["owner_key"].startswith("cw_")
    names = [w["name"] for w in json.loads(run("workspaces", "list", "--json", *db_args))]
    assert "Acme" in names
    ws = ["--workspace", created["id"]]
    bot = json.loads(run("bots", "create", "Help Desk", "--public", "--json", *ws, *db_args))
    assert bot["slug"] == "help-desk" and bot["public"] is True
    assert [b["slug"] for b in json.loads(run("bots", "list", "--json", *ws, *db_args))] == [
        "help-desk"
    ]
    key = json.loads(
        run(
            "keys",
            "create",
            "site",
            "--bot",
            "help-desk",
            "--origin",
            "https://a.example",
            "--daily-limit",
            "25",
            "--json",
            *ws,
            *db_args,
        )
    )
    assert key["key"].startswith("cw_") and key["bot_id"] == bot["id"]
    listed = run("keys", "list", "--json", *ws, *db_args)
    assert key["key"] not in listed and key["prefix"] in listed
    human = run("keys", "list", *ws, *db_args)
    assert "site" in human and key["key"] not in human
    run("keys", "revoke", key["id"], *ws, *db_args)
    assert key["id"] not in run("keys", "list", "--json", *ws, *db_args)
    assert (
        json.loads(run("workspaces", "credit", "12.5", "--json", *ws, *db_args))["credit_balance"]
        == "12.5"
    )
    assert (
        json.loads(run("workspaces", "credit", "unlimited", "--json", *ws, *db_args))[
            "credit_balance"
        ]
        == "unlimited"
    )
    assert runner.invoke(app, ["workspaces", "credit", "lots", *ws, *db_args]).exit_code == 2
    run("bots", "delete", "help-desk", *ws, *db_args)
    assert json.loads(run("bots", "list", "--json", *ws, *db_args)) == []


def test_errors_exit_nonzero_with_a_message(db_args: list[str]) -> None:
    missing = runner.invoke(app, ["bots", "delete", "nope", *db_args])
    assert missing.exit_code == 1 and "bot_not_found" in missing.output
    run("bots", "create", "Dup", "--slug", "dup", *db_args)
    dup = runner.invoke(app, ["bots", "create", "Dup", "--slug", "dup", *db_args])
    assert dup.exit_code == 1 and "slug_taken" in dup.output
    bad = runner.invoke(app, ["bots", "create", "X", "--slug", "Not A Slug", *db_args])
    assert bad.exit_code == 1 and "invalid_request" in bad.output
    revoke = runner.invoke(app, ["keys", "revoke", "not-a-uuid", *db_args])
    assert revoke.exit_code == 1 and "key_not_found" in revoke.output


def test_serve_answers_the_contract(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``chatwell serve`` as a real process: healthz, the admin key, a bot, a source, openapi."""
    chatwell = str(Path(sys.executable).parent / "chatwell")
    base = live_server.start_process(
        [
            chatwell,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        env={"CHATWELL_ADMIN_KEY": "contract-admin-key-123"},
    )
    headers = {"Authorization": "Bearer contract-admin-key-123"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        bot = client.post("/v1/bots", json={"name": "Support"})
        assert bot.status_code == 201
        source = client.post(
            f"/v1/bots/{bot.json()['slug']}/sources",
            json={"type": "text", "title": "Hours", "text": "Open 9 to 5."},
        )
        assert source.status_code == 202
        paths = client.get("/openapi.json").json()["paths"]
        assert {
            "/v1/bots",
            "/v1/bots/{bot_id}",
            "/v1/bots/{bot_id}/sources",
            "/v1/keys",
            "/v1/keys/{key_id}",
            "/healthz",
        } <= set(paths)
    assert "contract-admin-key-123" not in live_server.log(base)


def test_sources_add_ingests_with_progress_and_reports_failures(
    db_args: list[str], tmp_path: Path
) -> None:
    run("bots", "create", "Docs", *db_args)
    doc = tmp_path / "guide.md"
    doc.write_text("# Guide\n\n## Returns\n\nItems can be returned within 30 days.\n")
    added = json.loads(run("sources", "add", "docs", "--file", str(doc), "--json", *db_args))
    assert added["status"] == "ready" and added["chunk_count"] >= 1 and added["title"] == "Guide"
    qa = json.loads(
        run(
            "sources",
            "add",
            "docs",
            "--question",
            "Is it free?",
            "--answer",
            "Yes.",
            "--json",
            *db_args,
        )
    )
    assert qa["status"] == "ready" and qa["type"] == "qa"
    blocked = runner.invoke(
        app, ["sources", "add", "docs", "--url", "http://127.0.0.1:9/", *db_args]
    )
    assert blocked.exit_code == 1 and "blocked_address" in blocked.output
    queued = json.loads(
        run("sources", "add", "docs", "--text", "Later.", "--no-wait", "--json", *db_args)
    )
    assert queued["status"] == "pending"
    both = runner.invoke(
        app, ["sources", "add", "docs", "--text", "x", "--url", "https://e.com", *db_args]
    )
    assert both.exit_code == 2
