"""One reply from the AI provider: context, the streamed request, and saving whatever came back.

A reply is written by a job (reply_write), an asyncio task in the ASGI worker started when the
message is sent, not tied to any request: a closed tab does not end it. The job publishes the
reply's events on the relay (conversations.relay), which any page follows. The reply is saved
once when it ends or breaks, with a checkpoint every CHECKPOINT_SECONDS (also a heartbeat while
the provider is silent) so a crashed worker loses little; never a write per token.
"""

import asyncio
import contextvars
import copy
import itertools
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, NamedTuple

import openai
from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from aimodels.models import AIModel
from aimodels.services import (
    FailureKind,
    ProviderError,
    ReplyPiece,
    ToolCall,
    error_describe,
    reply_pieces,
    title_ask,
)
from conversations import lookups, tokens
from chatter.db import connection_release
from conversations.context import DEFAULT_MARGIN, ContextPlan, ContextTooLong, select_context
from conversations.markdown import MarkdownBlocks, render_markdown
from conversations.models import STOPPED, Conversation, Message, Step
from conversations.relay import relay

logger = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 3.0
STOP_POLL_SECONDS = 0.5
SERVER_STOPPED = "The server stopped before the reply was finished."
CUT_SHORT = "The reply broke off before it was finished."
LENGTH_LIMIT = "The reply reached its length limit ({limit:,} tokens) and stops there."
REPLY_STATE = [
    "content", "content_html", "status", "error", "usage", "context_omitted", "steps", "token_count", "updated_at"
]
# Replies that go back to the model as context: finished ones, and the part of a broken one
# that the user saw.
USABLE = (Message.Status.COMPLETE, Message.Status.INTERRUPTED)


# Work no request waits for (replies' jobs, titles), referenced until done.
BACKGROUND: set[asyncio.Task] = set()


def _in_background(coroutine) -> asyncio.Task:
    # In a context of its own: not the request's that started it (whose thread, for the ORM's
    # sync calls, ends with the request). Its ORM calls share asgiref's one thread for work
    # outside requests.
    task = asyncio.get_running_loop().create_task(
        _released(coroutine), name=coroutine.__name__, context=contextvars.Context()
    )
    BACKGROUND.add(task)
    task.add_done_callback(BACKGROUND.discard)
    return task


async def _released(coroutine):
    # No request ends to close the connection background work used. It all shares one (asgiref
    # runs its ORM calls in one thread): the last piece of work to end gives it back to the pool.
    try:
        return await coroutine
    finally:
        me = asyncio.current_task()
        if not any(task is not me and not task.done() for task in BACKGROUND):
            await sync_to_async(connection_release)()


async def conversation_title_generate(*, conversation: Conversation, model: AIModel, text: str) -> None:
    """Replace the first words that stand in as a new conversation's title with a few words the
    model writes. A title the user chose meanwhile stays; a failure leaves the first words."""
    fallback = conversation.title_from(text)
    try:
        title = await title_ask(model=model, text=text)
        if title:
            await Conversation.objects.filter(pk=conversation.pk, title=fallback).aupdate(title=title)
    except (ProviderError, openai.OpenAIError) as error:
        kind = error_describe(error=error, model=model).kind
        logger.info("Title not generated: kind=%s conversation=%s", kind, conversation.public_id)
    except DatabaseError as error:  # e.g. no pooled connection free in time: the first words stay
        logger.warning("Title not saved: error=%s conversation=%s", type(error).__name__, conversation.public_id)


@dataclass(frozen=True, slots=True)
class TextAdded:
    """More text of the reply, after the last finished block: shown as plain text for now."""

    text: str


@dataclass(frozen=True, slots=True)
class BlocksFinished:
    """Blocks of the reply's Markdown that are finished, rendered and cleaned (`html`), and the
    text after them that is not a finished block yet (`rest`), which the plain text shown
    becomes."""

    html: str
    rest: str


@dataclass(frozen=True, slots=True)
class StepsChanged:
    """The reply's web lookups changed (one started, or ended): all of them, rendered."""

    html: str


class StopRequested(Exception):
    pass


class ConversationDeleted(Exception):
    """The reply's conversation was deleted while the reply was being started."""


