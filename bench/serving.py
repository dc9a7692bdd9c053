"""Serving benchmarks against a scripted OpenAI-compatible upstream (tests/upstream.py), each
component in its own process: the upstream, one `chatwell serve` process, and this client.

  --ttft         time to first token through chatwell vs the upstream called directly, for a bot
                 of 10k chunks (zero-latency upstream: the difference is chatwell's own cost:
                 auth, limits, retrieval, prompt); twice: private turns (nothing stored before
                 the answer) and stored ones (a new conversation and the user's turn written first)
  --throughput   non-streaming chats per second on one process, as a ratio of a bare FastAPI
                 endpoint served the same way in the same run (the framework floor)
  --relay-cpu    the server's CPU per relayed token: N long answers at 20 tokens/s, CPU from /proc
                 over 10 s divided by the tokens the clients received
  --concurrency  N concurrent SSE chats against a token-paced upstream (20 tokens/s): errors,
                 each token's delay from the upstream's send to the client (p50/p99), through
                 chatwell and straight from the upstream (the difference is chatwell's), the
                 old gap measure alongside, server memory per open stream; the same delays
                 again for the tokens sent while all N streams were open ("steady": after the
                 last stream's first token, before the first stream's end; needs streams longer
                 than the start burst, e.g. --words 400), and --ramp S opens the N streams
                 evenly over S seconds, the way a load tool's spawn rate does

    .venv/bin/python bench/serving.py --ttft --throughput --concurrency [--streams 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import _common  # noqa: F401
import aiohttp
import httpx
from _common import DEFAULT_CORPUS, json_line, latency_summary, percentile, read_corpus, temp_dir
from tests.services import free_port, wait_for_port

from chatwell.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CHATWELL = str(Path(sys.executable).parent / "chatwell")
KEY = "bench-admin-key-123456"
UNLIMITED = {
    "CHATWELL_API_RATE_LIMITS": "100000000/minute",
    "CHATWELL_PUBLIC_RATE_LIMITS": "100000000/minute",
    "CHATWELL_MAX_CONCURRENT_REQUESTS_PER_CLIENT": "0",
}  # every client here is 127.0.0.1


LOGS: list[Path] = []


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"chatwell-bench-{os.getpid()}-{len(LOGS)}.log"
    LOGS.append(log)
    with open(log, "wb") as out:
        return subprocess.Popen(
            args,
            env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_healthy(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} did not start; logs: {[str(p) for p in LOGS]}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Stack:
    """Upstream + chatwell server on a prepared data dir."""

    def __init__(
        self, data_dir: Path, tps: float = 0.0, words: int = 0, stamp: bool = False
    ) -> None:
        self.upstream_port, self.port = free_port(), free_port()
        self.upstream = spawn(
            [
                sys.executable,
                "-m",
                "tests.upstream",
                "--port",
                str(self.upstream_port),
                "--tps",
                str(tps),
                "--words",
                str(words),
                *(["--stamp"] if stamp else []),
            ]
        )
        wait_for_port("127.0.0.1", self.upstream_port, timeout=30)
        self.server = spawn(
            [CHATWELL, "serve", "--port", str(self.port), "--data-dir", str(data_dir)],
            {
                "CHATWELL_LLM_BASE_URL": f"http://127.0.0.1:{self.upstream_port}/v1",
                "CHATWELL_LLM_MODEL": "scripted",
                "CHATWELL_LOG_LEVEL": "warning",
                **UNLIMITED,
            },
        )
        self.base = f"http://127.0.0.1:{self.port}"
        wait_healthy(self.base)

    def close(self) -> None:
        for proc in (self.server, self.upstream):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


QUESTION = ""  # set by prepare(): the title of a real abstract in the bot, so retrieval finds it and the model answers


async def prepare(data_dir: Path, chunks: int) -> str:
    global QUESTION
    from ttft import prepare as prepare_bot

    settings = Settings(data_dir=data_dir, admin_key=KEY)
    real = read_corpus(DEFAULT_CORPUS, 5)
    db, _knowledge, bot = await prepare_bot(settings, chunks, real)
    await db.dispose()
    QUESTION = f"What is known about this: {real[0]['title']}?"
    return str(bot.id)


async def bench_ttft(
    data_dir: Path, bot_id: str, n: int, *, private: bool = True
) -> dict[str, Any]:
    """``private``: the turn stores only its usage row; otherwise every question starts a stored
    conversation (a write transaction before retrieval), as a widget visitor's first message does."""
    stack = Stack(data_dir)
    direct, through = [], []
    stages: list[dict[str, float]] = []  # when each status event and the first delta arrived
    try:
        async with httpx.AsyncClient(
            timeout=60, headers={"Authorization": f"Bearer {KEY}"}
        ) as client:
            upstream = f"http://127.0.0.1:{stack.upstream_port}/v1/chat/completions"
            body = {
                "model": "scripted",
                "stream": True,
                "messages": [{"role": "user", "content": QUESTION}],
            }

            # Each stream is read to its end after its first token, as a client does: a stream
            # dropped at its first token leaves the server finishing it during the next request.
            async def first_direct() -> float:
                start = time.perf_counter()
                first = None
                async with client.stream("POST", upstream, json=body) as r:
                    async for line in r.aiter_lines():
                        if first is None and line.startswith("data: {"):
                            choices = json.loads(line[6:]).get("choices") or [{}]
                            if (choices[0].get("delta") or {}).get("content"):
                                first = time.perf_counter() - start
                if first is None:
                    raise RuntimeError("no token")
                return first

            async def first_chatwell() -> float:
                start = time.perf_counter()
                marks: dict[str, float] = {}
                first = None
                async with client.stream(
                    "POST",
                    f"{stack.base}/v1/bots/{bot_id}/chat",
                    json={"message": QUESTION, "private": private},
                ) as r:
                    async for line in r.aiter_lines():
                        if first is not None:
                            continue
                        if line.startswith("data: ") and '"stage"' in line:
                            marks.setdefault(
                                json.loads(line[6:]).get("stage", "?"), time.perf_counter() - start
                            )
                        if line == "event: delta":
                            first = time.perf_counter() - start
                            stages.append({**marks, "delta": first})
                if first is None:
                    raise RuntimeError(f"no token from chatwell ({r.status_code})")
                return first

            for _ in range(5):  # warm-up both sides
                await first_direct()
                await first_chatwell()
            for i in range(n):
                pair = (
                    (first_direct, first_chatwell) if i % 2 == 0 else (first_chatwell, first_direct)
                )
                for fn in pair:
                    (direct if fn is first_direct else through).append(await fn())
    finally:
        stack.close()
    added = sorted((c - d) * 1000 for c, d in zip(through, direct, strict=True))
    measured = stages[-n:]
    steps = {}  # chatwell's own stages, from its status events: request -> "retrieving" -> "generating" -> delta
    for name, before, after in (
        ("until_retrieving", None, "retrieving"),
        ("retrieving", "retrieving", "generating"),
        ("generating_to_first_delta", "generating", "delta"),
    ):
        values = [
            m[after] - (m[before] if before else 0.0)
            for m in measured
            if after in m and (before is None or before in m)
        ]
        if values:
            steps[name] = latency_summary(values)
    return {
        "direct": latency_summary(direct),
        "chatwell": latency_summary(through),
        "chatwell_steps": steps,
        "added_ms_p50": round(added[len(added) // 2], 2),
        "added_ms_p95": round(added[int(len(added) * 0.95)], 2),
    }


BARE = """
from fastapi import FastAPI
app = FastAPI()
@app.post("/chat")
async def chat(body: dict) -> dict:
    return {"answer": "Our support team answers Monday to Friday.", "conversation_id": None}
"""


async def bench_throughput(
    data_dir: Path, bot_id: str, seconds: float, concurrency: int
) -> dict[str, Any]:
    async def hammer(url: str, body: dict[str, Any], headers: dict[str, str]) -> float:
        """Requests per second from ``concurrency`` clients on keep-alive connections (aiohttp:
        the client shares the two cores with the server, and httpx's own cost per request held
        both servers back)."""
        done = 0
        stop = time.monotonic() + seconds
        async with aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=60),
            connector=aiohttp.TCPConnector(limit=concurrency),
        ) as client:

            async def loop() -> None:
                nonlocal done
                while time.monotonic() < stop:
                    async with client.post(url, json=body) as r:
                        text = await r.text()
                        assert r.status == 200, text[:200]
                    done += 1

            await asyncio.gather(*(loop() for _ in range(concurrency)))
        return done / seconds

    stack = Stack(data_dir)
    try:
        chatwell_rps = await hammer(
            f"{stack.base}/v1/bots/{bot_id}/chat",
            {"message": QUESTION, "stream": False},
            {"Authorization": f"Bearer {KEY}"},
        )
    finally:
        stack.close()
    bare_file = data_dir / "bare_app.py"
    bare_file.write_text(BARE)
    port = free_port()
    bare = spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(data_dir),
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        bare_rps = await hammer(f"http://127.0.0.1:{port}/chat", {"message": QUESTION}, {})
    finally:
        bare.terminate()
        bare.wait(20)
    return {
        "chatwell_chats_per_s": round(chatwell_rps, 1),
        "bare_fastapi_per_s": round(bare_rps, 1),
        "ratio": round(chatwell_rps / bare_rps, 3),
        "client_concurrency": concurrency,
        "seconds": seconds,
    }


