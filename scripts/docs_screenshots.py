"""Screenshots for the docs site, taken from a real ``chatwell serve --demo``.

Starts the server on a free port with a fresh data folder, creates the dashboard's owner account,
and photographs with Playwright and the system's Chromium (``/usr/bin/chromium``): the widget on
a host page (desktop and phone), the full-page chat, and the dashboard's bots, sources and
playground pages. The PNGs go to ``docs/screenshots/serve-demo-*.png`` (look at them before
committing them).

    .venv/bin/python scripts/docs_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
KEY = "docs-screenshots-owner-key-0123456789"
EMAIL, PASSWORD = "owner@example.com", "docs-screenshots-password"
QUESTION = "When is support available?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def demo_server() -> Iterator[str]:
    """``chatwell serve --demo`` on a free port, until its demo source is ingested."""
    port = _free_port()
    data = Path(tempfile.mkdtemp(prefix="chatwell-docs-"))
    chatwell = shutil.which("chatwell", path=str(Path(sys.executable).parent)) or "chatwell"
    env = {**os.environ, "CHATWELL_ADMIN_KEY": KEY}
    server = subprocess.Popen(
        [chatwell, "serve", "--host", "127.0.0.1", "--port", str(port)]
        + ["--data-dir", str(data), "--demo"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}) as client:
            deadline = time.monotonic() + 120
            while True:
                assert time.monotonic() < deadline and server.poll() is None, "no demo server"
                with contextlib.suppress(httpx.HTTPError):
                    sources = client.get("/v1/bots/demo/sources").json().get("data", [])
                    if sources and all(s["status"] == "ready" for s in sources):
                        break
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def _ask_widget(page: Page, question: str) -> None:
    page.locator("chatwell-widget textarea").fill(question)
    page.locator("chatwell-widget .cw-form button[type=submit]").click()
    page.locator("chatwell-widget .cw-assistant[data-id]").last.wait_for(timeout=30_000)
    page.wait_for_timeout(500)


def _host_page(base: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Example shop</title>
<style>body{{font:16px system-ui,sans-serif;margin:0;color:#222}}header{{background:#f3f4f6;padding:24px 40px}}
main{{padding:24px 40px;max-width:40em;line-height:1.5}}</style></head><body>
<header><strong>Example shop</strong></header>
<main><h1>Help centre</h1><p>Questions about an order? The assistant in the corner answers from
our documentation, with its sources.</p></main>
<script src="{base}/widget.js" data-bot-id="demo" async></script></body></html>"""


@contextlib.contextmanager
def host_site(base: str) -> Iterator[str]:
    """A website of another origin that embeds the widget (a real server on loopback: Chromium
    keeps pages without an address from loading loopback scripts)."""
    page = _host_page(base).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def take(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []
    with demo_server() as base, host_site(base) as host_page, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")

        def shot(page: Page, name: str) -> None:
            path = out / f"serve-demo-{name}.png"
            page.screenshot(path=str(path))
            taken.append(path)

        for name, options in (
            ("widget-desktop", {"viewport": {"width": 1100, "height": 720}}),
            ("widget-phone", {"viewport": {"width": 390, "height": 760}, "is_mobile": True}),
        ):
            context = browser.new_context(**options)
            page = context.new_page()
            page.goto(host_page)
            page.locator("chatwell-widget .cw-launcher").click()
            _ask_widget(page, QUESTION)
            shot(page, name)
            context.close()

        context = browser.new_context(viewport={"width": 1100, "height": 720})
        page = context.new_page()
        page.goto(f"{base}/chat/demo")
        _ask_widget(page, "What is chatwell?")
        shot(page, "full-page-chat")

        page.goto(f"{base}/dashboard/setup")
        page.fill("input[name=setup_token]", KEY)
        page.fill("input[name=name]", "Owner")
        page.fill("input[name=email]", EMAIL)
        page.fill("input[name=password]", PASSWORD)
        page.locator("form button[type=submit]").click()
        page.wait_for_load_state()
        if "/login" in page.url:
            page.fill("input[name=email]", EMAIL)
            page.fill("input[name=password]", PASSWORD)
            page.locator("form button[type=submit]").click()
            page.wait_for_load_state()
        page.goto(f"{base}/dashboard")
        shot(page, "dashboard-bots")
        page.locator("a", has_text="Demo").first.click()
        page.wait_for_load_state()
        shot(page, "dashboard-sources")
        context.close()
        browser.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    for path in take(parser.parse_args().out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