class ModelUnusable(Exception):
    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the log line says about a reply that did not complete: the level (WARNING when the
    provider or the server's configuration failed it, INFO when the user or the model's state
    ended it), a short machine-readable kind, and what the provider told us, where it did."""

    level: int
    kind: str
    status: int | None = None
    code: str | None = None
    request_id: str | None = None
    error: str | None = None  # the exception's class name


def _log_fields(reply: Message) -> str:
    # Ids, the model's name and its endpoint's host only: never the key, the user's text or the
    # model's text. The host is for whoever reads the log; users are never shown it.
    model = reply.model
    return (
        f"model={model.pk} model_name={model.name} host={model.endpoint_host} "
        f"conversation={reply.conversation.public_id} reply={reply.pk}"
    )


def _outcome_log(reply: Message, outcome: _Outcome) -> None:
    found = {
        "kind": outcome.kind,
        "status": outcome.status,
        "code": outcome.code,
        "request_id": outcome.request_id,
        "error": outcome.error,
    }
    cause = " ".join(f"{name}={value}" for name, value in found.items() if value is not None)
    logger.log(outcome.level, "Reply %s: %s %s", reply.status, cause, _log_fields(reply))


def _unusable_kind(model: AIModel) -> str:
    if not model.is_active:
        return "model_inactive"
    if model.api_key_env and not model.api_key_is_set:
        return FailureKind.MISSING_KEY
    return "model_unusable"


class Context(NamedTuple):
    """The messages to send for a reply, how many older ones were left out, and the tokens they
    come to (as select_context counts them: with the reply priming)."""

    messages: list[dict[str, Any]]
    omitted: int
    tokens: int


# Room kept in the context for the results of a lookup the user's message asked for (its text
# is at most lookups.RESULT_CHARACTERS, about 1,000 tokens of English): older messages give way.
LOOKUP_RESERVE_TOKENS = 1_500


async def context_build(*, reply: Message, model: AIModel) -> Context:
    """The messages to send for `reply` and how many older ones were left out (see context_read)."""
    return await sync_to_async(context_read)(reply=reply, model=model)


# Messages read at a time, newest first, while choosing a context: a long conversation is read
# back only as far as the model's window reaches (and counted beyond it), not whole.
CONTEXT_CHUNK = 500


def context_read(*, reply: Message, model: AIModel) -> Context:
    """The messages to send for `reply` and how many older ones were left out. Chooses from the
    stored token counts, read newest first CONTEXT_CHUNK at a time until the window is full (one
    query for most conversations; a long one adds a query per chunk and one to count the rest),
    then loads the text of the kept messages only (another query). Nothing is tokenized here.
    A reply's lookups go in as the messages before it; a lookup the reply is about to make gets
    LOOKUP_RESERVE_TOKENS of room where the window has it. Raises ContextTooLong when even the
    last message does not fit, and ConversationDeleted when no message comes before the reply
    (its conversation is gone)."""
    sent_before = Q(role=Message.Role.USER) | Q(role=Message.Role.ASSISTANT, status__in=USABLE)
    # In the order they were written (a message's id; the page's order of creation times is the same).
    # The reply's branch: the active one, which a reply being written is on (no branch changes meanwhile).
    history_rows = Message.objects.filter(
        sent_before, conversation_id=reply.conversation_id, active=True
    ).order_by("-pk")
    counted: list[tuple[int, int]] = []  # oldest first, as select_context wants them
    older_than = reply.pk
    while True:
        chunk = list(history_rows.filter(pk__lt=older_than).values_list("pk", "token_count")[:CONTEXT_CHUNK])
        counted[:0] = [(pk, count or 0) for pk, count in reversed(chunk)]
        whole = len(chunk) < CONTEXT_CHUNK  # nothing older is left to read
        if not counted:  # a reply always follows its question: the conversation was deleted meanwhile
            raise ConversationDeleted
        plan, reserve = _context_plan(reply, model, counted)
        if plan.omitted or whole:
            break
        older_than = counted[0][0]
    omitted = plan.omitted if whole else plan.omitted + history_rows.filter(pk__lt=counted[0][0]).count()
    # The kept are the newest: all those sent from the first kept on (not a list of ids to match).
    kept = history_rows.filter(pk__gte=plan.keys[0], pk__lt=reply.pk).values_list("pk", "role", "content", "steps")
    texts = {pk: (role, content, steps) for pk, role, content, steps in kept}
    system_prompt = reply.conversation.system_prompt
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for pk in plan.keys:
        if pk not in texts:  # deleted meanwhile, with its conversation
            continue
        role, content, steps = texts[pk]
        messages += [{"role": "system", "content": Step.from_json(step).context_text()} for step in steps or ()]
        messages.append({"role": role, "content": content})
    return Context(messages, omitted, plan.total_tokens - reserve)


def _context_plan(reply: Message, model: AIModel, counted: list[tuple[int, int]]) -> tuple[ContextPlan, int]:
    """select_context for these messages, with room kept for the reply's pending lookup when the
    window has it (else without): the plan and the room kept."""
    def plan(reserve: int) -> tuple[ContextPlan, int]:
        return select_context(
            system_tokens=reply.conversation.system_prompt_tokens + reserve,
            history=counted,
            context_window=model.context_window,
            max_completion_tokens=model.max_completion_tokens,
            margin=DEFAULT_MARGIN,
        ), reserve

    if reply.steps:
        with suppress(ContextTooLong):
            return plan(LOOKUP_RESERVE_TOKENS)
    return plan(0)


def _context_or_none(reply: Message) -> Context | None:
    """The context, or None when it does not fit (the job then fails the reply with the reason)
    or the conversation is gone (the job then ends quietly)."""
    try:
        return context_read(reply=reply, model=reply.model)
    except (ContextTooLong, ConversationDeleted):
        return None


# The replies being written here, each with the event that stops it. A stop served by a worker
# the relay does not reach is the database's flag: read for all of them in one query every
# STOP_POLL_SECONDS (not one query each).
_WRITING: dict[int, asyncio.Event] = {}
_stops_watch: asyncio.Task | None = None


def _stops_watched(pk: int, stopped: asyncio.Event) -> None:
    global _stops_watch
    _WRITING[pk] = stopped
    if _stops_watch is None or _stops_watch.done() or _stops_watch.get_loop() is not asyncio.get_running_loop():
        _stops_watch = _in_background(_stops_watch_run())


async def _stops_watch_run() -> None:
    while _WRITING:
        await asyncio.sleep(STOP_POLL_SECONDS)
        if not (watched := dict(_WRITING)):
            return
        try:
            asked = Message.objects.filter(pk__in=watched, stop_requested=True).values_list("pk", flat=True)
            async for pk in asked:
                watched[pk].set()
        except DatabaseError as error:  # the relay still stops them; the flag is read again next time
            logger.warning("Stops not read: error=%s replies=%s", type(error).__name__, len(watched))


async def _until_stopped(
    chunks: AsyncGenerator, pk: int, *, stopped: asyncio.Event, checkpoint: Callable[[], Awaitable[None]]
) -> AsyncIterator:
    """The chunks of `chunks` until the user presses stop: at once when the stop comes through
    the relay (`stopped`), else seen in the database within STOP_POLL_SECONDS (also while the
    provider is silent; a stop served by a worker the relay does not reach). Calls `checkpoint`
    every CHECKPOINT_SECONDS, text or not, so a reply that is still alive never looks abandoned
    (STALE_STREAM)."""
    loop = asyncio.get_running_loop()
    iterator = aiter(chunks)
    pending: asyncio.Future | None = None
    stop = asyncio.ensure_future(stopped.wait())
    _stops_watched(pk, stopped)
    last_checkpoint = loop.time()
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending, stop}, timeout=CHECKPOINT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            if stop in done:
                raise StopRequested
            if done:
                future, pending = pending, None
                try:
                    chunk = future.result()
                except StopAsyncIteration:
                    return
                yield chunk
            if loop.time() - last_checkpoint >= CHECKPOINT_SECONDS:
                await checkpoint()
                last_checkpoint = loop.time()
    finally:
        if _WRITING.get(pk) is stopped:
            del _WRITING[pk]
        stop.cancel()
        if pending is not None:
            pending.cancel()  # ends the source, which is running inside that future
        else:
            await chunks.aclose()  # close the provider's response now, not when collected


async def _checkpoint(reply: Message, text: str, steps: list[Step]) -> None:
    await Message.objects.filter(pk=reply.pk).aupdate(
        content=text, steps=[step.as_json() for step in steps], updated_at=timezone.now()
    )


def reply_start_soon(*, reply: Message) -> None:
    """From a sync view under ASGI, once `reply` is saved pending: its context is read and the
    reply claimed here, in the view's thread, and its job starts in the worker's event loop,
    where it asks the provider at once, while the page's stream connects. Without an event loop
    to run a job in (WSGI, the sync test client), or when the database fails here, the reply
    stays pending and the page's stream starts it instead (reply_start)."""
    # asgiref records the event loop of the thread that runs a sync view (what async_to_sync uses).
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or loop.is_closed():
        return
    try:
        context = _context_or_none(reply)
        claimed = Message.objects.filter(pk=reply.pk, status=Message.Status.PENDING).update(
            status=Message.Status.STREAMING, updated_at=timezone.now()
        )
    except DatabaseError as error:
        logger.warning("Reply not started: error=%s reply=%s", type(error).__name__, reply.pk)
        return
    if claimed:
        # The job's own copy: the view goes on rendering `reply` while the job changes its state.
        job_reply = copy.copy(reply)
        job_reply.conversation = copy.copy(reply.conversation)
        loop.call_soon_threadsafe(lambda: _in_background(_reply_open(job_reply, context)))


