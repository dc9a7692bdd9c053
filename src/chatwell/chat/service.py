"""The chat engine: history -> retrieve -> prompt -> stream -> filter -> cite -> persist.

``ChatService.start`` validates a request and saves the user's turn (errors here are raised, so
a dialect can answer with an HTTP status); ``Turn.events`` then yields the neutral event stream
(``chatwell.domain.events``), which every dialect only encodes. The assistant's turn is saved in
a second short transaction after the stream; a failure or a disconnect mid-stream still records
both turns, with the error. ``private`` turns write nothing but a content-free usage row.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatwell.chat import persistence
from chatwell.chat.answer import Answer, OnEvent, collect
from chatwell.chat.citations import citation_json, citations_for, strip_unknown_markers
from chatwell.chat.condense import standalone_question
from chatwell.chat.filters import REPLACEMENT, ContentFilter
from chatwell.chat.links import LinkGuard, allowed_links, remove_foreign_links
from chatwell.chat.prompts import build_messages, grounding_of
from chatwell.domain.events import (
    ChatEvent,
    Citation,
    Citations,
    Delta,
    Done,
    Error,
    HistoryTurn,
    Notice,
    Replace,
    Status,
    ToolCall,
    Usage,
)
from chatwell.domain.ids import new_id
from chatwell.domain.models import AnswerSettings, HandoffSettings, ModelSettings
from chatwell.embedders.tokenizer import count_tokens
from chatwell.errors import InvalidRequest, ServiceUnavailable, database_unavailable
from chatwell.limits.policies import ChatLimits
from chatwell.llm.base import (
    NOT_IN_SOURCES,
    GenerationOptions,
    ModelDelta,
    ModelError,
    ModelFinish,
    ModelImage,
    ModelMessage,
    ModelRequest,
    ModelToolCall,
    ModelUsage,
)
from chatwell.llm.extractive import SUPPORT_BARS
from chatwell.llm.pricing import PriceTable
from chatwell.llm.registry import ModelRegistry
from chatwell.observability.tracing import span
from chatwell.retrieval.service import Passage, Retriever, SearchResult
from chatwell.services import handoff
from chatwell.services.conversation_bus import ConversationBus
from chatwell.services.sources import source_urls
from chatwell.storage.database import Database, unavailable_reason
from chatwell.storage.tables import Bot

log = logging.getLogger("chatwell.chat")
MAX_QUESTION_CHARS = 8_000
MAX_CLIENT_HISTORY = 50
DEFAULT_MAX_TOKENS = 512
RETRIEVAL_K = 6
FINISH_RETRY_PAUSES = (
    0.2,
    1.0,
    3.0,
)  # seconds between attempts to save an answer (database faults)
FOLLOW_UP_MAX_WORDS = (
    12  # a longer question with "it" or "that" in it is taken to say what it means
)
# "and on weekends?", "what about Sundays?": a question that continues the previous one ...
_CONTINUES = re.compile(
    r"^\W*(and|or|but|also|so|then|what about|how about|what if|same|ok|okay)\b", re.IGNORECASE
)
# ... or points back at it ("is it free?", "how do I cancel that?").
_POINTS_BACK = re.compile(
    r"\b(it|its|that|this|those|these|they|them|their|he|she|him|her|one|ones)\b", re.IGNORECASE
)
OFFLINE_NOTICE = (
    "Answered by chatwell's offline answerer: sentences quoted from this bot's sources, "
    "no language model. Configure a model for written answers."
)


@dataclass(slots=True)
class ChatRequest:
    bot: Bot
    question: str
    channel: str = "native"
    conversation_id: uuid.UUID | None = None
    history: Sequence[HistoryTurn] = ()
    private: bool = False
    # conversation_id, session_id and session_scope: a door's ``sessions.resolve_session`` result.
    session_id: str | None = None
    session_scope: str | None = None
    api_key_id: uuid.UUID | None = None
    client_ip: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    image: ModelImage | None = None
    temperature: float | None = None
    model: str | None = None  # a model name overriding the bot's, on the bot's provider
    options: GenerationOptions = field(default_factory=GenerationOptions)
    # A stateless client resends the whole history: under this key (its API key and user), a
    # history matching a stored exchange continues that conversation (``persistence.digest``).
    thread_key: str | None = None
    # The stored message a turn follows when it is not the latest (OpenAI's previous_response_id
    # naming an earlier response): the history stops there, later turns are another branch.
    follows_message_id: uuid.UUID | None = None


@dataclass(slots=True)
class Turn:
    """A started turn: ``events()`` streams the answer exactly once."""

    service: ChatService
    request: ChatRequest
    conversation_id: uuid.UUID | None
    user_message_id: uuid.UUID | None
    history: list[HistoryTurn]
    is_new_conversation: bool
    blocked: bool = False
    held_by_human: bool = False  # a person holds the conversation: the bot stays silent
    has_credit: bool | None = None  # read with the user's turn; None: not read yet
    started: float = field(default_factory=time.perf_counter)
    search: asyncio.Task[SearchResult] | None = (
        None  # started with the turn when its query was known
    )
    # What the search found for this turn, before judging whether it answers (the Playground
    # shows it); None until the search has answered, or when the turn never searched.
    found: list[Passage] | None = None
    # The answer's message id, known before it streams (doors that name it in every chunk, e.g.
    # Dify); stored under this id whether the turn completes, fails or is cancelled.
    answer_id: uuid.UUID = field(default_factory=new_id)

    async def collect(self, on_event: OnEvent | None = None) -> Answer:
        """Run the turn to its end (a door's one-piece reply)."""
        return await collect(self.events(), self.conversation_id, on_event)

    async def events(self) -> AsyncIterator[ChatEvent]:
        first = True
        stream = self.service._events(self)
        try:
            async for event in stream:
                if first and isinstance(event, Delta):
                    first = False
                    self.service._observe_first_token(self)
                yield event
        finally:
            await stream.aclose()


class ChatService:
    def __init__(
        self,
        db: Database,
        retriever: Retriever,
        models: ModelRegistry,
        prices: PriceTable,
        content_filter: ContentFilter,
        *,
        context_tokens: int = 8192,
    ):
        self.db = db
        self.retriever = retriever
        self.models = models
        self.prices = prices
        self.filter = content_filter
        self.context_tokens = context_tokens
        self.metrics: Any = None  # chatwell.observability.metrics.Metrics, when the app has one
        self.bus: ConversationBus | None = None  # tells a visitor's other listeners of a handoff
        self.limits: ChatLimits | None = None  # None: nothing is limited (a local, one-user run)
        self._saving: set[asyncio.Task[Any]] = set()  # turns being saved after their client left

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for the turns still being saved (a stream whose client left goes on saving its
        turn in the background): the server calls this before closing the database, so a
        shutdown loses no turn and leaves no connection open."""
        if self._saving:
            await asyncio.wait(set(self._saving), timeout=timeout)

    async def ensure_credit(self, bot: Bot) -> None:
        """For dialects that report an empty workspace before streaming (others get an ``Error``
        event ``service_unavailable`` from the stream itself)."""
        if not await persistence.has_credit(self.db, bot.workspace_id):
            raise ServiceUnavailable(
                "The workspace has run out of credits.", code="insufficient_credits"
            )

    async def start(self, request: ChatRequest) -> Turn:
        # NUL can not be stored (PostgreSQL text and JSON refuse it); nothing legitimate needs it.
        request.question = _without_nul(request.question)
        request.history = [HistoryTurn(t.role, _without_nul(t.content)) for t in request.history]
        request.metadata = _without_nul(request.metadata)
        if request.session_id is not None:
            request.session_id = _without_nul(request.session_id)
        question = request.question.strip()
        if not question:
            raise InvalidRequest("message must not be empty", code="invalid_request")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidRequest(
                f"message is longer than {MAX_QUESTION_CHARS} characters", code="message_too_long"
            )
        request.question = question
        if request.image is not None:
            resolved = self.models.resolve(
                ModelSettings.model_validate(request.bot.model_settings or {})
            )
            if not resolved.model.supports_images:
                raise InvalidRequest(
                    "this bot's model does not accept images", code="images_not_supported"
                )
        self.check_options(request.bot, request.options)
        client_history = _clean_history(request.history)
        if (
            request.conversation_id is None
            and request.thread_key
            and client_history
            and not request.private
        ):
            request.conversation_id = await persistence.conversation_by_digest(
                self.db,
                bot_id=request.bot.id,
                digest=persistence.digest(request.thread_key, client_history),
            )
        if self.filter.blocks_input(question):
            return Turn(self, request, None, None, [], True, blocked=True)
        search = None
        if not is_follow_up(question):
            # The retrieval query does not depend on the history: search while the user's turn
            # is being stored (the search runs here, the write in the database's thread).
            search = asyncio.ensure_future(
                self._search(request.bot, retrieval_query(question, client_history))
            )
        if request.private:
            return Turn(self, request, None, None, client_history, True, search=search)
        try:
            started = await persistence.start_turn(
                self.db,
                bot=request.bot,
                conversation_id=request.conversation_id,
                question=question,
                session_id=request.session_id,
                session_scope=request.session_scope,
                channel=request.channel,
                api_key_id=request.api_key_id,
                client_ip=request.client_ip,
                metadata=request.metadata,
                image={"media_type": request.image.media_type} if request.image else None,
                follows_message_id=request.follows_message_id,
            )
        except BaseException:
            await _cancel(search)
            raise
        # Stored turns are the truth; a client's own history only fills a conversation we lack.
        history = started.history or client_history
        if request.options.tool_turns and history[-1:] == [HistoryTurn("user", question)]:
            history = history[:-1]  # tool results answer the stored question: it is asked once
        return Turn(
            self,
            request,
            started.conversation_id,
            started.user_message_id,
            history,
            started.is_new,
            has_credit=started.has_credit,
            held_by_human=handoff.is_held(started.status),
            search=search,
        )

    def check_options(self, bot: Bot, options: GenerationOptions) -> None:
        """Refuse what the bot's model can not do (tools, JSON formats on the offline answerer):
        a caller's parameter is honoured or refused, never dropped."""
        param = options.needs_tools()
        if param is None:
            return
        resolved = self.models.resolve(ModelSettings.model_validate(bot.model_settings or {}))
        if not getattr(resolved.model, "supports_tools", False):
            what = (
                "the offline answerer"
                if resolved.is_offline
                else f"the model {resolved.model.name!r}"
            )
            raise InvalidRequest(
                f"'{param}' is not supported by this bot: it answers with {what}, which "
                "takes no tools, JSON formats or sampling penalties. Configure an "
                "OpenAI-compatible model for it.",
                code="unsupported_parameter",
                details={"param": param},
            )

    async def _search(self, bot: Bot, query: str) -> SearchResult:
        return await self.retriever.search(bot_id=bot.id, query=query, k=RETRIEVAL_K)

    async def _follow_up_query(
        self, turn: Turn, resolved: Any, answer_settings: AnswerSettings
    ) -> str:
        """What a follow-up is searched as: the model's standalone question when the bot has a
        model and keeps ``condense_follow_ups`` on, else the previous question joined to it."""
        question = turn.request.question
        joined = retrieval_query(question, turn.history)
        if joined == question or resolved.is_offline or not answer_settings.condense_follow_ups:
            return joined
        model_name = (
            turn.request.model
            or ModelSettings.model_validate(turn.request.bot.model_settings or {}).model
            or resolved.model.name
        )
        return (
            await standalone_question(resolved.model, model_name, turn.history, question) or joined
        )

    async def _events(self, turn: Turn) -> AsyncIterator[ChatEvent]:
        answer = self._answer(turn)
        try:
            async for event in answer:
                yield event
        finally:
            # Closed here, not when the garbage collector gets to it: a stopped turn's answer is
            # stored before the door says it ended (Dify's message_end after a stop).
            await answer.aclose()
            await _cancel(turn.search)  # a turn that ended before its search was needed

    async def _answer(self, turn: Turn) -> AsyncIterator[ChatEvent]:
        request, bot = turn.request, turn.request.bot
        if turn.blocked:
            yield Error("content_filtered", "The message was blocked by the content filter.")
            return
        if turn.held_by_human:
            if turn.conversation_id is not None and turn.user_message_id is not None:
                await handoff.visitor_wrote(self.bus, turn.conversation_id, turn.user_message_id)
            yield Notice(
                "human_agent",
                "A person from the team has this conversation and will reply here.",
                level="info",
            )
            yield Done(turn.conversation_id, None, turn.user_message_id)
            return
        answer_settings = AnswerSettings.model_validate(bot.answer_settings or {})
        model_settings = ModelSettings.model_validate(bot.model_settings or {})
        handoff_settings = HandoffSettings.model_validate(bot.handoff_settings or {})
        explicit = handoff.asks_explicitly(request.question)
        insists = explicit or (
            handoff_settings.trigger in ("auto", "both")
            and handoff.asks_for_human(request.question)
        )
        if await self._auto_handoff(turn, handoff_settings, insists=insists):
            yield Notice(
                "handoff_requested",
                "Connecting you with a person from the team; they will reply here.",
                level="info",
            )
            yield Done(turn.conversation_id, None, turn.user_message_id)
            return
        if explicit and handoff_settings.enabled and turn.conversation_id is not None:
            # Asked for a person and nobody is online: say so, not "I could not find that".
            yield _offline_notice(handoff_settings)
            yield Done(turn.conversation_id, None, turn.user_message_id)
            return
        text_parts: list[str] = []
        outcome = _Outcome()
        try:
            credit = turn.has_credit
            if credit is None:  # a private turn stored nothing, so nothing read the balance yet
                credit = await persistence.has_credit(self.db, bot.workspace_id)
            if not credit:
                outcome.error = Error(
                    "service_unavailable", "The workspace has run out of credits."
                )
                yield outcome.error
                return
            yield Status("retrieving")
            passages: list[Passage] = []
            allowed: frozenset[str] | None = None
            relevant = False
            resolved = self.models.resolve(model_settings)
            try:
                search, turn.search = turn.search, None
                if search is None:
                    search = self._search(
                        bot, await self._follow_up_query(turn, resolved, answer_settings)
                    )
                result = await search
                turn.found = result.passages
                # Related by meaning or sharing a word: whether it *answers* is the answerer's
                # judgement (the offline one sentence by sentence, a model by its prompt).
                passages = result.passages
                relevant = result.relevant or any(p.keyword > 0 for p in passages)
            except Exception:
                log.exception("retrieval failed for bot %s", bot.id)
                turn.found = []
                yield Notice(
                    "rag_unavailable",
                    "Knowledge retrieval is unavailable; answering without sources.",
                )
            if resolved.fallback_reason:
                yield Notice(
                    "model_unavailable", f"Using the offline answerer: {resolved.fallback_reason}."
                )
            elif resolved.is_offline and turn.is_new_conversation:
                yield Notice("offline_answerer", OFFLINE_NOTICE, level="info")
            yield Status("generating")
            options = request.options
            if (not relevant or not passages) and not options.structured:
                # Nothing relevant: say so instead of letting a model guess.
                outcome.model = resolved.model.name
                passages = []
                async for event in self._abstain(
                    turn, answer_settings, handoff_settings, text_parts
                ):
                    yield event
            else:
                if not relevant:
                    passages = []  # a structured request is answered by the model, with no sources
                grounding = grounding_of(passages)
                # The caller may ask for fewer tokens than the bot allows, never for more.
                max_tokens = min(
                    [t for t in (options.max_tokens, model_settings.max_tokens) if t]
                    or [DEFAULT_MAX_TOKENS]
                )
                caller = _caller_instructions(options.instructions)
                messages = build_messages(
                    instructions=bot.instructions or "",
                    grounding=grounding,
                    history=turn.history,
                    question=request.question,
                    context_tokens=self.context_tokens,
                    reserve_tokens=max_tokens + count_tokens(caller),
                    language=answer_settings.language,
                )
                if caller:  # under the bot's own instructions and rules, which win
                    messages[0] = ModelMessage("system", f"{messages[0].content}\n\n{caller}")
                if request.image is not None:
                    messages[-1] = ModelMessage("user", messages[-1].content, image=request.image)
                messages.extend(options.tool_turns)
                temperature = next(
                    (
                        t
                        for t in (
                            options.temperature,
                            request.temperature,
                            model_settings.temperature,
                        )
                        if t is not None
                    ),
                    None,
                )
                model_request = ModelRequest(
                    messages=messages,
                    model=request.model or model_settings.model or resolved.model.name,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    question=request.question,
                    grounding=grounding,
                    min_support=SUPPORT_BARS[answer_settings.strictness],
                    top_p=options.top_p,
                    seed=options.seed,
                    stop=options.stop,
                    response_format=options.response_format,
                    tools=options.tools,
                    tool_choice=options.tool_choice,
                    extra=options.extra,
                )
                outcome.model = model_request.model
                # Links other than the bot's own sources' URLs never leave (chatwell.chat.links);
                # the guard holds back only a tail that may still be a URL, so streaming stays live.
                allowed = allowed_links(
                    [*(p.url for p in passages), *await source_urls(self.db, bot.id)]
                )
                links = LinkGuard(allowed)
                # The answer's first characters are held until they can not be NOT_IN_SOURCES.
                verdict = _Verdict()
                with span(
                    "chatwell.generation",
                    model=model_request.model,
                    channel=request.channel,
                    offline=resolved.is_offline,
                ) as traced:
                    stream = resolved.model.stream(model_request)
                    try:
                        async for event in stream:
                            if isinstance(event, ModelDelta):
                                safe = links.feed(verdict.feed(event.text))
                                if safe:
                                    text_parts.append(safe)
                                    yield Delta(safe)
                            elif isinstance(event, ModelToolCall):
                                # Arguments go to the caller's program; links in them obey the same rule.
                                outcome.tool_calls.append(
                                    ToolCall(
                                        event.index,
                                        event.id,
                                        event.name,
                                        remove_foreign_links(event.arguments, allowed),
                                    )
                                )
                            elif isinstance(event, ModelFinish):
                                outcome.finish_reason = event.reason
                            elif isinstance(event, ModelUsage):
                                outcome.prompt_tokens = event.prompt_tokens
                                outcome.completion_tokens = event.completion_tokens
                    finally:
                        await stream.aclose()  # type: ignore[attr-defined]
                        traced.set(
                            prompt_tokens=outcome.prompt_tokens,
                            completion_tokens=outcome.completion_tokens,
                        )
                if verdict.abstained() and not outcome.tool_calls:
                    passages = []
                    async for event in self._abstain(
                        turn, answer_settings, handoff_settings, text_parts
                    ):
                        yield event
                else:
                    outcome.answered = True
                    tail = links.feed(verdict.flush()) + links.flush()
                    if tail:
                        text_parts.append(tail)
                        yield Delta(tail)
                    for call in outcome.tool_calls:
                        yield call
            answer = "".join(text_parts)
            if not options.structured:  # JSON may hold "[3]" that is no citation marker
                answer = strip_unknown_markers(answer, len(passages))
            if self.filter.blocks_output(answer):
                answer = REPLACEMENT
                passages = []
                yield Replace(answer)
            outcome.text = answer
            if passages and answer_settings.citations_enabled:
                outcome.citations = citations_for(
                    answer,
                    passages,
                    include_links=answer_settings.include_links,
                    allowed_links=allowed,
                )
                yield Citations(outcome.citations)
            cost = self.prices.cost(outcome.model, outcome.prompt_tokens, outcome.completion_tokens)
            yield Usage(outcome.prompt_tokens, outcome.completion_tokens, outcome.model, cost)
            message_id = await self._finish(turn, outcome, strict=True)
            outcome.saved = True
            self._observe_turn(turn, outcome)
            finish = "tool_calls" if outcome.tool_calls else outcome.finish_reason
            yield Done(
                turn.conversation_id,
                message_id,
                turn.user_message_id,
                answered=outcome.answered,
                finish_reason=finish,
            )
        except ModelError as exc:
            outcome.text = "".join(text_parts)
            outcome.error = Error(exc.code, exc.message)
            yield outcome.error
        except Exception as exc:
            outcome.text = "".join(text_parts)
            reason = unavailable_reason(exc)
            if reason is not None:
                log.warning(
                    "chat turn of bot %s stopped: %s (%s)", bot.id, reason, type(exc).__name__
                )
                outcome.error = Error(reason, database_unavailable(reason).message)
            else:
                log.exception("chat turn failed for bot %s", bot.id)
                outcome.error = Error("internal_error", "The answer could not be completed.")
            yield outcome.error
        finally:
            if not outcome.saved:
                if outcome.error is None:  # the client went away mid-stream
                    outcome.text = "".join(text_parts)
                    outcome.error = Error(
                        "cancelled", "The client disconnected before the answer was complete."
                    )
                # Shielded: a cancelled request must still record its turn.
                saving = asyncio.ensure_future(self._finish(turn, outcome))
                self._saving.add(saving)
                saving.add_done_callback(self._saving.discard)
                await asyncio.shield(saving)

    async def _abstain(
        self,
        turn: Turn,
        answer_settings: AnswerSettings,
        handoff_settings: HandoffSettings,
        text_parts: list[str],
    ) -> AsyncIterator[ChatEvent]:
        """Say that the sources do not answer (and offer a person, when the bot hands off)."""
        text_parts.append(answer_settings.not_found_message)
        yield Delta(answer_settings.not_found_message)
        offer = await self._offer_handoff(turn, handoff_settings)
        if offer is not None:
            yield offer

    def _observe_first_token(self, turn: Turn) -> None:
        if self.metrics is not None:
            self.metrics.ttft.labels(turn.request.channel).observe(
                time.perf_counter() - turn.started
            )

    def _observe_turn(self, turn: Turn, outcome: _Outcome) -> None:
        if self.metrics is None:
            return
        channel = turn.request.channel
        label = (
            outcome.error.code if outcome.error else "answered" if outcome.answered else "abstained"
        )
        self.metrics.turns.labels(channel, label).inc()
        self.metrics.tokens.labels(channel, outcome.model, "prompt").inc(outcome.prompt_tokens)
        self.metrics.tokens.labels(channel, outcome.model, "completion").inc(
            outcome.completion_tokens
        )

    async def _auto_handoff(self, turn: Turn, settings: HandoffSettings, *, insists: bool) -> bool:
        """A visitor insisting on a person is handed off at once when an agent is online: an explicit
        request ("talk to a person") whatever the trigger (typing it is pressing the button), a looser
        mention of a person when the bot hands off by itself (trigger ``auto``/``both``)."""
        if not (insists and settings.enabled and turn.conversation_id is not None):
            return False
        status, available = await handoff.request_handoff(
            self.db,
            bot=turn.request.bot,
            conversation_id=turn.conversation_id,
            session_id=None,
            bus=self.bus,
        )
        return available and handoff.is_held(status)

    async def _offer_handoff(self, turn: Turn, settings: HandoffSettings) -> Notice | None:
        """When the bot could not answer: hand off (auto/both, an agent online), or say that nobody
        is online (the widget then offers the contact form)."""
        if (
            not settings.enabled
            or settings.trigger not in ("auto", "both")
            or turn.conversation_id is None
        ):
            return None
        status, available = await handoff.request_handoff(
            self.db,
            bot=turn.request.bot,
            conversation_id=turn.conversation_id,
            session_id=None,
            bus=self.bus,
        )
        if available and handoff.is_held(status):
            return Notice(
                "handoff_requested",
                "Connecting you with a person from the team; they will reply here.",
                level="info",
            )
        return _offline_notice(settings)

    async def _finish(
        self, turn: Turn, outcome: _Outcome, *, strict: bool = False
    ) -> uuid.UUID | None:
        """Store the answer (whole, in one transaction), retrying a database that is briefly locked
        or reconnecting. ``strict``: raise when it still fails, so the client hears that the answer
        was not saved instead of a ``done``; otherwise (recording an error turn) log and go on."""
        cost = self.prices.cost(outcome.model, outcome.prompt_tokens, outcome.completion_tokens)
        message_id = turn.answer_id  # the same id on every attempt: a retry never stores it twice
        for attempt, pause in enumerate((*FINISH_RETRY_PAUSES, None)):
            try:
                return await persistence.finish_turn(
                    self.db,
                    bot=turn.request.bot,
                    conversation_id=turn.conversation_id,
                    content=outcome.text,
                    tool_calls=[
                        {"id": c.id, "name": c.name, "arguments": c.arguments}
                        for c in outcome.tool_calls
                    ]
                    or None,
                    digest=self._digest_after(turn, outcome),
                    citations=[citation_json(c) for c in outcome.citations]
                    if outcome.citations
                    else None,
                    error_code=outcome.error.code if outcome.error else None,
                    error=outcome.error.message if outcome.error else None,
                    model=outcome.model,
                    prompt_tokens=outcome.prompt_tokens,
                    completion_tokens=outcome.completion_tokens,
                    cost=cost,
                    api_key_id=turn.request.api_key_id,
                    channel=turn.request.channel,
                    message_id=message_id,
                    answered=None if outcome.error else outcome.answered,
                )
            except Exception as exc:
                if pause is not None and unavailable_reason(exc) is not None:
                    log.warning(
                        "saving the answer of conversation %s: %s, attempt %d; retrying",
                        turn.conversation_id,
                        type(exc).__name__,
                        attempt + 1,
                    )
                    await asyncio.sleep(pause)
                    continue
                if strict:
                    raise
                log.exception(
                    "could not save the assistant turn of conversation %s", turn.conversation_id
                )
                return None
        return None

    @staticmethod
    def _digest_after(turn: Turn, outcome: _Outcome) -> str | None:
        """The digest a client's resent history will have once it holds this answer."""
        request = turn.request
        if not request.thread_key or outcome.error is not None or not outcome.text:
            return None
        exchange = [
            *_clean_history(request.history),
            HistoryTurn("user", request.question),
            HistoryTurn("assistant", outcome.text),
        ]
        return persistence.digest(request.thread_key, exchange)


@dataclass(slots=True)
class _Outcome:
    text: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    citations: tuple[Citation, ...] = ()
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    error: Error | None = None
    saved: bool = False
    answered: bool = False  # from the sources; False: the bot said they do not answer the question


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    """Stop a task nobody will wait for, and collect its outcome (no "never retrieved" warning)."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])  # the caller's own cancellation still comes through
    if not task.cancelled():
        task.exception()  # marked retrieved


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _clean_history(history: Sequence[HistoryTurn]) -> list[HistoryTurn]:
    kept = [
        HistoryTurn(t.role, t.content[:MAX_QUESTION_CHARS])
        for t in history
        if t.content and t.role in ("user", "assistant")
    ]
    return kept[-MAX_CLIENT_HISTORY:]


def is_follow_up(question: str) -> bool:
    """Whether ``question`` leans on the previous one: it continues it ("and on weekends?") or,
    being short, points back at it ("is it free?"). "How do I get started?" and "croissants?"
    say what they mean and are searched alone, whatever came before."""
    if _CONTINUES.search(question):
        return True
    return len(question.split()) <= FOLLOW_UP_MAX_WORDS and bool(_POINTS_BACK.search(question))


def _caller_instructions(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    return (
        "The caller adds these instructions. Follow them where they do not conflict with your "
        f"instructions and rules above, which always win:\n<caller_instructions>\n{text}\n</caller_instructions>"
    )


def retrieval_query(question: str, history: Sequence[HistoryTurn]) -> str:
    """A follow-up is searched together with the user's previous question (the previous
    *other* one: a follow-up asked twice still means what it meant the first time)."""
    if not is_follow_up(question):
        return question
    asked = _same_question(question)
    previous = next(
        (
            t.content
            for t in reversed(history)
            if t.role == "user" and _same_question(t.content) != asked
        ),
        "",
    )
    return f"{previous} {question}".strip()


def _same_question(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


class _Verdict:
    """Holds back the start of a model's answer until it is clear whether the model answered or
    said NOT_IN_SOURCES (the prompt's way, and the offline answerer's, to say the sources do not
    answer): a few characters of delay, never a leaked marker."""

    def __init__(self) -> None:
        self.held = ""
        self.decided = False

    def feed(self, text: str) -> str:
        if self.decided:
            return text
        self.held += text
        head = self._head()
        if head.startswith(NOT_IN_SOURCES) or (NOT_IN_SOURCES.startswith(head)):
            return ""  # the marker, or maybe its beginning: keep holding (the rest is dropped)
        self.decided = True
        released, self.held = self.held, ""
        return released

    def abstained(self) -> bool:
        """After the stream: the model said NOT_IN_SOURCES, or nothing at all."""
        return not self.decided

    def flush(self) -> str:
        released, self.held = self.held, ""
        return released

    def _head(self) -> str:
        return self.held.lstrip(" \n\t*_`\"'")


def _offline_notice(settings: HandoffSettings) -> Notice:
    return Notice(
        "handoff_offline",
        settings.offline_message
        or "Nobody from the team is online right now. Leave your details and we will get back to you.",
        level="info",
    )
