import asyncio
import html
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlencode, urlsplit
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import content_disposition_header
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh, trigger_client_event

from accounts import limits
from aimodels.models import AIModel
from chatter.db import connection_release
from conversations import export, services
from conversations.forms import (
    ArchiveForm,
    ConversationRenameForm,
    ConversationSearchForm,
    EarlierMessagesForm,
    ListCursor,
    ListPlaceForm,
    LookupsForm,
    MessageEditForm,
    MessageForm,
    PinForm,
    ReplyRegenerateForm,
    ShareForm,
    SystemPromptForm,
    TitleWatchForm,
)
from conversations.models import STALE_STREAM, Conversation, Message, NotOnBranch, Share, Step
from conversations.relay import Event, RelayUnavailable, relay

PAGE = "conversations/chat.html"
MESSAGE_PAGE_SIZE = 50


@dataclass
class MessagePage:
    """A page of a conversation's messages, oldest first: the newest ones, or those before
    `before` (the page above it on screen). Read from the database when a template first asks
    for its items (a turn that does not show the list costs no query)."""

    conversation: Conversation
    before: Message | None = None
    reaching: Message | None = None  # the newest page, longer if need be to hold this message
    offered: list[AIModel] | None = None  # the usable models, when read already

    @cached_property
    def _page(self) -> tuple[list[Message], str | None]:
        rows = self.conversation.branch().select_related("model")
        if self.before is not None:
            rows = rows.earlier_than(self.before)
        size = MESSAGE_PAGE_SIZE
        if self.reaching is not None:
            size = max(size, rows.from_on(self.reaching).count())
        items = list(rows.newest_first()[: size + 1])
        earlier_url = None
        if len(items) > size:
            items = items[:size]
            earlier_url = f"{self.conversation.get_absolute_url()}?{urlencode({'before': items[-1].pk})}"
        Message.versions_mark(items)
        return items[::-1], earlier_url

    @cached_property
    def models(self) -> list[AIModel]:
        """The models a reply can be regenerated with."""
        return self.offered if self.offered is not None else list(AIModel.objects.offered())

    @property
    def items(self) -> list[Message]:
        return self._page[0]

    @property
    def earlier_url(self) -> str | None:
        return self._page[1]


def _page_context(request: HttpRequest, conversation: Conversation | None, form: MessageForm) -> dict:
    return {
        "conversation": conversation,
        "conversations": _sidebar_page(request, current_id=conversation.public_id if conversation else None),
        "chat_messages": MessagePage(conversation, offered=form.fields["model"].models) if conversation else None,
        "form": form,
        "prompt_form": SystemPromptForm(instance=conversation) if conversation else None,
    }


def _conversation_for(request: HttpRequest, public_id: UUID) -> Conversation:
    """The user's conversation at this address, with its model; 404 for anyone else's."""
    return get_object_or_404(Conversation.objects.for_user(request.user).select_related("model"), public_id=public_id)


def _newest(request: HttpRequest) -> Conversation | None:
    """The user's conversation with the latest activity, of those in the sidebar."""
    return Conversation.objects.for_user(request.user).unarchived().first()


@require_GET
def conversation_index(request: HttpRequest) -> HttpResponse:
    newest = _newest(request)
    if newest is None:
        return conversation_new(request)
    return redirect(newest)


@require_GET
def conversation_new(request: HttpRequest) -> HttpResponse:
    form = MessageForm(user=request.user)
    return render(request, PAGE, _page_context(request, None, form))