async def _reply_open(reply: Message, context: Context | None) -> None:
    # Not waiting for Redis (when the relay is there) to know: the provider is asked meanwhile.
    if (stopped := await relay.open(reply.pk, wait=False)) is not None:
        await reply_write(reply_id=reply.pk, stopped=stopped, reply=reply, context=context)


async def reply_start(*, reply_id: int) -> None:
    """Start writing the reply as a job here, unless a job (here or on another worker) already
    has it: the database decides, by claiming the pending reply (one UPDATE, atomic across
    workers); only the job that claimed it opens it on the relay. Once this returns, the relay
    knows a reply claimed here, so a page can follow it at once (one claimed by another worker:
    as soon as that worker has opened it)."""
    # Shielded: a page that goes away meanwhile must not leave the reply claimed with no job.
    await asyncio.shield(_in_background(_reply_claim(reply_id)))


async def _reply_claim(reply_id: int) -> None:
    try:
        claimed = await Message.objects.filter(pk=reply_id, status=Message.Status.PENDING).aupdate(
            status=Message.Status.STREAMING, updated_at=timezone.now()
        )
    except DatabaseError as error:  # e.g. no pooled connection free in time: still pending, a page asks again
        logger.warning("Reply not started: error=%s reply=%s", type(error).__name__, reply_id)
        return
    if claimed and (stopped := await relay.open(reply_id)) is not None:
        _in_background(reply_write(reply_id=reply_id, stopped=stopped))


