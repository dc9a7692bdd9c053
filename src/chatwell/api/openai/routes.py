"""OpenAI's chat completions, legacy completions and model lookup over the chat engine's event
stream. A bot is a model (its slug or id); the request's parameters reach the model through
``GenerationOptions`` or are refused (``wire``); the Responses API lives in ``responses``."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatwell.api.deps import DbDep, PrincipalDep, runtime_of
from chatwell.api.dialect import caller_of
from chatwell.api.encoders import citation_json
from chatwell.api.openai.wire import (
    ERROR_DOC,
    STREAMS,
    bot_of_model,
    decision_headers,
    failed_turn,
    openai_error,
    read_headers,
    split_messages,
    thread_key,
    unsupported,
    usage_counts,
)
from chatwell.api.sse import frame, sse_response
from chatwell.chat.service import Turn
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.domain.auth import Principal
from chatwell.llm.base import GenerationOptions, ModelMessage, ModelToolCall
from chatwell.services import bots
from chatwell.storage.tables import Bot

__all__ = ["ERROR_DOC", "openai_error", "router"]

router = APIRouter(prefix="/v1", tags=["openai"])
MAX_MESSAGES = 200
MAX_TOOLS = 128
DOOR = "openai"


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class FunctionCallIn(BaseModel):
    name: str = Field(..., max_length=200)
    arguments: str = Field("{}", max_length=100_000)


class ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(..., max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = Field(None, max_length=MAX_TOOLS)
    tool_call_id: str | None = Field(None, max_length=200)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class FunctionIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(..., min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"]
    function: FunctionIn


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and not (self.json_schema and self.json_schema.get("name")):
            raise ValueError("json_schema needs json_schema.name (and usually json_schema.schema)")
        return self


class SamplingIn(BaseModel):
    """The parameters both the chat and the legacy completions endpoints take."""

    model_config = ConfigDict(
        extra="allow"
    )  # unknown options are accepted, as before; known ones are honoured or refused
    model: str = Field(..., min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1, le=128)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | int | None = None
    user: str | None = Field(None, max_length=200)
    conversation_id: uuid.UUID | None = Field(
        None, description="chatwell extension: continue a stored conversation."
    )

    def refuse_unrelayable(self) -> None:
        if self.n is not None and self.n > 1:
            raise unsupported("n", "a bot gives one answer per request; send n requests")
        if self.logprobs:
            raise unsupported("logprobs", "chatwell does not relay token log probabilities")
        for name in ("audio", "prediction", "functions", "function_call", "web_search_options"):
            if (self.model_extra or {}).get(name) is not None:
                raise unsupported(name, "chatwell does not relay it")
        modalities = (self.model_extra or {}).get("modalities")
        if modalities is not None and modalities != ["text"]:
            raise unsupported("modalities", "bots answer in text only")

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise unsupported("stop", "at most 4 non-empty stop sequences")
        return tuple(stops)

    def sampling_extra(self) -> dict[str, Any]:
        given = {
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "logit_bias": self.logit_bias or None,
        }
        return {k: v for k, v in given.items() if v}


class CompletionIn(SamplingIn):
    messages: list[MessageIn] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    tools: list[ToolIn] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    def refuse_unrelayable(self) -> None:
        super().refuse_unrelayable()
        if self.top_logprobs:
            raise unsupported("top_logprobs", "chatwell does not relay token log probabilities")

    def options(self, instructions: str, tool_turns: tuple[ModelMessage, ...]) -> GenerationOptions:
        extra = self.sampling_extra()
        if self.tools and self.parallel_tool_calls is not None:
            extra["parallel_tool_calls"] = self.parallel_tool_calls
        response_format = (
            self.response_format.model_dump(exclude_none=True) if self.response_format else None
        )
        return GenerationOptions(
            instructions=instructions,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=self.stops(),
            response_format=response_format
            if response_format and response_format["type"] != "text"
            else None,
            tools=tuple(t.model_dump(exclude_none=True) for t in self.tools or ()),
            tool_choice=self.tool_choice if self.tools else None,
            tool_turns=tool_turns,
            extra=extra,
        )


class LegacyCompletionIn(SamplingIn):
    prompt: str | list[str] = Field(
        ..., description="The question; a list must hold exactly one prompt."
    )
    suffix: str | None = None
    echo: bool | None = None
    best_of: int | None = Field(None, ge=1)

    def refuse_unrelayable(self) -> None:
        super().refuse_unrelayable()
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise unsupported("prompt", "send one prompt per request")
        if self.suffix:
            raise unsupported("suffix", "bots do not fill in text")
        if self.echo:
            raise unsupported("echo", "bots do not echo the prompt")
        if self.best_of is not None and self.best_of > 1:
            raise unsupported("best_of", "a bot gives one answer per request")


def text_of(content: str | list[ContentPart] | None, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    for part in content:
        if part.type not in ("text", "input_text", "output_text"):
            raise unsupported(param, f"content parts of type {part.type!r}; send text")
    return "".join(p.text or "" for p in content)


def model_messages(messages: list[MessageIn]) -> list[ModelMessage]:
    converted = []
    for n, m in enumerate(messages):
        text = text_of(m.content, f"messages[{n}].content")
        calls = tuple(
            ModelToolCall(i, c.id, c.function.name, c.function.arguments)
            for i, c in enumerate(m.tool_calls or ())
        )
        role = "system" if m.role == "developer" else m.role
        converted.append(ModelMessage(role, text, tool_calls=calls, tool_call_id=m.tool_call_id))
    return converted


def model_json(bot: Bot) -> dict[str, Any]:
    return {
        "id": bot.slug,
        "object": "model",
        "created": int(bot.created_at.timestamp()),
        "owned_by": "chatwell",
        "name": bot.name,
    }


@router.get("/models")
async def list_models(request: Request, principal: PrincipalDep, db: DbDep) -> JSONResponse:
    found = await bots.all_bots(db, principal=principal)
    return JSONResponse(
        {"object": "list", "data": [model_json(b) for b in found]},
        headers=await read_headers(request, principal, None),
    )


@router.get("/models/{model}")
async def get_model(
    model: str, request: Request, principal: PrincipalDep, db: DbDep
) -> JSONResponse:
    bot = await bot_of_model(db, principal, model)
    return JSONResponse(model_json(bot), headers=await read_headers(request, principal, bot))


async def open_openai_turn(
    request: Request,
    principal: Principal,
    bot: Bot,
    data: SamplingIn,
    *,
    question: str,
    history: list[ev.HistoryTurn],
    options: GenerationOptions,
) -> tuple[Turn, dict[str, str]]:
    """The turn and the OpenAI rate-limit headers; ``user`` is the client's session id in this
    door's namespace. An empty workspace is refused before streaming (429 ``insufficient_quota``)."""
    opened = await open_turn(
        runtime_of(request).chat,
        caller_of(request, principal),
        door=DOOR,
        bot=bot,
        question=question,
        history=history,
        client_session_id=data.user,
        conversation_id=data.conversation_id,
        continue_latest=False,
        require_credit=True,
        options=options,
        thread_key=thread_key(principal, data.user),
    )
    return opened.turn, decision_headers(opened.decision)