@require_GET
def conversation_detail(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """The page, with the newest messages; with ?before=<pk>, the page of messages above that
    one (the list scrolled up to its top)."""
    conversation = _conversation_for(request, public_id)
    earlier = EarlierMessagesForm(request.GET, conversation=conversation)
    if not earlier.is_valid():
        return HttpResponseBadRequest("Not a message of this conversation.")
    if before := earlier.cleaned_data["before"]:
        context = {"conversation": conversation, "chat_messages": MessagePage(conversation, before)}
        return render(request, f"{PAGE}#earlier-messages", context)
    form = MessageForm(user=request.user, conversation=conversation)
    return render(request, PAGE, _page_context(request, conversation, form))


@require_POST
def message_create(request: HttpRequest, public_id: UUID | None = None) -> HttpResponse:
    conversation = None
    if public_id is not None:
        conversation = _conversation_for(request, public_id)
    form = MessageForm(request.POST, user=request.user, conversation=conversation)
    if not form.is_valid():
        return _composer_refused(request, form, conversation, status=422)
    restored = conversation is not None and conversation.archived_at is not None  # the send restores it
    if wait := _over_send_rate(request, form):
        response = _composer_refused(request, form, conversation, status=429)
        response["Retry-After"] = str(wait)
        return response
    question, reply = form.save()
    transaction.on_commit(lambda: services.reply_start_soon(reply=reply))
    context = {
        **_page_context(request, form.conversation, MessageForm(
            user=request.user, conversation=form.conversation, models=form.fields["model"].models
        )),
        "turn": [question, reply],
        "started": conversation is None,
        "restored": restored,  # back in the sidebar's list
        # The model will title the new conversation after this exchange: the page watches for it.
        "title_watch": conversation is None and settings.GENERATED_TITLES,
    }
    response = render(request, f"{PAGE}#turn", context)
    if conversation is None:
        response["HX-Push-Url"] = form.conversation.get_absolute_url()
    return response


@require_POST
def conversation_system_prompt(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """Change a conversation's system prompt: the partial again, saved or with the reason."""
    conversation = _conversation_for(request, public_id)
    form = SystemPromptForm(request.POST, instance=conversation)
    saved = form.is_valid()
    if saved:
        form.save()
    context = {"conversation": conversation, "prompt_form": form, "prompt_saved": saved}
    return render(request, f"{PAGE}#system-prompt", context, status=200 if saved else 422)


@require_POST
def conversation_lookups(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """Turn a conversation's web lookups on or off (the composer's switch): the switch again."""
    conversation = _conversation_for(request, public_id)
    form = LookupsForm(request.POST, instance=conversation)
    if form.is_valid():  # a checkbox: always valid (absent is off)
        form.save(commit=False)
        conversation.save(update_fields=["web_lookups"])  # not activity: the sidebar keeps its order
    return render(request, f"{PAGE}#lookups-switch", {"conversation": conversation, "lookups_saved": True})


def _composer_refused(request: HttpRequest, form: MessageForm, conversation: Conversation | None, *, status: int):
    """The composer again, with the text in the box and the reason beside it; nothing was saved."""
    response = render(request, f"{PAGE}#composer", {"form": form, "conversation": conversation}, status=status)
    response["HX-Retarget"] = "#composer"
    response["HX-Reswap"] = "outerHTML"
    return response


def _over_send_rate(request: HttpRequest, form: MessageForm) -> int:
    """Seconds until the user may have another reply written (0: now), counting this one; when
    not 0, the form says so (sends, edits and regenerated replies share the rate)."""
    wait = limits.seconds_to_wait(
        request, group="conversations.send", rate=settings.SEND_RATE_PER_USER, key=lambda group, r: str(r.user.pk)
    )
    if wait:
        form.add_error(
            None,
            f"You are sending messages faster than chatter allows ({_rate_words(settings.SEND_RATE_PER_USER)}). "
            f"You can send again in {wait} second{pluralize(wait)}; your text is kept.",
        )
    return wait


def _rate_words(rate: str) -> str:
    """"20/m" -> "20 messages a minute", "5/10m" -> "5 messages every 10 minutes": the rate as
    django-ratelimit reads it (its pattern: a period without its unit is in seconds)."""
    count, number, unit = re.match(r"(\d+)/(\d*)([smhd])?", rate).groups()
    name = {"s": "second", "m": "minute", "h": "hour", "d": "day"}[unit or "s"]
    every = f"every {number} {name}s" if number else f"{'an' if name == 'hour' else 'a'} {name}"
    return f"{count} message{pluralize(int(count))} {every}"


def _reply_for(request: HttpRequest, public_id: UUID, pk: int) -> Message:
    return get_object_or_404(
        Message.objects.select_related("conversation", "model"),
        pk=pk,
        role=Message.Role.ASSISTANT,
        conversation__public_id=public_id,
        conversation__user=request.user,
    )


@require_POST
def reply_stop(request: HttpRequest, public_id: UUID, pk: int) -> HttpResponse:
    reply = _reply_for(request, public_id, pk)
    # Not started yet: nothing will stream, so it ends here. Streaming: the stream sees the flag.
    Message.objects.filter(pk=reply.pk, status=Message.Status.PENDING).update(
        status=Message.Status.FAILED, error=services.STOPPED, stop_requested=True
    )
    if Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING).update(stop_requested=True):
        relay.stop_soon(reply.pk)  # at once where the relay reaches; the flag anywhere else
    return HttpResponse(status=204)


@require_POST
def reply_retry(request: HttpRequest, public_id: UUID, pk: int) -> HttpResponse:
    reply = _reply_for(request, public_id, pk)
    is_last = reply.ends_branch()
    retryable = Q(status__in=Message.RETRYABLE) | Q(
        status__in=Message.IN_PROGRESS, updated_at__lt=timezone.now() - STALE_STREAM
    )
    # The lookup its message asked for runs again (if lookups are still on); the model's own are its to make again.
    asked = [
        Step(kind=step.kind, query=step.query).as_json()
        for step in reply.lookup_steps if step.via == "message" and services.lookups_enabled(reply.conversation)
    ]
    reset = is_last and Message.objects.filter(retryable, pk=reply.pk).update(
        status=Message.Status.PENDING, content="", content_html="", error="", usage=None, token_count=None, stop_requested=False,
        steps=asked,
        updated_at=timezone.now(),  # a fresh start: not abandoned (STALE_STREAM) from the old one's time
        model=_retry_model(reply),
    )
    if not reset:
        return HttpResponseClientRefresh()  # the page is out of date: show what is there now
    reply.refresh_from_db()
    transaction.on_commit(lambda: services.reply_start_soon(reply=reply))
    return render(request, f"{PAGE}#message", {"conversation": reply.conversation, "message": reply, "is_last": True})


def _retry_model(reply: Message) -> AIModel:
    """A retried reply is asked again of the model that wrote it (a version may have been
    regenerated with another), or of the conversation's when that one can no longer be used."""
    return reply.model if reply.model and not reply.model.unusable_reason else reply.conversation.model


# Versions and branches: regenerate a reply, edit a question, show another version -----------------


def _question_for(request: HttpRequest, public_id: UUID, pk: int) -> Message:
    return get_object_or_404(
        Message.objects.select_related("conversation__model"),
        pk=pk,
        role=Message.Role.USER,
        conversation__public_id=public_id,
        conversation__user=request.user,
    )


def _branch_shown(request: HttpRequest, conversation: Conversation, shown: Message) -> HttpResponse:
    """The message list again, on the branch now active, down to its end from `shown` at least
    (scrolled to it)."""
    context = {"conversation": conversation, "chat_messages": MessagePage(conversation, reaching=shown)}
    response = render(request, f"{PAGE}#branch", context)
    response["HX-Reswap"] = f"innerHTML show:#message-{shown.pk}:top"
    return response


def _refused(request: HttpRequest, errors: list[str], *, status: int) -> HttpResponse:
    """Why nothing was done, in the page's alert line under the conversation; nothing was saved."""
    response = render(request, f"{PAGE}#chat-alert", {"errors": errors}, status=status)
    response["HX-Retarget"] = "#chat-alert"
    response["HX-Reswap"] = "innerHTML"
    return response


def _form_errors(form: MessageForm) -> list[str]:
    return [error for errors in form.errors.values() for error in errors]


@require_POST
def reply_regenerate(request: HttpRequest, public_id: UUID, pk: int) -> HttpResponse:
    """A new version of a reply (any reply on the shown branch), written by the model posted
    (the conversation's when none is); the old version is kept, a ‹ › away."""
    reply = _reply_for(request, public_id, pk)
    form = ReplyRegenerateForm(request.POST, user=request.user, reply=reply)
    if not form.is_valid():
        return _refused(request, _form_errors(form), status=422)
    if wait := _over_send_rate(request, form):
        response = _refused(request, _form_errors(form), status=429)
        response["Retry-After"] = str(wait)
        return response
    version = form.save()
    transaction.on_commit(lambda: services.reply_start_soon(reply=version))
    return _branch_shown(request, reply.conversation, version)


@require_http_methods(["GET", "POST"])
def message_edit(request: HttpRequest, public_id: UUID, pk: int) -> HttpResponse:
    """GET: the user's message in a form, in place of its bubble (?cancel: the bubble again).
    POST: the changed message sent as a new version of it, with a new reply; the list shows
    the new branch (or the form again, with the reason and the text kept)."""
    question = _question_for(request, public_id, pk)
    conversation = question.conversation
    context = {"conversation": conversation, "message": question}
    if request.method == "GET":
        if "cancel" in request.GET:
            Message.versions_mark([question])
            return render(request, f"{PAGE}#message", context)
        return render(request, f"{PAGE}#message-edit", {**context, "form": MessageEditForm(user=request.user, message=question)})
    form = MessageEditForm(request.POST, user=request.user, message=question)
    wait = form.is_valid() and _over_send_rate(request, form)
    if form.errors:
        response = render(request, f"{PAGE}#message-edit", {**context, "form": form}, status=429 if wait else 422)
        if wait:
            response["Retry-After"] = str(wait)
        response["HX-Retarget"] = f"#message-{question.pk}"
        response["HX-Reswap"] = "outerHTML"
        return response
    version, reply = form.save()
    transaction.on_commit(lambda: services.reply_start_soon(reply=reply))
    return _branch_shown(request, conversation, version)


@require_POST
def message_show(request: HttpRequest, public_id: UUID, pk: int) -> HttpResponse:
    """Show another version of a message (‹ ›): the branch through it becomes the shown one,
    down the versions last shown below it."""
    version = get_object_or_404(
        Message.objects.select_related("conversation"),
        pk=pk, conversation__public_id=public_id, conversation__user=request.user,
    )
    conversation = version.conversation
    if Message.objects.filter(conversation=conversation).replying().exists():
        return _refused(request, ["A reply is still being written. Wait for it to finish, or press Stop."], status=409)
    try:
        version.show()
    except NotOnBranch:
        return _refused(request, ["That version is no longer beside the shown branch. Reload the page."], status=409)
    return _branch_shown(request, conversation, version)


def _sse(event: str, data: str, *, id: int | None = None) -> str:
    # Every line break (\r too: browsers split on it) starts a new data line, so text can
    # never end the event early or forge a field of its own.
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + (f"id: {id}\n" if id else "") + "\n"


def _escaped(text: str) -> str:
    return html.escape(text, quote=False)


def _relayed(events: list[Event], *, fresh: bool) -> str:
    """Relay events as server-sent events, each carrying its sequence number as its id (so the
    browser's reconnect resumes after the last one it had). A fresh page gets those written so
    far as one "snapshot" (the finished blocks) and one "tail" (the text after them), after the
    web lookups as they are now ("steps")."""
    if fresh and len(events) > 1:
        blocks, rest, steps = [], "", ""
        for event in events:
            if event.kind == "block":
                blocks.append(event.data["html"])
                rest = event.data["rest"]
            elif event.kind == "delta":
                rest += event.data["text"]
            elif event.kind == "steps":
                steps = event.data["html"]
        head = _sse("steps", steps) if steps else ""
        return head + _sse("snapshot", "".join(blocks)) + _sse("tail", _escaped(rest), id=events[-1].seq)
    frames = []
    for event in events:
        if event.kind == "steps":
            frames.append(_sse("steps", event.data["html"], id=event.seq))
        elif event.kind == "block":
            frames.append(_sse("block", event.data["html"]) + _sse("tail", _escaped(event.data["rest"]), id=event.seq))
        elif event.kind == "delta":
            frames.append(_sse("delta", _escaped(event.data["text"]), id=event.seq))
    return "".join(frames)


def _last_event_id(request: HttpRequest) -> int:
    """The id of the last event a reconnecting EventSource had (0: none, or not one of ours)."""
    value = request.headers.get("Last-Event-ID", "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else 0


async def _followed(batches: AsyncIterator[list[Event]], *, fresh: bool) -> AsyncIterator[str]:
    """The relay's batches as server-sent events (see _relayed), and a comment line whenever
    KEEPALIVE_SECONDS pass without one, so proxies keep a quiet stream (a model thinking) open."""
    waiting: asyncio.Future | None = None
    try:
        while True:
            waiting = waiting or asyncio.ensure_future(anext(batches))
            done, _ = await asyncio.wait({waiting}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield ": still being written\n\n"
                continue
            try:
                batch = waiting.result()
            except StopAsyncIteration:
                return
            waiting = None
            yield _relayed(batch, fresh=fresh)
            fresh = False
    finally:
        if waiting is not None:
            waiting.cancel()


KEEPALIVE_SECONDS = 15.0  # a comment line this often while nothing else is sent: proxies keep the stream
# What the page shows is dropped, and with it the id a reconnecting browser would resume after:
# the text shown from here on comes from the database's checkpoints.
_RELAY_LEFT = "event: snapshot\ndata: \nid:\n\n"


async def _written(reply: Message, *, after: int) -> AsyncIterator[str]:
    """Server-sent events for a reply being written, until it is not (`reply` then holds what was
    saved): followed on the relay when the relay carries it, else read from the database's
    checkpoints, and from the checkpoints too when the relay fails midway or stops carrying the
    reply before its end. A reply the relay comes to know while its checkpoints are read (its
    writer, on another worker, opened it just after this page looked) is followed from then on.
    From the checkpoints, the page gets the text so far ("tail") and the web lookups ("steps")
    whenever a checkpoint changes them."""
    may_follow = True
    relayed = after > 0  # the page shows events of the relay (a reconnect: up to `after`)
    while True:
        if may_follow and await relay.knows(reply.pk):
            may_follow = False
            # Following needs no database (a page that read checkpoints until now holds one).
            await sync_to_async(connection_release)()
            try:
                async for frames in _followed(relay.follow(reply.pk, after=after), fresh=after == 0):
                    relayed = True
                    yield frames
            except RelayUnavailable:
                pass
            await reply.arefresh_from_db(fields=services.REPLY_STATE)
            if reply.status not in Message.IN_PROGRESS or reply.is_stale:
                return
        if relayed:
            yield _RELAY_LEFT
            relayed = False
        shown, shown_steps = None, []
        async for _ in services.reply_settled(reply=reply):
            if reply.status == Message.Status.PENDING:  # its start failed (e.g. a busy database): again
                await services.reply_start(reply_id=reply.pk)
                may_follow = True
            if may_follow and await relay.knows(reply.pk):
                after = 0  # the page shows checkpoints: the relay's events from the first
                break
            changed = reply.content != shown or reply.steps != shown_steps
            if reply.steps != shown_steps:  # a checkpoint: the web lookups as they are
                shown_steps = reply.steps
                yield _sse("steps", await services.steps_html(reply.lookup_steps))
            if reply.content != shown:  # a checkpoint: the text so far
                shown = reply.content
                yield _sse("tail", _escaped(shown))
            if not changed:
                yield ": still being written\n\n"
        else:
            return


def _reply_to_stream(user, public_id: UUID, pk: int) -> Message:
    """The user's reply (404 if it is not theirs). The request's database connection goes back
    to the pool at once: the stream then waits (for the job's start, the relay, the
    checkpoints), and takes one again when a query needs it. (Held while waiting for the job's
    start, which needs one too, a crowd of streams could take every connection and wait for ever.)"""
    reply = get_object_or_404(
        Message.objects.select_related("conversation", "model"),
        pk=pk, role=Message.Role.ASSISTANT, conversation__public_id=public_id, conversation__user=user,
    )
    connection_release()
    return reply


def _finished_bubble(reply: Message) -> str:
    """The bubble of a reply that ended, for the stream's 'done' event. Its HTML is saved with it
    (an older reply's Markdown is rendered here); the retry button goes on the last reply only."""
    is_last = reply.display_status in Message.RETRYABLE and reply.ends_branch()
    Message.versions_mark([reply])
    context = {
        "conversation": reply.conversation, "message": reply, "is_last": is_last,
        "chat_messages": MessagePage(reply.conversation),  # its models, for Regenerate (read only then)
    }
    return render_to_string(f"{PAGE}#message", context)


@require_GET
async def reply_stream(request: HttpRequest, public_id: UUID, pk: int) -> StreamingHttpResponse:
    """Server-sent events for one reply, from wherever it is when the page connects: the text so
    far, then live, then its end. Starts the reply's job here if nothing has yet (see
    services.reply_start). 'delta' events carry HTML-escaped text as it arrives; when Markdown
    blocks finish, a 'block' event carries them rendered and a 'tail' event the escaped text
    after them (which replaces the text shown so far); a final 'done' event carries the finished
    bubble, rendered server-side. A reply the relay does not carry (another worker writes it
    without Redis, or Redis is unreachable) is shown from the database's checkpoints."""
    reply = await sync_to_async(_reply_to_stream)(await request.auser(), public_id, pk)
    after = _last_event_id(request)

    async def events() -> AsyncIterator[str]:
        yield ": stream open\n\n"  # sent at once, so the browser knows the stream is up
        live = reply.status in Message.IN_PROGRESS and not reply.is_stale  # else: shown as saved
        if live and reply.status == Message.Status.PENDING:
            await services.reply_start(reply_id=reply.pk)
        if live:
            try:
                async for frames in _written(reply, after=after):
                    yield frames
            except Message.DoesNotExist:  # its conversation was deleted meanwhile
                yield _sse("done", "")
                return
        yield _sse("done", await sync_to_async(_finished_bubble)(reply))

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-store, private"
    response["X-Accel-Buffering"] = "no"
    return response


# Sidebar: the conversations, newest first, a page at a time; search, rename, delete ----------------
SIDEBAR = "conversations/sidebar.html"
SIDEBAR_PAGE_SIZE = 30
SNIPPET_BEFORE = 30  # characters of a message shown before its first match
SNIPPET_LENGTH = 120


@dataclass
class SidebarPage:
    """A page of the sidebar's list: the conversations after `after` (or the first ones), newest
    first, of all or of those matching `query`; the conversation the page on screen shows.
    Without a query the pinned conversations are not paged: the first page shows them all
    above the others (`pinned`), and the pages hold the others. A search's results keep their
    order, pinned or not. Read from the database when a template first asks for its items (a
    turn that does not show the list costs no query)."""

    rows: QuerySet
    current_id: UUID | None = None
    query: str = ""
    after: ListCursor | None = None

    @classmethod
    def empty(cls, current_id: UUID | None) -> "SidebarPage":
        return cls(Conversation.objects.none(), current_id)

    @property
    def first(self) -> bool:
        return self.after is None

    @cached_property
    def pinned(self) -> list[Conversation]:
        """The Pinned group, at the top of the first page (never in a search's results)."""
        return [] if self.query or not self.first else list(self.rows.pinned())

    @cached_property
    def _page(self) -> tuple[list[Conversation], str | None]:
        rows = self.rows if self.query else self.rows.filter(pinned_at__isnull=True)
        marks = (f"HL{secrets.token_hex(8)}S", f"HL{secrets.token_hex(8)}E")  # unguessable: no text holds them
        if self.query:
            rows = rows.search(self.query, marks=marks)
        if self.after is not None:
            rows = rows.older_than(*self.after)
        items = list(rows.newest_first()[: SIDEBAR_PAGE_SIZE + 1])
        next_url = None
        if len(items) > SIDEBAR_PAGE_SIZE:
            items = items[:SIDEBAR_PAGE_SIZE]
            params = {"cursor": ListCursor.after(items[-1], "updated_at"), **({"q": self.query} if self.query else {})}
            next_url = f"{reverse('conversations:list')}?{urlencode(params)}"
        if self.query:
            for item in items:
                _highlight(item, self.query, marks)
        return items, next_url

    @property
    def items(self) -> list[Conversation]:
        return self._page[0]

    @property
    def next_url(self) -> str | None:
        return self._page[1]


def _sidebar_page(
    request: HttpRequest, *, current_id: UUID | None, query: str = "", after: ListCursor | None = None
) -> SidebarPage:
    rows = (
        Conversation.objects.for_user(request.user).unarchived().with_reply_in_progress()
        .only("public_id", "title", "updated_at", "pinned_at")
    )
    return SidebarPage(rows, current_id, query, after)


def _highlight(item: Conversation, query: str, marks: tuple[str, str]) -> None:
    """Sets item.title_marked and item.snippet_marked: the title and the matching message's text,
    escaped, each match in <mark>."""
    title, snippet = item.search_title, item.search_snippet
    if item.search_full_text:  # the database marked the matches in escaped text
        item.title_marked = _marked_html(title, marks, escaped=True) if title else None
        item.snippet_marked = _marked_html(" ".join(snippet.split()), marks, escaped=True) if snippet else None
    else:
        needle = re.compile(re.escape(query), re.IGNORECASE)
        item.title_marked = _marked_html(_mark(title, needle, marks), marks) if title else None
        item.snippet_marked = _marked_html(_mark(_excerpt(snippet, needle), needle, marks), marks) if snippet else None


def _mark(text: str, needle: re.Pattern, marks: tuple[str, str]) -> str:
    start, stop = marks
    return needle.sub(lambda match: f"{start}{match.group(0)}{stop}", text)


def _excerpt(text: str, needle: re.Pattern) -> str:
    """One line of the text around its first match, cut between words, with "…" where cut."""
    flat = " ".join(text.split())
    match = needle.search(flat)
    begin, end = 0, SNIPPET_LENGTH
    if match and match.start() > SNIPPET_BEFORE:
        cut = match.start() - SNIPPET_BEFORE
        begin = max(flat.rfind(" ", 0, cut) + 1, cut - 20)  # at a word, unless words are that long
    if match:  # the whole match, however long
        end = max(begin + SNIPPET_LENGTH, match.end())
    if end < len(flat) and (space := flat.rfind(" ", match.end() if match else begin, end)) > 0:
        end = space
    return ("…" if begin else "") + flat[begin:end] + ("…" if end < len(flat) else "")


def _marked_html(text: str, marks: tuple[str, str], *, escaped: bool = False) -> SafeString:
    """The text as HTML, each part between the marks in <mark>. Every piece of text is escaped
    here (the database's escaping undone first when `escaped`), so none of it becomes markup."""
    start, stop = marks
    head, *chunks = text.split(start)
    pieces = [(head, False)]
    for chunk in chunks:
        inside, _, after = chunk.partition(stop)
        pieces += [(inside, True), (after, False)]
    if escaped:
        pieces = [(html.unescape(piece), hit) for piece, hit in pieces]
    return format_html_join(
        "", "{}", ((format_html("<mark>{}</mark>", piece) if hit else piece,) for piece, hit in pieces if piece)
    )


def _current_id(request: HttpRequest) -> UUID | None:
    """The conversation shown by the page that sent this htmx request (from the URL htmx reports)."""
    path = request.htmx.current_url_abs_path if request.htmx else None
    if not path:
        return None
    try:
        match = resolve(urlsplit(path).path)
    except Resolver404:
        return None
    return match.kwargs.get("public_id") if match.view_name == "conversations:detail" else None


def _sidebar_conversation(request: HttpRequest, public_id: UUID) -> Conversation:
    return get_object_or_404(
        Conversation.objects.for_user(request.user).with_reply_in_progress().select_related("model"),
        public_id=public_id,
    )


@require_GET
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The sidebar's list: all conversations or those matching ?q=, the page after ?cursor=."""
    form = ConversationSearchForm(request.GET)
    if not form.is_valid():
        if "cursor" in form.errors:
            return HttpResponseBadRequest("Not a place in the list.")
        page = SidebarPage.empty(_current_id(request))
        return render(request, f"{SIDEBAR}#conversation-list", {"conversations": page, "search_form": form}, status=422)
    query, after = form.cleaned_data["q"], form.cleaned_data["cursor"]
    page = _sidebar_page(request, current_id=_current_id(request), query=query, after=after)
    return render(request, f"{SIDEBAR}#{'conversation-page' if after else 'conversation-list'}", {"conversations": page})


@require_http_methods(["GET", "POST"])
def conversation_rename(request: HttpRequest, public_id: UUID, place: str = "sidebar") -> HttpResponse:
    """GET: a form for the title, in the sidebar's row or in the chat's header (`place`).
    POST: the title saved; the row or header shows it, the header too when it shows this
    conversation, and the event conversationRenamed tells the page's script the rest."""
    conversation = _sidebar_conversation(request, public_id)
    context = {"conversation": conversation, "place": place, "form_id": f"rename-{place}-{conversation.public_id}"}
    auto_id = f"{context['form_id']}-%s"
    if request.method == "GET":
        form = ConversationRenameForm(instance=conversation, auto_id=auto_id)
        return render(request, f"{SIDEBAR}#rename-form", {**context, "form": form})
    form = ConversationRenameForm(request.POST, instance=conversation, auto_id=auto_id)
    if not form.is_valid():
        response = render(request, f"{SIDEBAR}#rename-form", {**context, "form": form}, status=422)
        response["HX-Retarget"] = f"#{context['form_id']}"
        response["HX-Reswap"] = "outerHTML"
        return response
    form.save(commit=False)
    conversation.save(update_fields=["title"])  # a new name is not activity: the list keeps its order
    if not request.htmx:
        return redirect(conversation)
    current_id = _current_id(request)
    response = render(request, f"{SIDEBAR}#renamed", {
        **context,
        "item": conversation,
        "conversations": SidebarPage.empty(current_id),
        "header_too": place == "sidebar" and current_id == conversation.public_id,
    })
    trigger_client_event(response, "conversationRenamed", {"id": str(conversation.public_id), "title": str(conversation)})
    return response


@require_http_methods(["GET", "POST"])
def conversation_delete(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """GET: the dialog asking to confirm. POST: the conversation deleted with its messages. The
    page that showed it moves to the newest remaining conversation (or a new chat); another
    page only loses it from its list."""
    conversation = _sidebar_conversation(request, public_id)
    if request.method == "GET":
        context = {"conversation": conversation, "message_count": conversation.messages.count()}
        return render(request, f"{SIDEBAR}#delete-dialog", context)
    current_id = _current_id(request)
    conversation.delete()
    if request.htmx and current_id != public_id:
        remaining = Conversation.objects.for_user(request.user).unarchived().exists()
        context = {"deleted_id": public_id, "conversations": None if remaining else SidebarPage.empty(current_id)}
        return render(request, f"{SIDEBAR}#deleted", context)
    newest = _newest(request)
    url = newest.get_absolute_url() if newest else reverse("conversations:new")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
def conversation_status(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """The sidebar's marker for a reply being written, polled while it shows: the marker again
    while the reply is in progress, nothing once it is not (which ends the polling)."""
    return render(request, f"{SIDEBAR}#replying-marker", {"item": _sidebar_conversation(request, public_id)})


# A new conversation's generated title, shown on the open page ------------------------------------
TITLE_WAIT_SECONDS = 25.0  # one long poll's longest wait
TITLE_POLL_SECONDS = 0.5  # how often it looks


@require_GET
async def conversation_title_watch(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """Asked by the watcher a new conversation's first turn leaves in the page (chat.html#title-watch):
    waits until the title is no longer ?fallback= (the first words), then answers as a rename
    from the header does. When the wait runs out it answers the watcher again, which asks
    again, if the reply was being written meanwhile (the title is asked for after it ends);
    otherwise nothing (204): no title is coming, and the watching stops."""
    user = await request.auser()
    rows = Conversation.objects.for_user(user).with_reply_in_progress().select_related("model")

    async def look() -> Conversation:
        try:
            return await rows.aget(public_id=public_id)
        except Conversation.DoesNotExist:
            raise Http404 from None

    conversation = await look()
    form = TitleWatchForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("Not a title to watch.")
    loop = asyncio.get_running_loop()
    deadline, replying = loop.time() + TITLE_WAIT_SECONDS, False
    while conversation.title == form.cleaned_data["fallback"]:
        replying = replying or conversation.reply_in_progress
        if loop.time() >= deadline:
            if replying:
                return render(request, f"{PAGE}#title-watch", {"conversation": conversation})
            return HttpResponse(status=204)
        await asyncio.sleep(TITLE_POLL_SECONDS)
        conversation = await look()
    response = render(request, f"{SIDEBAR}#renamed", {"conversation": conversation, "place": "header"})
    response["HX-Retarget"] = "#chat-title"
    response["HX-Reswap"] = "outerHTML"
    trigger_client_event(response, "conversationRenamed", {"id": str(conversation.public_id), "title": str(conversation)})
    return response


# Pin and archive: the changes, and the Archived page ----------------------------------------------
PIN = "conversations/actions_pin.html"


@require_POST
def conversation_pin(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """Pin a conversation (first in the sidebar) or unpin it."""
    conversation = _sidebar_conversation(request, public_id)
    form = PinForm(request.POST)
    if form.is_valid():  # a boolean: always valid (absent is unpin)
        conversation.pin(form.cleaned_data["pinned"])
    return _arranged(request, conversation)


@require_POST
def conversation_archive(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """Archive a conversation (out of the sidebar, on the Archived page) or restore it."""
    conversation = _sidebar_conversation(request, public_id)
    form = ArchiveForm(request.POST)
    if form.is_valid():  # a boolean: always valid (absent is restore)
        conversation.archive(form.cleaned_data["archived"])
    return _arranged(request, conversation)


def _arranged(request: HttpRequest, conversation: Conversation) -> HttpResponse:
    """After a pin or an archive: the sidebar's list (its first page, of the search the page
    shows, which the buttons send along) and, on the page that shows this conversation, its
    header (the menu and the archived notice), both out of band."""
    if not request.htmx:
        return redirect(conversation)
    current_id = _current_id(request)
    search = ConversationSearchForm(request.POST)
    query = search.cleaned_data["q"] if search.is_valid() else ""
    return render(request, f"{PIN}#arranged", {
        "conversation": conversation,
        "conversations": _sidebar_page(request, current_id=current_id, query=query),
        "header_too": current_id == conversation.public_id,
    })


ARCHIVED_PAGE_SIZE = 50


@require_GET
def conversation_archived(request: HttpRequest) -> HttpResponse:
    """The Archived page: the archived conversations, the last archived first, each to restore or
    delete, a page at a time. The page after ?cursor=: for htmx (scrolled to), its rows alone;
    else the whole page, starting there (the "Older" link, without scripts)."""
    form = ListPlaceForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("Not a place in the list.")
    rows = Conversation.objects.for_user(request.user).archived().only("public_id", "title", "archived_at")
    if after := form.cleaned_data["cursor"]:
        rows = rows.older_than(*after, field="archived_at")
    archived = list(rows[: ARCHIVED_PAGE_SIZE + 1])
    next_url = None
    if len(archived) > ARCHIVED_PAGE_SIZE:
        archived = archived[:ARCHIVED_PAGE_SIZE]
        cursor = ListCursor.after(archived[-1], "archived_at")
        next_url = f"{reverse('conversations:archived')}?{urlencode({'cursor': cursor})}"
    context = {"archived": archived, "next_url": next_url}
    if request.htmx and after:
        return render(request, "conversations/archived.html#archived-page", context)
    return render(request, "conversations/archived.html", {**context, "conversations": _sidebar_page(request, current_id=None)})


# Export: a conversation as Markdown or JSON, all of a user's as JSON ------------------------------
EXPORT_TYPES = {"markdown": ("md", "text/markdown; charset=utf-8"), "json": ("json", "application/json; charset=utf-8")}


@require_GET
def conversation_export(request: HttpRequest, public_id: UUID, kind: str) -> HttpResponse:
    """The conversation's active branch as a download: Markdown or JSON (`kind`, set by the URL)."""
    conversation = _conversation_for(request, public_id)
    data = export.conversation_data(conversation)
    extension, content_type = EXPORT_TYPES[kind]
    body = export.conversation_markdown(data) if kind == "markdown" else json.dumps(data, ensure_ascii=False, indent=2)
    return HttpResponse(body, content_type=content_type, headers=_download_headers(
        export.export_filename(conversation.title, extension)
    ))


@require_GET
def account_export(request: HttpRequest) -> StreamingHttpResponse:
    """All of the user's conversations as one JSON download (the account page's "Your data"),
    streamed a conversation at a time. Under ASGI the pieces are read in a thread one by one
    (a plain iterator would be read whole first), the database connection given back between
    them, so a slow download holds none."""
    pieces = export.account_json(request.user)
    if isinstance(request, ASGIRequest):
        pieces = _pieces_async(pieces)
    filename = f"chatter-{timezone.localdate().isoformat()}.json"
    return StreamingHttpResponse(
        pieces, content_type=EXPORT_TYPES["json"][1], headers=_download_headers(filename)
    )


def _download_headers(filename: str) -> dict:
    return {"Content-Disposition": content_disposition_header(True, filename), "Cache-Control": "no-store, private"}


async def _pieces_async(pieces: Iterator[str]) -> AsyncIterator[str]:
    def step() -> str | None:
        piece = next(pieces, None)
        connection_release()
        return piece

    while (piece := await sync_to_async(step)()) is not None:
        yield piece


# Share links: the owner's list, create, revoke; the public page -----------------------------------
SHARES = "conversations/actions_share.html"


def _shares_context(request: HttpRequest, conversation: Conversation, **extra) -> dict:
    shares = list(conversation.shares.all())
    for share in shares:
        share.link = request.build_absolute_uri(share.get_absolute_url())
    return {"conversation": conversation, "shares": shares, **extra}


@require_http_methods(["GET", "POST"])
def share_list(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """GET: the dialog of the conversation's share links, each with Copy and Revoke, and a button
    to create one. POST: a new link, a snapshot of the active branch as it is now; the list again,
    the new link first, or the reason there is none."""
    conversation = _conversation_for(request, public_id)
    if request.method == "GET":
        return render(request, f"{SHARES}#share-dialog", _shares_context(request, conversation))
    form = ShareForm(request.POST, conversation=conversation)
    if not form.is_valid():
        return render(request, f"{SHARES}#share-links", _shares_context(request, conversation, form=form), status=422)
    created = form.save()
    return render(request, f"{SHARES}#share-links", _shares_context(request, conversation, created=created))


@require_POST
def share_revoke(request: HttpRequest, public_id: UUID, pk: int) -> HttpResponse:
    """The share link deleted: its address answers 404 from now on. The list again."""
    share = get_object_or_404(
        Share.objects.select_related("conversation"),
        pk=pk, conversation__public_id=public_id, conversation__user=request.user,
    )
    share.delete()
    return render(request, f"{SHARES}#share-links", _shares_context(request, share.conversation, revoked=True))


@login_not_required
@require_GET
def share_detail(request: HttpRequest, token: str) -> HttpResponse:
    """A share link's page, open to anyone who has the link: its snapshot, read-only, with nothing
    of its owner's account. Search engines are asked not to index it, and no link on it tells
    another site its address (the token). Each client address may open SHARE_VIEWS_PER_IP of them
    (found or not: guessing tokens is slow on top of hopeless)."""
    if wait := limits.seconds_to_wait(
        request, group="conversations.share", rate=settings.SHARE_VIEWS_PER_IP, key="ip"
    ):
        context = {
            "status": 429, "title": "Too many requests",
            "message": f"Shared conversations were opened from your address faster than chatter allows. "
            f"Try again in {wait} second{pluralize(wait)}.",
        }
        response = render(request, "errors/error.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    share = get_object_or_404(Share, token=token)
    response = render(request, "conversations/share.html", {"share": share})
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store, private"
    return response