async def reply_write(
    *, reply_id: int, stopped: asyncio.Event, reply: Message | None = None, context: Context | None = None
) -> None:
    """The job that writes a reply (claimed by reply_start, or by the send: then with the reply
    and its context read already): asks the provider and publishes what comes back on the
    relay, then "end" once the reply is saved."""
    try:
        if reply is None:
            try:
                reply = await Message.objects.select_related("conversation", "model").aget(pk=reply_id)
            except Message.DoesNotExist:  # its conversation was deleted since the claim
                return
        async for event in reply_stream(reply=reply, stopped=stopped, context=context):
            if isinstance(event, BlocksFinished):
                await relay.publish(reply_id, "block", html=event.html, rest=event.rest)
            elif isinstance(event, StepsChanged):
                await relay.publish(reply_id, "steps", html=event.html)
            else:
                await relay.publish(reply_id, "delta", text=event.text)
    finally:
        await relay.publish(reply_id, "end")


# Web lookups ------------------------------------------------------------------------------------
MAX_TOOL_ROUNDS = 3  # rounds of tool calls a reply may make; the next request must answer
MAX_TOOL_CALLS = 3  # lookups run per round; the model is told the others were not
LOOKUP_TOOLS = {  # name: (what it looks up, its one argument, what the model is told it does)
    "web_search": (lookups.LookupKind.SEARCH, "query", "Search the web. Returns the top results: titles, links, snippets."),
    "weather": (lookups.LookupKind.WEATHER, "place", "The current weather and the forecast for a place."),
    "fetch_page": (lookups.LookupKind.PAGE, "url", "Read the text of a web page (an http or https URL)."),
}
TOOL_DEFINITIONS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {argument: {"type": "string"}},
                "required": [argument],
                "additionalProperties": False,
            },
        },
    }
    for name, (_, argument, description) in LOOKUP_TOOLS.items()
]
STEP_UNFINISHED = "It did not finish."
NO_ROOM = "Its results did not fit in what is left of the model's context window."