def error_frame(error: ev.Error) -> str:
    """A failure after the stream opened, in OpenAI's error shape."""
    body = {"message": error.message, "type": "server_error", "param": None, "code": error.code}
    return frame({"error": body})


def tool_call_json(call: ev.ToolCall, *, index: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    return {"index": call.index, **body} if index else body


def usage_json(usage: ev.Usage | None) -> dict[str, int]:
    prompt, completion = usage_counts(usage)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@router.post("/chat/completions", responses=STREAMS)
async def chat_completions(
    data: CompletionIn, request: Request, principal: PrincipalDep, db: DbDep
) -> Any:
    bot = await bot_of_model(db, principal, data.model)
    data.refuse_unrelayable()
    instructions, history, question, tool_turns = split_messages(model_messages(data.messages))
    options = data.options(instructions, tool_turns)
    runtime_of(request).chat.check_options(bot, options)
    turn, headers = await open_openai_turn(
        request, principal, bot, data, question=question, history=history, options=options
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if not data.stream:
        answer = await turn.collect()
        if answer.error is not None:
            return failed_turn(answer.error, headers)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text or None,
            "refusal": None,
        }
        if answer.tool_calls:
            message["tool_calls"] = [tool_call_json(c) for c in answer.tool_calls]
        elif not answer.text:
            message["content"] = ""
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": bot.slug,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": answer.finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": usage_json(answer.usage),
                "citations": [citation_json(c) for c in answer.citations],
                "conversation_id": str(turn.conversation_id) if turn.conversation_id else None,
            },
            headers=headers,
        )
    include_usage = bool(data.stream_options and data.stream_options.include_usage)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": bot.slug,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return frame(body)

    async def frames() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        citations: list[dict[str, Any]] = []
        usage: ev.Usage | None = None
        async for event in turn.events():
            match event:
                case ev.Delta(text=text):
                    yield chunk({"content": text})
                case ev.Replace(text=text):  # the format can't retract text: it follows a break
                    yield chunk({"content": "\n\n" + text})
                case ev.ToolCall():
                    yield chunk({"tool_calls": [tool_call_json(event, index=True)]})
                case ev.Citations():
                    citations = [citation_json(c) for c in event.citations]
                case ev.Usage():
                    usage = event
                case ev.Error():
                    yield error_frame(event)
                    yield "data: [DONE]\n\n"
                    return
                case ev.Done():
                    conversation = event.conversation_id
                    yield chunk(
                        {},
                        event.finish_reason,
                        citations=citations,
                        conversation_id=str(conversation) if conversation else None,
                    )
        if include_usage and usage is not None:
            yield frame(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": bot.slug,
                    "choices": [],
                    "usage": usage_json(usage),
                }
            )
        yield "data: [DONE]\n\n"

    response = sse_response(frames())
    response.headers.update(headers)
    return response


