"""OpenAI's Responses API (``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``) over
the chat engine's event stream: a request schema, and an encoder into Responses objects and
their streamed events.

A stored response is one exchange of a conversation: its id is ``resp_`` and the user message's
id, so ``previous_response_id`` continues that conversation and ``GET`` reads the exchange back.
``store: false`` runs a private turn (nothing stored, not retrievable). The bot's citations are
``annotations`` on the output text: ``url_citation`` for a source with a URL, ``file_citation``
(the source's id and title) for one without.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from chatwell.api.deps import DbDep, PrincipalDep, runtime_of
from chatwell.api.dialect import caller_of, check_key_for_bot
from chatwell.api.openai.routes import DOOR, ContentPart, text_of
from chatwell.api.openai.wire import (
    STREAMS,
    bot_of_model,
    decision_headers,
    failed_turn,
    read_headers,
    split_messages,
    thread_key,
    unsupported,
)
from chatwell.api.sse import frame, sse_response
from chatwell.chat.answer import Answer
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.domain.models import Permission
from chatwell.errors import InvalidRequest, NotFound
from chatwell.llm.base import GenerationOptions, ModelMessage, ModelToolCall
from chatwell.services import bots, conversations, keys, sessions
from chatwell.storage.tables import Bot

router = APIRouter(prefix="/v1", tags=["openai"])
MAX_ITEMS = 200
PREFIX = "resp_"


class InputItem(BaseModel):
    """A message (``role`` + ``content``), a ``function_call`` or a ``function_call_output``."""

    model_config = ConfigDict(extra="allow")
    type: str = "message"
    role: Literal["system", "developer", "user", "assistant"] | None = None
    content: str | list[ContentPart] | None = None
    call_id: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=200)
    arguments: str | None = Field(None, max_length=100_000)
    output: str | list[ContentPart] | None = None


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: TextFormat | None = None


class ToolIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    name: str | None = Field(None, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(..., min_length=1, max_length=200)
    input: str | list[InputItem]
    instructions: str | None = None
    previous_response_id: str | None = Field(None, max_length=100)
    store: bool = True
    stream: bool = False
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    text: TextConfig | None = None
    tools: list[ToolIn] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = Field(None, max_length=200)
    top_logprobs: int | None = None
    reasoning: dict[str, Any] | None = None
    background: bool | None = None
    truncation: Literal["auto", "disabled"] | None = None

    def refuse_unrelayable(self) -> None:
        if isinstance(self.input, list) and len(self.input) > MAX_ITEMS:
            raise InvalidRequest(
                f"at most {MAX_ITEMS} input items",
                code="invalid_request",
                details={"param": "input"},
            )
        if self.top_logprobs:
            raise unsupported("top_logprobs", "chatwell does not relay token log probabilities")
        if self.background:
            raise unsupported("background", "responses run in the foreground")
        if self.reasoning and any(v is not None for v in self.reasoning.values()):
            raise unsupported("reasoning", "bots do not take reasoning settings")
        for name in ("conversation", "prompt", "max_tool_calls"):
            if (self.model_extra or {}).get(name) is not None:
                raise unsupported(name, "chatwell does not relay it")

    def messages(self) -> list[ModelMessage]:
        if isinstance(self.input, str):
            return [ModelMessage("user", self.input)]
        found: list[ModelMessage] = []
        for n, item in enumerate(self.input):
            if item.type == "message":
                if item.role is None:
                    raise InvalidRequest(
                        "a message item needs a role",
                        code="invalid_request",
                        details={"param": f"input[{n}].role"},
                    )
                role = "system" if item.role == "developer" else item.role
                found.append(ModelMessage(role, _text(item.content, f"input[{n}].content")))
            elif item.type == "function_call":
                call = ModelToolCall(0, item.call_id or "", item.name or "", item.arguments or "{}")
                last = found[-1] if found else None
                if (
                    last is not None
                    and last.role == "assistant"
                    and last.tool_calls
                    and not last.content
                ):
                    found[-1] = ModelMessage(
                        "assistant",
                        "",
                        tool_calls=(
                            *last.tool_calls,
                            ModelToolCall(len(last.tool_calls), call.id, call.name, call.arguments),
                        ),
                    )
                else:
                    found.append(ModelMessage("assistant", "", tool_calls=(call,)))
            elif item.type == "function_call_output":
                found.append(
                    ModelMessage(
                        "tool", _text(item.output, f"input[{n}].output"), tool_call_id=item.call_id
                    )
                )
            elif item.type == "reasoning":
                continue  # a reasoning model's own notes: nothing a bot reads
            else:
                raise unsupported(f"input[{n}].type", f"input items of type {item.type!r}")
        return found

    def options(self, instructions: str, tool_turns: tuple[ModelMessage, ...]) -> GenerationOptions:
        tools = []
        for n, tool in enumerate(self.tools or ()):
            if tool.type != "function" or not tool.name:
                raise unsupported(
                    f"tools[{n}]", f"tools of type {tool.type!r}; bots call function tools only"
                )
            function = {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
                "strict": tool.strict,
            }
            tools.append(
                {
                    "type": "function",
                    "function": {k: v for k, v in function.items() if v is not None},
                }
            )
        choice: str | dict[str, Any] | None = self.tool_choice
        if isinstance(choice, dict):
            if choice.get("type") != "function" or not choice.get("name"):
                raise unsupported("tool_choice", "only a function tool can be chosen")
            choice = {"type": "function", "function": {"name": choice["name"]}}
        fmt = self.text.format if self.text else None
        response_format: dict[str, Any] | None = None
        if fmt is not None and fmt.type == "json_object":
            response_format = {"type": "json_object"}
        elif fmt is not None and fmt.type == "json_schema":
            schema = {
                "name": fmt.name or "output",
                "schema": fmt.schema_ or {},
                "strict": fmt.strict,
                "description": fmt.description,
            }
            response_format = {
                "type": "json_schema",
                "json_schema": {k: v for k, v in schema.items() if v is not None},
            }
        extra: dict[str, Any] = {}
        if tools and self.parallel_tool_calls is not None:
            extra["parallel_tool_calls"] = self.parallel_tool_calls
        joined = "\n\n".join(t for t in (self.instructions or "", instructions) if t.strip())
        return GenerationOptions(
            instructions=joined,
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            response_format=response_format,
            tools=tuple(tools),
            tool_choice=choice if tools else None,
            tool_turns=tool_turns,
            extra=extra,
        )


def _text(content: Any, param: str) -> str:
    if content is not None and not isinstance(content, str):
        for part in content:
            if part.type == "refusal":
                part.text = part.text or (part.model_extra or {}).get("refusal") or ""
                part.type = "text"
    return text_of(content, param)


def response_id(question_id: uuid.UUID | None) -> str:
    return PREFIX + (question_id or uuid.uuid4()).hex


def question_id_of(value: str, param: str) -> uuid.UUID:
    missing = NotFound(
        f"Response with id '{value}' not found.",
        code="response_not_found",
        details={"param": param},
    )
    if not value.startswith(PREFIX):
        raise missing
    try:
        return uuid.UUID(hex=value[len(PREFIX) :])
    except ValueError:
        raise missing from None


def annotations(text: str, citations: Sequence[ev.Citation]) -> list[dict[str, Any]]:
    """Each cited source at its first ``[n]`` marker (the end of the text when it has none)."""
    found = []
    for c in citations:
        marker = f"[{c.index}]"
        start = text.find(marker)
        start, end = (start, start + len(marker)) if start >= 0 else (len(text), len(text))
        if c.url:
            found.append(
                {
                    "type": "url_citation",
                    "url": c.url,
                    "title": c.title,
                    "start_index": start,
                    "end_index": end,
                }
            )
        else:
            found.append(
                {
                    "type": "file_citation",
                    "file_id": str(c.source_id),
                    "filename": c.title,
                    "index": start,
                }
            )
    return found


def message_item(
    item_id: str, text: str, notes: list[dict[str, Any]], status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": notes, "logprobs": []}],
    }


def call_item(call: ev.ToolCall | dict[str, Any], status: str = "completed") -> dict[str, Any]:
    data = (
        call
        if isinstance(call, dict)
        else {"id": call.id, "name": call.name, "arguments": call.arguments}
    )
    return {
        "type": "function_call",
        "id": f"fc_{data['id']}",
        "call_id": data["id"],
        "name": data["name"],
        "arguments": data["arguments"],
        "status": status,
    }


class Encoder:
    """Builds the Responses objects of one request (plain and streamed alike)."""

    def __init__(
        self,
        bot: Bot,
        data: ResponseIn | None,
        rid: str,
        *,
        created: float | None = None,
        previous: str | None = None,
    ) -> None:
        self.bot, self.data, self.id = bot, data, rid
        self.created = created or time.time()
        self.previous = previous
        self.message_id = "msg_" + rid[len(PREFIX) :]
        self.sequence = 0

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: tuple[int, int] | None = None,
        error: dict[str, str] | None = None,
        incomplete: str | None = None,
    ) -> dict[str, Any]:
        data = self.data
        tools = [
            t.model_dump(exclude_none=True) for t in (data.tools if data and data.tools else ())
        ]
        fmt = (
            data.text.format.model_dump(by_alias=True, exclude_none=True)
            if data and data.text and data.text.format
            else {"type": "text"}
        )
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": int(self.created),
            "status": status,
            "model": self.bot.slug,
            "output": output,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": data.instructions if data else None,
            "max_output_tokens": data.max_output_tokens if data else None,
            "metadata": (data.metadata if data else None) or {},
            "parallel_tool_calls": data.parallel_tool_calls is not False if data else True,
            "previous_response_id": self.previous,
            "store": data.store if data else True,
            "temperature": data.temperature if data else None,
            "top_p": data.top_p if data else None,
            "tool_choice": (data.tool_choice if data and data.tool_choice else "auto"),
            "tools": tools,
            "text": {"format": fmt},
            "truncation": "disabled",
            "user": data.user if data else None,
            "usage": None,
        }
        if usage is not None:
            body["usage"] = {
                "input_tokens": usage[0],
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": usage[1],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage[0] + usage[1],
            }
        return body

    def output(
        self,
        text: str,
        citations: Sequence[ev.Citation],
        calls: Sequence[ev.ToolCall | dict[str, Any]],
    ) -> list[dict[str, Any]]:
        items = (
            [message_item(self.message_id, text, annotations(text, citations))]
            if text or not calls
            else []
        )
        return items + [call_item(c) for c in calls]

    def finished(self, answer: Answer) -> dict[str, Any]:
        usage = (
            (answer.usage.prompt_tokens, answer.usage.completion_tokens) if answer.usage else (0, 0)
        )
        length = answer.finish_reason == "length"
        return self.response(
            "incomplete" if length else "completed",
            self.output(answer.text, answer.citations, answer.tool_calls),
            usage,
            incomplete="max_output_tokens" if length else None,
        )

    def event(self, kind: str, **fields: Any) -> str:
        self.sequence += 1
        return frame({"type": kind, "sequence_number": self.sequence - 1, **fields}, event=kind)


async def owned_exchange(db: Any, principal: Any, rid: str, param: str) -> conversations.Exchange:
    """The stored exchange a response id names, when this key may continue its conversation
    (a bot key: only those it opened); anything else is not found."""
    exchange = await conversations.get_exchange(
        db, principal=principal, question_id=question_id_of(rid, param)
    )
    if not sessions.key_owns(exchange.conversation, principal):
        raise NotFound(
            f"Response with id '{rid}' not found.",
            code="response_not_found",
            details={"param": param},
        )
    return exchange


async def previous_exchange(
    db: Any, principal: Any, bot: Bot, previous: str
) -> conversations.Exchange:
    exchange = await owned_exchange(db, principal, previous, "previous_response_id")
    if exchange.conversation.bot_id != bot.id:
        raise InvalidRequest(
            "previous_response_id names a response of another model",
            code="invalid_request",
            details={"param": "previous_response_id"},
        )
    return exchange


def continued(exchange: conversations.Exchange, messages: list[ModelMessage]) -> list[ModelMessage]:
    """The input after ``previous_response_id``. Input that only returns function results (the
    client ran the tools the previous response called) answers that response's question: the
    question, its calls and their outputs go to the model, as OpenAI continues a response."""
    if any(m.role == "user" for m in messages) or not any(m.role == "tool" for m in messages):
        return messages
    stored = (exchange.answer.metadata_ or {}).get("tool_calls") if exchange.answer else None
    calls = tuple(
        ModelToolCall(n, c["id"], c["name"], c["arguments"]) for n, c in enumerate(stored or ())
    )
    sent = {c.id for m in messages for c in m.tool_calls}
    known = sent | {c.id for c in calls}
    for n, m in enumerate(messages):
        if m.role == "tool" and m.tool_call_id not in known:
            raise InvalidRequest(
                f"No tool call found for function call output with call_id {m.tool_call_id}.",
                code="invalid_request",
                details={"param": f"input[{n}].call_id"},
            )
    asked = [ModelMessage("user", exchange.question.content)]
    if not sent:  # the client sent only the outputs: the calls are the previous response's
        asked.append(ModelMessage("assistant", "", tool_calls=calls))
    return [
        *(m for m in messages if m.role == "system"),
        *asked,
        *(m for m in messages if m.role != "system"),
    ]


@router.post("/responses", responses=STREAMS)
async def create_response(
    data: ResponseIn, request: Request, principal: PrincipalDep, db: DbDep
) -> Any:
    bot = await bot_of_model(db, principal, data.model)
    data.refuse_unrelayable()
    messages = data.messages()
    conversation_id = follows = None
    if data.previous_response_id:
        if not data.store:
            raise InvalidRequest(
                "previous_response_id needs store: true (a private turn continues nothing)",
                code="invalid_request",
                details={"param": "store"},
            )
        previous = await previous_exchange(db, principal, bot, data.previous_response_id)
        conversation_id = previous.conversation.id
        # An earlier response than the latest: the conversation branches from it.
        follows = (previous.answer or previous.question).id
        messages = continued(previous, messages)
    instructions, history, question, tool_turns = split_messages(messages, param="input")
    options = data.options(instructions, tool_turns)
    chat = runtime_of(request).chat
    chat.check_options(bot, options)
    opened = await open_turn(
        chat,
        caller_of(request, principal),
        door=DOOR,
        bot=bot,
        question=question,
        history=history,
        private=not data.store,
        client_session_id=data.user,
        conversation_id=conversation_id,
        continue_latest=False,
        require_credit=True,
        options=options,
        thread_key=thread_key(principal, data.user),
        follows_message_id=follows,
        # What it continued, as the client named it (GET reads it back even after a branch).
        metadata={"previous_response_id": data.previous_response_id} if follows else {},
    )
    turn, headers = opened.turn, decision_headers(opened.decision)
    encoder = Encoder(
        bot, data, response_id(turn.user_message_id), previous=data.previous_response_id
    )
    if not data.stream:
        answer = await turn.collect()
        if answer.error is not None:
            return failed_turn(answer.error, headers)
        return JSONResponse(encoder.finished(answer), headers=headers)
    response = sse_response(stream(encoder, turn))
    response.headers.update(headers)
    return response


async def stream(encoder: Encoder, turn: Any) -> AsyncIterator[str]:
    """Responses' streamed events: created, in_progress, the message item and its text part
    (deltas, done), each function call item, then completed, incomplete or failed."""
    event = encoder.event
    yield event("response.created", response=encoder.response("in_progress", []))
    yield event("response.in_progress", response=encoder.response("in_progress", []))
    item_id, text, citations, calls = encoder.message_id, "", (), []
    answer = Answer()
    opened = False

    def open_message() -> list[str]:
        return [
            event(
                "response.output_item.added",
                output_index=0,
                item=message_item(item_id, "", [], "in_progress"),
            ),
            event(
                "response.content_part.added",
                item_id=item_id,
                output_index=0,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            ),
        ]

    async for chat_event in turn.events():
        match chat_event:
            case ev.Delta(text=piece) | ev.Replace(text=piece):
                if not opened:
                    opened = True
                    for frame_text in open_message():
                        yield frame_text
                # The format can't retract text: a replacement follows what was sent.
                replaced = isinstance(chat_event, ev.Replace)
                delta = "\n\n" + piece if replaced else piece
                text = piece if replaced else text + piece
                yield event(
                    "response.output_text.delta",
                    item_id=item_id,
                    output_index=0,
                    content_index=0,
                    delta=delta,
                    logprobs=[],
                )
            case ev.Citations():
                citations = chat_event.citations
            case ev.ToolCall():
                calls.append(chat_event)
            case ev.Usage():
                answer.usage = chat_event
            case ev.Done():
                answer.done = chat_event
            case ev.Error(code=code, message=message):
                error = {"code": code, "message": message}
                yield event("error", code=code, message=message, param=None)
                yield event("response.failed", response=encoder.response("failed", [], error=error))
                return
    if not opened and not calls:
        opened = True
        for piece in open_message():
            yield piece
    index = 0
    if opened:
        notes = annotations(text, citations)
        for n, note in enumerate(notes):
            yield event(
                "response.output_text.annotation.added",
                item_id=item_id,
                output_index=0,
                content_index=0,
                annotation_index=n,
                annotation=note,
            )
        yield event(
            "response.output_text.done",
            item_id=item_id,
            output_index=0,
            content_index=0,
            text=text,
            logprobs=[],
        )
        yield event(
            "response.content_part.done",
            item_id=item_id,
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": text, "annotations": notes, "logprobs": []},
        )
        yield event(
            "response.output_item.done", output_index=0, item=message_item(item_id, text, notes)
        )
        index = 1
    for n, call in enumerate(calls, start=index):
        item = call_item(call)
        yield event(
            "response.output_item.added",
            output_index=n,
            item={**item, "arguments": "", "status": "in_progress"},
        )
        yield event(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=n,
            delta=call.arguments,
        )
        yield event(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=n,
            name=call.name,
            arguments=call.arguments,
        )
        yield event("response.output_item.done", output_index=n, item=item)
    answer.text, answer.citations, answer.tool_calls = text, citations, calls
    final = encoder.finished(answer)
    yield event(
        "response.incomplete" if final["status"] == "incomplete" else "response.completed",
        response=final,
    )


@router.get("/responses/{response_id}")
async def get_response(
    response_id: str, request: Request, principal: PrincipalDep, db: DbDep
) -> Any:
    """A stored response; a bot key reads only those of conversations it opened."""
    exchange = await owned_exchange(db, principal, response_id, "response_id")
    bot = await bots.get_bot(db, principal=principal, ref=exchange.conversation.bot_id)
    check_key_for_bot(request, bot, principal)
    previous = (exchange.question.metadata_ or {}).get("previous_response_id") or response_id_of(
        exchange.previous_question_id
    )
    encoder = Encoder(
        bot, None, response_id, created=exchange.question.created_at.timestamp(), previous=previous
    )
    headers = await read_headers(request, principal, bot)
    answer = exchange.answer
    if answer is None:
        return JSONResponse(encoder.response("in_progress", []), headers=headers)
    if answer.error_code:
        return JSONResponse(
            encoder.response(
                "failed", [], error={"code": answer.error_code, "message": answer.error or ""}
            ),
            headers=headers,
        )
    citations = [
        ev.Citation(
            c["index"],
            uuid.UUID(c["source_id"]),
            c["title"],
            c.get("url"),
            c.get("page"),
            c.get("score", 0.0),
        )
        for c in answer.citations or ()
    ]
    calls = (answer.metadata_ or {}).get("tool_calls") or []
    return JSONResponse(
        encoder.response(
            "completed",
            encoder.output(answer.content, citations, calls),
            (answer.prompt_tokens, answer.completion_tokens),
        ),
        headers=headers,
    )


def response_id_of(question_id: uuid.UUID | None) -> str | None:
    return response_id(question_id) if question_id else None


@router.delete("/responses/{response_id}")
async def delete_response(
    response_id: str, request: Request, principal: PrincipalDep, db: DbDep
) -> Any:
    keys.require(principal, Permission.CONVERSATIONS_WRITE)  # it deletes part of a transcript
    exchange = await owned_exchange(db, principal, response_id, "response_id")
    bot = await bots.get_bot(db, principal=principal, ref=exchange.conversation.bot_id)
    check_key_for_bot(request, bot, principal)
    await conversations.delete_exchange(db, principal=principal, question_id=exchange.question.id)
    return JSONResponse(
        {"id": response_id, "object": "response.deleted", "deleted": True},
        headers=await read_headers(request, principal, bot),
    )