def lookups_enabled(conversation: Conversation) -> bool:
    return settings.WEB_LOOKUPS and conversation.web_lookups


def _lookup_tools(reply: Message) -> list[dict] | None:
    """The lookups as tools, for a model flagged as supporting them where lookups are on."""
    return TOOL_DEFINITIONS if reply.model.supports_tools and lookups_enabled(reply.conversation) else None


def _tool_step(call: ToolCall, *, over_limit: bool) -> Step:
    """The step for a tool the model called: pending when it can run; failed, with the reason the
    model is told, when the tool is not one of ours, its argument is missing or not valid (the
    same rules as a user's lookup), or it is a call too many."""
    kind, argument, _ = LOOKUP_TOOLS.get(call.name, ("", "", ""))
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = None
    value = arguments.get(argument) if isinstance(arguments, dict) and argument else None
    step = Step(kind=kind, query=value[:lookups.URL_MAX_LENGTH] if isinstance(value, str) else "", via="tool",
                call_id=call.id)
    if not kind:
        step.status, step.error = "failed", "No such tool."
    elif not isinstance(value, str):
        step.status, step.error = "failed", f"The call had no {argument}."
    elif over_limit:
        step.status, step.error = "failed", f"Not run: at most {MAX_TOOL_CALLS} lookups at a time."
    else:
        try:
            lookups.lookup_checked(kind=kind, query=value)
        except ValidationError as error:
            step.status, step.error = "failed", " ".join(error.messages)
    return step


@dataclass
class _Room:
    """What the model's window has left for lookups' results in this reply (`used`: the tokens
    of the context so far)."""

    model: AIModel
    used: int

    def fit(self, step: Step) -> None:
        """Cuts the step's text to what is left (it fails if nothing is), and takes its room."""
        model = self.model
        encoding = tokens.encoding_for(model.deployment_name)
        left = model.context_window - model.max_completion_tokens - DEFAULT_MARGIN - self.used
        count = tokens.message_tokens(role="system", content=step.context_text(), encoding=encoding)
        if count > left and step.status == "done":
            text = encoding.encode(step.text)
            keep = len(text) - (count - left) - 1
            if keep > 0:
                step.text = encoding.decode(text[:keep]) + "…"
            else:
                step.status, step.text, step.sources, step.error = "failed", "", [], NO_ROOM
            count = tokens.message_tokens(role="system", content=step.context_text(), encoding=encoding)
        self.used += count


async def _step_run(
    step: Step, *, reply: Message, stopped: asyncio.Event, checkpoint: Callable[[], Awaitable[None]], room: _Room
) -> None:
    """Runs a lookup in a thread (requests blocks) while stop and checkpoints are watched as for
    the provider's stream; the step gets its results, or why it failed (logged with its kind)."""

    async def looked_up() -> AsyncIterator[lookups.LookupResult]:
        request = lookups.LookupRequest(lookups.LookupKind(step.kind), step.query)
        yield await asyncio.to_thread(lookups.lookup_run, request=request)

    try:
        async for result in _until_stopped(looked_up(), reply.pk, stopped=stopped, checkpoint=checkpoint):
            step.status, step.text = "done", result.text
            step.sources = [{"title": source.title, "url": source.url} for source in result.sources]
    except lookups.LookupFailed as failure:
        step.status, step.error = "failed", failure.message
        logger.info("Lookup failed: kind=%s lookup=%s via=%s %s", failure.kind, step.kind, step.via, _log_fields(reply))
    except StopRequested:
        raise
    except Exception as error:  # a bug of ours (a parser, say): the model still answers
        logger.exception("Lookup failed on our side: error=%s %s", type(error).__name__, _log_fields(reply))
        step.status, step.error = "failed", "The lookup failed on our side."
    room.fit(step)


async def steps_html(steps: list[Step]) -> str:
    """A reply's web lookups as its bubble shows them (chat.html#steps)."""
    return await asyncio.to_thread(render_to_string, "conversations/chat.html#steps", {"steps": steps})


async def _steps_changed(steps: list[Step]) -> StepsChanged:
    return StepsChanged(await steps_html(steps))


