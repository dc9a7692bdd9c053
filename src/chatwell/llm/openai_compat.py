"""One adapter for every OpenAI-compatible server: OpenAI, Azure-compatible base URLs, Ollama,
vLLM, llama.cpp, LM Studio, OpenRouter, Groq.

It speaks the wire protocol itself over one pooled ``aiohttp`` session per model: a POST to
``{base_url}/chat/completions`` with ``stream: true`` and the SSE lines read as they arrive. (The
official SDK did the same through typed request building and a pydantic object per chunk: about a
tenth of the CPU of every chat turn, measured with py-spy on ``bench/serving.py --throughput``.)
aiohttp, not httpx, because a token costs a stream reader a fifth as much: its HTTP parser is
compiled, and a read returns everything that has arrived, where httpx hands each chunk up
through six async generators and an anyio timeout scope (about 85 vs 410 µs of client CPU a
token, 50 streams at 20 tokens/s). Everything one read brings is one ``ModelDelta``: a server
that falls behind relays fewer, larger deltas instead of a growing backlog of single tokens.

Retries (429 and 5xx, connection failures, with backoff) happen only before the first token;
after it, a failure is raised to the chat service, which ends the stream with an ``error`` event.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from chatwell.embedders.tokenizer import count_tokens
from chatwell.llm.base import (
    ModelDelta,
    ModelError,
    ModelEvent,
    ModelFinish,
    ModelRequest,
    ModelToolCall,
    ModelUsage,
)
from chatwell.llm.retry import open_with_retries

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})

KEEPALIVE_SECONDS = 4.0
MAX_LINE_BYTES = 1 << 20

log = logging.getLogger("chatwell.llm")


class _UpstreamStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class OpenAICompatibleModel:
    supports_images = True
    supports_tools = True  # passed through; a server without them answers 400 (upstream_error)

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        backoff: float = 0.5,
    ):
        self.name = model
        self.base_url = base_url
        parts = urllib.parse.urlsplit(base_url.rstrip("/") + "/chat/completions")
        self.host = parts.netloc.rpartition("@")[2]  # for logs: never the credentials
        self.url = parts._replace(netloc=self.host).geturl()
        self.authorization = f"Bearer {api_key or 'not-needed'}"
        if parts.username and not api_key:  # credentials in the URL (a gateway behind basic auth)
            pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self.authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        self.proxy = env_proxy(self.url)
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the event loop it belongs to. ``timeout`` bounds connecting
        and every wait for more of the answer, not the answer's whole length.

        An idle connection is not reused after 4 s: servers close theirs after 5 (uvicorn,
        llama.cpp's), and on a busy event loop the close may not have been seen yet when the
        pool hands the connection out. With aiohttp's 15 s, a thousand answers that ended
        together left a thousand such connections, and a retry took another one (1,000 streams
        on `bench/serving.py`: 2–17 answers failed "cannot be reached"; none in the runs since)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                headers={"Authorization": self.authorization},
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.timeout, sock_read=self.timeout
                ),
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS),
            )
        return self._http

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _open(self, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        response = await self._session().post(self.url, json=payload, proxy=self.proxy)
        if response.status >= 400:
            response.release()
            raise _UpstreamStatus(response.status)
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        payload: dict[str, Any] = {
            "model": request.model or self.name,
            "messages": [_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.max_tokens is not None:
            payload["max_tokens"] = request.max_tokens
        optional = {
            "top_p": request.top_p,
            "seed": request.seed,
            "stop": list(request.stop) or None,
            "response_format": request.response_format,
            "tools": list(request.tools) or None,
            "tool_choice": request.tool_choice,
            **request.extra,
        }
        payload.update({name: value for name, value in optional.items() if value is not None})

        def retryable(exc: Exception) -> bool:
            if isinstance(exc, _UpstreamStatus):
                return exc.status in RETRY_STATUS
            # connection failures and timeouts
            return isinstance(exc, (aiohttp.ClientConnectionError, TimeoutError))

        try:
            response = await open_with_retries(
                lambda: self._open(payload),
                retryable=retryable,
                max_retries=self.max_retries,
                backoff=self.backoff,
            )
        except _UpstreamStatus as exc:
            code = "upstream_rate_limited" if exc.status == 429 else "upstream_error"
            raise ModelError(
                code, f"the model server answered {exc.status}", status=exc.status
            ) from None
        except TimeoutError:
            log.warning("the model server at %s did not answer in time", self.host)
            raise ModelError(
                "upstream_timeout", "the model server did not answer in time"
            ) from None
        except aiohttp.ClientError as exc:
            # The kind of failure, not aiohttp's message: some messages hold the whole URL, and
            # a URL may carry credentials or a key in its query.
            log.warning(
                "the model server at %s cannot be reached (%s)", self.host, type(exc).__name__
            )
            raise ModelError("upstream_unavailable", "the model server cannot be reached") from None
        text_parts: list[str] = []
        usage: ModelUsage | None = None
        finish: str | None = None
        calls: dict[
            int, dict[str, str]
        ] = {}  # tool calls arrive in pieces: index -> id, name, arguments
        done = read_to_end = False

        def read(lines: list[bytes]) -> str:
            """The text of these SSE lines; notes the usage and the ``[DONE]`` they carry."""
            nonlocal usage, done, finish
            texts: list[str] = []
            for line in lines:
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments, "event:" lines
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if chunk.get("error"):
                    raise ModelError(
                        "upstream_error", "the model server reported an error mid-stream"
                    )
                if chunk.get("usage"):
                    usage = ModelUsage(
                        int(chunk["usage"].get("prompt_tokens") or 0),
                        int(chunk["usage"].get("completion_tokens") or 0),
                    )
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        texts.append(delta["content"])
                    for piece in delta.get("tool_calls") or ():
                        call = calls.setdefault(
                            int(piece.get("index") or 0), {"id": "", "name": "", "arguments": ""}
                        )
                        function = piece.get("function") or {}
                        call["id"] = piece.get("id") or call["id"]
                        name = function.get("name") or ""
                        if name != call["name"]:  # llama.cpp's server repeats it in every piece
                            call["name"] += name
                        call["arguments"] += function.get("arguments") or ""
                    finish = choice.get("finish_reason") or finish
            return "".join(texts)

        buffer = b""
        try:
            async for piece in response.content.iter_any():
                # After [DONE] the response is still read to its end: a response closed unread
                # closes its connection too, and the next answer would open a new one.
                if done:
                    continue
                *lines, buffer = (buffer + piece).split(b"\n")
                if (
                    len(buffer) > MAX_LINE_BYTES
                ):  # no chunk is this long: don't hold an endless line
                    raise ValueError("line too long")
                if text := read(lines):
                    text_parts.append(text)
                    yield ModelDelta(text)
            read_to_end = True
            if not done and (text := read([buffer])):  # a last line without its newline
                text_parts.append(text)
                yield ModelDelta(text)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ModelError(
                "upstream_error", f"the model stream broke off: {type(exc).__name__}"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ModelError("upstream_error", "the model server sent a malformed chunk") from None
        finally:
            # Read to its end, the connection goes back to the pool; otherwise (the visitor left,
            # an error) it is closed, which is how the model server learns to stop generating.
            if read_to_end:
                response.release()
            else:
                response.close()
        for index in sorted(calls):
            call = calls[index]
            yield ModelToolCall(
                index, call["id"] or f"call_{index}", call["name"], call["arguments"] or "{}"
            )
        if finish:
            yield ModelFinish(finish)
        if usage is None:  # servers that ignore include_usage: count ourselves
            prompt = sum(count_tokens(m.content) for m in request.messages)
            usage = ModelUsage(prompt, count_tokens("".join(text_parts)))
        yield usage


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``,
    ``ALL_PROXY``, ``NO_PROXY``, either case), as httpx follows them; None for none. Not
    aiohttp's ``trust_env``: that also reads ``~/.netrc`` on every request, in a thread, and a
    matching entry there would replace the API key's ``Authorization`` header."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass_environment(parts.hostname):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


def _message(message: Any) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content,  # "" (llama.cpp's server refuses null here)
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in message.tool_calls
            ],
        }
    if message.image is None:
        return {"role": message.role, "content": message.content}
    return {
        "role": message.role,
        "content": [
            {"type": "text", "text": message.content},
            {
                "type": "image_url",
                "image_url": {
                    "url": f"data:{message.image.media_type};base64,{message.image.data_base64}"
                },
            },
        ],
    }