@router.post("/completions", responses=STREAMS)
async def completions(
    data: LegacyCompletionIn, request: Request, principal: PrincipalDep, db: DbDep
) -> Any:
    """The legacy text completion (LlamaIndex's ``OpenAILike`` default): the prompt is the question,
    the text is the bot's answer."""
    bot = await bot_of_model(db, principal, data.model)
    data.refuse_unrelayable()
    prompt = data.prompt[0] if isinstance(data.prompt, list) else data.prompt
    _, history, question, _ = split_messages([ModelMessage("user", prompt)], param="prompt")
    options = GenerationOptions(
        max_tokens=data.max_tokens,
        temperature=data.temperature,
        top_p=data.top_p,
        seed=data.seed,
        stop=data.stops(),
        extra=data.sampling_extra(),
    )
    runtime_of(request).chat.check_options(bot, options)
    turn, headers = await open_openai_turn(
        request, principal, bot, data, question=question, history=history, options=options
    )
    completion_id = f"cmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def body(text: str, finish: str | None, usage: ev.Usage | None = None) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": bot.slug,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
        }
        if usage is not None:
            reply["usage"] = usage_json(usage)
        return reply

    if not data.stream:
        answer = await turn.collect()
        if answer.error is not None:
            return failed_turn(answer.error, headers)
        return JSONResponse(
            {**body(answer.text, answer.finish_reason), "usage": usage_json(answer.usage)},
            headers=headers,
        )
    include_usage = bool(data.stream_options and data.stream_options.include_usage)

    async def frames() -> AsyncIterator[str]:
        usage: ev.Usage | None = None
        async for event in turn.events():
            match event:
                case ev.Delta(text=text):
                    yield frame(body(text, None))
                case ev.Replace(text=text):
                    yield frame(body("\n\n" + text, None))
                case ev.Usage():
                    usage = event
                case ev.Error():
                    yield error_frame(event)
                    break
                case ev.Done(finish_reason=finish):
                    yield frame(body("", finish))
                    if include_usage:
                        yield frame({**body("", None, usage), "choices": []})
        yield "data: [DONE]\n\n"

    response = sse_response(frames())
    response.headers.update(headers)
    return response