def _usage_added(usage: dict | None, more: dict | None) -> dict | None:
    """Token usage of a reply asked for in several requests (rounds of tool calls): the sum."""
    if not (usage and more):
        return more or usage
    return {name: (usage.get(name) or 0) + (more.get(name) or 0) for name in ("prompt_tokens", "completion_tokens")}


async def reply_stream(
    *, reply: Message, stopped: asyncio.Event, context: Context | None = None
) -> AsyncIterator[TextAdded | BlocksFinished | StepsChanged]:
    """Ask the provider for `reply` (an assistant message claimed for writing, with conversation
    and model loaded) and yield each piece of text as it arrives or, when a piece finishes blocks of
    Markdown, those blocks rendered: each block is rendered once, off the event loop, and the
    saved reply's HTML is these renderings in a row. Saves the reply when it completes and
    when it breaks: provider error, timeout, stop (`stopped` set, or the database's flag), or
    the server stopping (cancellation). `reply` ends up holding the reply's state as saved.

    Web lookups: the one the user's message asked for (a pending step) runs first and its results
    go into the context; a model that supports tools may call lookups itself, up to
    MAX_TOOL_ROUNDS rounds. Each change of the steps is yielded rendered (StepsChanged).

    A reply that does not complete gets one log line with its cause and ids (never a key nor
    anyone's text): WARNING when the provider failed or cut it or the server lacks its key,
    INFO when the user stopped it, the server stopped, or the model cannot take it; an unexpected error is
    logged with its traceback instead."""
    model = reply.model
    parts: list[str] = []
    blocks, rendered, unrendered = MarkdownBlocks(), [], ""
    steps = reply.lookup_steps
    first_question: str | None = None  # the text of a new conversation's first message
    request_id: str | None = None  # the provider's id for its response, once it answers
    outcome: _Outcome | None = None  # for the log line of a reply that does not complete
    reply.status, reply.error, reply.usage = Message.Status.FAILED, "", None
    try:
        if reason := model.unusable_reason:  # e.g. deactivated since the message was sent
            raise ModelUnusable(reason, kind=_unusable_kind(model))
        context = context or await context_build(reply=reply, model=model)
        messages, reply.context_omitted = list(context.messages), context.omitted
        spoken = [message["content"] for message in messages if message["role"] != "system"]
        first_question = spoken[0] if len(spoken) == 1 else None
        checkpoint = lambda: _checkpoint(reply, "".join(parts), steps)  # noqa: E731
        room = _Room(model=model, used=context.tokens)
        for step in [step for step in steps if step.status == "pending"]:  # the lookup the message asked for
            yield await _steps_changed(steps)
            await _step_run(step, reply=reply, stopped=stopped, checkpoint=checkpoint, room=room)
            messages.append({"role": "system", "content": step.context_text()})
            yield await _steps_changed(steps)
        tools = _lookup_tools(reply)
        for round in itertools.count():
            finish_reason, calls, said = None, (), []
            tool_choice = "none" if round == MAX_TOOL_ROUNDS else None  # the last round answers
            pieces = reply_pieces(model=model, messages=messages, tools=tools, tool_choice=tool_choice)
            async for piece in _until_stopped(pieces, reply.pk, stopped=stopped, checkpoint=checkpoint):
                reply.usage = _usage_added(reply.usage, piece.usage)
                finish_reason = piece.finish_reason or finish_reason
                request_id = piece.request_id or request_id
                calls = piece.tool_calls or calls
                if not piece.text:
                    continue
                if not said and parts and round:  # the text after a round of lookups starts a new paragraph
                    piece = ReplyPiece(text="\n\n" + piece.text)
                said.append(piece.text)
                parts.append(piece.text)
                if finished := blocks.feed(piece.text):
                    unrendered = "".join(finished)
                    rendered.append(await asyncio.to_thread(render_markdown, unrendered))
                    unrendered = ""
                    yield BlocksFinished(rendered[-1], blocks.rest)
                else:
                    yield TextAdded(piece.text)
            if not (calls and tools and round < MAX_TOOL_ROUNDS):
                break
            called = [{"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                      for call in calls]
            messages.append({"role": "assistant", "content": "".join(said) or None, "tool_calls": called})
            for index, call in enumerate(calls):
                step = _tool_step(call, over_limit=index >= MAX_TOOL_CALLS)
                steps.append(step)
                yield await _steps_changed(steps)
                if step.status == "pending":
                    await _step_run(step, reply=reply, stopped=stopped, checkpoint=checkpoint, room=room)
                    yield await _steps_changed(steps)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": step.context_text()})
        if finish_reason is None:
            # A stream that ends without a finish_reason was cut off: it is not complete.
            reply.status, reply.error = Message.Status.INTERRUPTED, CUT_SHORT
            outcome = _Outcome(logging.WARNING, FailureKind.CUT_SHORT, request_id=request_id)
        else:
            reply.status = Message.Status.COMPLETE
            if finish_reason == "length":
                reply.error = LENGTH_LIMIT.format(limit=model.max_completion_tokens)
    except ConversationDeleted:
        pass  # nothing to tell anyone: the save below finds the reply gone, and says so
    except StopRequested:
        reply.status, reply.error = Message.Status.INTERRUPTED, STOPPED
        outcome = _Outcome(logging.INFO, "stopped")
    except (asyncio.CancelledError, GeneratorExit):
        reply.status, reply.error = Message.Status.INTERRUPTED, SERVER_STOPPED
        outcome = _Outcome(logging.WARNING, "server_stopped")
        raise
    except ModelUnusable as error:
        reply.error = str(error)
        outcome = _Outcome(logging.WARNING if error.kind == FailureKind.MISSING_KEY else logging.INFO, error.kind)
    except ContextTooLong as error:
        reply.error = (
            f"The conversation no longer fits {model.name}: the last message is {error.needed:,} tokens "
            f"and at most {error.available:,} fit. Start a new conversation."
        )
        outcome = _Outcome(logging.INFO, "context_too_long")
    except (ProviderError, openai.OpenAIError) as error:
        described = error_describe(error=error, model=model)
        reply.error = described.message
        outcome = _Outcome(
            logging.WARNING,
            described.kind,
            status=described.status,
            code=described.code,
            request_id=described.request_id or request_id,
            error=type(error).__name__,
        )
    except Exception as error:
        logger.exception("Reply failed on our side: error=%s %s", type(error).__name__, _log_fields(reply))
        reply.error = "Something went wrong on our side while asking for the reply. Try again."
    finally:
        reply.content = "".join(parts)
        for step in steps:
            if step.status == "pending":
                step.status, step.error = "failed", STEP_UNFINISHED
        reply.steps = [step.as_json() for step in steps]
        if reply.status == Message.Status.FAILED and reply.content:
            reply.status = Message.Status.INTERRUPTED
        if outcome is not None:
            _outcome_log(reply, outcome)
        # Shielded: a server stopping cancels this task, but the save must still land.
        await asyncio.shield(_reply_save(reply, rendered=rendered, unrendered=unrendered + blocks.rest))
    if reply.status == Message.Status.COMPLETE and first_question is not None and settings.GENERATED_TITLES:
        # After the first exchange, off the reply's path: the reply has ended for the user.
        _in_background(conversation_title_generate(conversation=reply.conversation, model=model, text=first_question))


async def reply_settled(*, reply: Message) -> AsyncIterator[None]:
    """For a reply the relay does not carry (written by another worker without Redis, or Redis is
    unreachable): wait, yielding at each look at the database, until it ends or is abandoned;
    `reply` holds what was saved."""
    while reply.status in Message.IN_PROGRESS and not reply.is_stale:
        await sync_to_async(connection_release)()  # none held while waiting (see views.reply_stream)
        yield
        await asyncio.sleep(STOP_POLL_SECONDS)
        await reply.arefresh_from_db(fields=REPLY_STATE)


async def _reply_save(reply: Message, *, rendered: list[str], unrendered: str) -> None:
    """Saves the reply's final state; its HTML is the blocks rendered as they finished, then
    the text after them."""
    if unrendered.strip():
        rendered = [*rendered, await asyncio.to_thread(render_markdown, unrendered)]
    reply.content_html = "".join(rendered)
    reply.token_count = None
    try:
        await reply.asave(
            update_fields=["content", "content_html", "status", "error", "usage", "context_omitted", "steps", "updated_at"]
        )
    except DatabaseError:
        if await Message.objects.filter(pk=reply.pk).aexists():
            raise
        # The user deleted the conversation while its reply was written: nothing left to save.
        logger.info("Reply %s ended after its conversation was deleted", reply.pk)