async def bench_concurrency(
    data_dir: Path, bot_id: str, streams: int, tps: float, words: int, ramp: float = 0.0
) -> dict[str, Any]:
    """``streams`` chats at once, through chatwell and then straight to the upstream (the floor:
    the same client and upstream without chatwell). The upstream stamps every token with the
    moment it sent it (CLOCK_MONOTONIC, shared by the processes of one machine), so each token's
    delay to the client is measured, not inferred from the gaps: the gap measure also counts the
    upstream's own lateness under load, which is not chatwell's."""
    stack = Stack(data_dir, tps=tps, words=words, stamp=True)
    gap_expected = 1.0 / tps
    through: dict[str, Any] = {"errors": [], "gaps": [], "delays": [], "sent": [], "spans": []}
    direct: dict[str, Any] = {"errors": [], "gaps": [], "delays": [], "sent": [], "spans": []}
    upstream_url = f"http://127.0.0.1:{stack.upstream_port}/v1/chat/completions"
    try:
        # One chat first: the question's embedding model and the first request's imports load
        # then (~400 MiB), and are not the streams' memory.
        with httpx.stream(
            "POST",
            f"{stack.base}/v1/bots/{bot_id}/chat",
            json={"message": QUESTION, "private": True},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        ) as warm:
            next(line for line in warm.iter_lines() if line == "event: delta")
        time.sleep(1)
        base_rss = rss_kib(stack.server.pid)
        peak = {"rss": base_rss}
        # aiohttp, not httpx, reads the streams: at 20 tokens/s httpx costs its reader ~400 µs of
        # CPU a token, aiohttp ~85 (a thousand streams read by httpx need several cores by themselves).
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=aiohttp.ClientTimeout(total=300),
            connector=aiohttp.TCPConnector(limit=0),
        ) as client:

            def token(text: str, into: dict[str, Any], last: float | None) -> float:
                now = time.monotonic_ns() // 1000
                for word in text.split():
                    if word.startswith("t") and word[1:].isdigit():
                        into["delays"].append((now - int(word[1:])) / 1e6)
                        into["sent"].append(int(word[1:]) / 1e6)
                if last is not None:
                    into["gaps"].append(now / 1e6 - last - gap_expected)
                return now / 1e6

            async def lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
                buffer = b""
                async for piece in response.content.iter_any():
                    *complete, buffer = (buffer + piece).split(b"\n")
                    for line in complete:
                        yield line.decode()

            async def one(delay: float) -> None:
                await asyncio.sleep(delay)
                opened = None
                try:
                    async with client.post(
                        f"{stack.base}/v1/bots/{bot_id}/chat",
                        json={"message": QUESTION, "private": True},
                    ) as r:
                        if r.status != 200:
                            through["errors"].append(f"HTTP {r.status}")
                            return
                        last, kind = None, ""
                        async for line in lines(r):
                            if line.startswith("event: "):
                                kind = line[7:]
                            elif kind == "error" and line.startswith("data: "):
                                error = json.loads(line[6:])
                                through["errors"].append(
                                    f"error event: {error.get('code')}: {error.get('message')}"
                                )
                            elif kind == "delta" and line.startswith("data: "):
                                last = token(json.loads(line[6:])["text"], through, last)
                                opened = opened or last
                    if opened is not None:
                        through["spans"].append((opened, last))
                except Exception as exc:  # noqa: BLE001 - counted
                    through["errors"].append(type(exc).__name__)

            async def one_direct(delay: float) -> None:
                await asyncio.sleep(delay)
                body = {
                    "model": "scripted",
                    "stream": True,
                    "messages": [{"role": "user", "content": QUESTION}],
                }
                try:
                    async with client.post(upstream_url, json=body) as r:
                        last = opened = None
                        async for line in lines(r):
                            if line.startswith("data: {"):
                                choices = json.loads(line[6:]).get("choices") or [{}]
                                text = (choices[0].get("delta") or {}).get("content")
                                if text:
                                    last = token(text, direct, last)
                                    opened = opened or last
                        if opened is not None:
                            direct["spans"].append((opened, last))
                except Exception as exc:  # noqa: BLE001 - counted
                    direct["errors"].append(type(exc).__name__)

            async def sample() -> None:
                while True:
                    peak["rss"] = max(peak["rss"], rss_kib(stack.server.pid))
                    await asyncio.sleep(0.2)

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            await asyncio.gather(*(one(ramp * i / streams) for i in range(streams)))
            elapsed = time.perf_counter() - started
            sampler.cancel()
            await asyncio.gather(*(one_direct(ramp * i / streams) for i in range(streams)))
    finally:
        stack.close()

    def pct(values: list[float], q: float) -> float | None:
        return round(percentile(values, q) * 1000, 2) if values else None

    def steady(into: dict[str, Any]) -> list[float]:
        """Delays of the tokens sent while every stream was open (all had their first token,
        none had ended); empty when the streams were shorter than the start burst."""
        if len(into["spans"]) < streams:
            return []
        start, end = max(a for a, _ in into["spans"]), min(b for _, b in into["spans"])
        return [d for d, t in zip(into["delays"], into["sent"]) if start <= t <= end]

    through["steady"], direct["steady"] = steady(through), steady(direct)
    out = {
        "streams": streams,
        "tokens_per_s": tps,
        "ramp_s": ramp,
        "errors": len(through["errors"]),
        "error_kinds": sorted(set(through["errors"]))[:5],
        "direct_errors": len(direct["errors"]),
    }
    for q, name in ((50, "p50"), (99, "p99")):
        out[f"token_delay_ms_{name}"] = pct(through["delays"], q)
        out[f"token_delay_direct_ms_{name}"] = pct(direct["delays"], q)
        if (
            out[f"token_delay_ms_{name}"] is not None
            and out[f"token_delay_direct_ms_{name}"] is not None
        ):
            out[f"added_token_delay_ms_{name}"] = round(
                out[f"token_delay_ms_{name}"] - out[f"token_delay_direct_ms_{name}"], 2
            )
        out[f"steady_token_delay_ms_{name}"] = pct(through["steady"], q)
        out[f"steady_token_delay_direct_ms_{name}"] = pct(direct["steady"], q)
        out[f"gap_excess_ms_{name}"] = pct(through["gaps"], q)
        out[f"gap_excess_direct_ms_{name}"] = pct(direct["gaps"], q)
    out |= {
        "server_rss_base_mib": round(base_rss / 1024, 1),
        "server_rss_peak_mib": round(peak["rss"] / 1024, 1),
        "kib_per_open_stream": round((peak["rss"] - base_rss) / streams, 1),
        "wall_seconds": round(elapsed, 1),
        "steady_tokens": len(through["steady"]),
        "steady_tokens_direct": len(direct["steady"]),
    }
    return out


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds a process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_relay_cpu(
    data_dir: Path, bot_id: str, streams: int, tps: float, window: float
) -> dict[str, Any]:
    """The server's CPU per relayed token: ``streams`` long answers at ``tps`` tokens/s, opened
    over 2 s; after 5 s, the server's CPU over ``window`` seconds divided by the tokens the
    clients received meanwhile (a token is one ``event: delta`` frame)."""
    stack = Stack(data_dir, tps=tps, words=int(tps * (window + 30)))
    received = 0
    try:
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=aiohttp.ClientTimeout(total=None),
            connector=aiohttp.TCPConnector(limit=0),
        ) as client:

            async def one(delay: float) -> None:
                nonlocal received
                await asyncio.sleep(delay)
                async with client.post(
                    f"{stack.base}/v1/bots/{bot_id}/chat",
                    json={"message": QUESTION, "private": True},
                ) as r:
                    async for piece in r.content.iter_any():
                        received += piece.count(b"event: delta")

            tasks = [asyncio.create_task(one(2 * i / streams)) for i in range(streams)]
            await asyncio.sleep(5)
            cpu, tokens, started = cpu_seconds_of(stack.server.pid), received, time.monotonic()
            await asyncio.sleep(window)
            cpu = cpu_seconds_of(stack.server.pid) - cpu
            tokens, elapsed = received - tokens, time.monotonic() - started
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stack.close()
    return {
        "streams": streams,
        "tokens": tokens,
        "tokens_per_s": round(tokens / elapsed),
        "server_cpu_s": round(cpu, 2),
        "us_per_token": round(cpu / max(1, tokens) * 1e6, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ttft", action="store_true")
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--concurrency", action="store_true")
    parser.add_argument(
        "--relay-cpu", action="store_true", help="server CPU per relayed token (--streams, --tps)"
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--tps", type=float, default=20)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument(
        "--ramp", type=float, default=0.0, help="open the streams evenly over this many seconds"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"loadavg_start": Path("/proc/loadavg").read_text().split()[:3]}
    with temp_dir("chatwell-serving-") as data_dir:
        bot_id = await prepare(data_dir, args.chunks)
        results["bot_chunks"] = args.chunks
        if args.ttft:
            results["ttft"] = await bench_ttft(data_dir, bot_id, args.questions)
            print("ttft", results["ttft"], flush=True)
            results["ttft_stored"] = await bench_ttft(
                data_dir, bot_id, args.questions, private=False
            )
            print("ttft_stored", results["ttft_stored"], flush=True)
        if args.throughput:
            results["throughput"] = await bench_throughput(
                data_dir, bot_id, args.seconds, args.clients
            )
            print("throughput", results["throughput"], flush=True)
        if args.concurrency:
            results["concurrency"] = await bench_concurrency(
                data_dir, bot_id, args.streams, args.tps, args.words, args.ramp
            )
            print("concurrency", results["concurrency"], flush=True)
        if args.relay_cpu:
            results["relay_cpu"] = await bench_relay_cpu(
                data_dir, bot_id, args.streams, args.tps, window=10.0
            )
            print("relay_cpu", results["relay_cpu"], flush=True)
    results["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json_line(results))


if __name__ == "__main__":
    asyncio.run(main())
