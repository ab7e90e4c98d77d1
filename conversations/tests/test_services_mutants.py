"""The reply job (conversations/services.py) under mutation testing (make mutants, docs/mutants.md,
docs/mutants-services.md): each test here fails on a mutant that the rest of the suite let survive.
Against the real thing: the openai SDK over HTTP to the fake upstream, a real database."""

import asyncio
import logging
import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from bench.fake_upstream import FakeReply, FakeToolCall

from conversations import models, services, tokens
from conversations.models import Conversation, Message, Step
from conversations.relay import relay
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_lookup_replies import web  # noqa: F401 - the fixture
from conversations.tests.test_stream import read_all, reload, reloaded_when
from conversations.tests.test_titles import background_done

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@pytest.fixture
def turn(conversation):
    """A committed user message and its pending reply, as message_create leaves them."""
    question = MessageFactory(conversation=conversation, content="Say hello")
    reply = MessageFactory(conversation=conversation, pending=True)
    return question, reply


# reply_settled: a reply written by another worker, read from its checkpoints ---------------------
async def test_waiting_on_another_workers_reply_ends_with_its_end_and_keeps_its_loaded_relations(turn, monkeypatch):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0)
    monkeypatch.setattr(models, "STALE_STREAM", timedelta(hours=1))  # never abandoned, however slow the machine
    _, reply = turn
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.STREAMING, updated_at=timezone.now())
    loaded = await reload(reply)
    conversation, model = loaded.conversation, loaded.model
    looks = aiter(services.reply_settled(reply=loaded))
    await anext(looks)  # still being written

    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.COMPLETE, content="Done.")

    with pytest.raises(StopAsyncIteration):
        await anext(looks)
    assert (loaded.status, loaded.content) == (Message.Status.COMPLETE, "Done.")
    # Only the reply's state is read again: the page renders its bubble with what it had loaded.
    assert loaded.conversation is conversation and loaded.model is model


# _Room.fit: a lookup's results take what is left of the model's window -------------------------
@pytest.fixture
def small_model(chat_model):
    chat_model.context_window, chat_model.max_completion_tokens = 3_000, 500
    chat_model.save()
    return chat_model


ROOM = 3_000 - 500 - services.DEFAULT_MARGIN  # the small model's window for everything but the reply
OWLS = "Owls hunt at night. " * 300  # about 1,800 tokens


def found(text: str = OWLS) -> Step:
    return Step(kind="search", query="owls", status="done", text=text, sources=[{"title": "O", "url": "https://o.example/"}])


def counted(step: Step) -> int:
    """The tokens a step takes in the context, as the model reads it (a system message)."""
    return tokens.message_tokens(role="system", content=step.context_text(), encoding=tokens.encoding_for("gpt-4o-mini"))


async def test_a_lookup_that_fits_exactly_is_kept_whole_and_fills_the_room(small_model):
    step = found()
    room = services._Room(model=small_model, used=ROOM - counted(found()))

    room.fit(step)

    assert (step.status, step.text, step.sources) == ("done", OWLS, [{"title": "O", "url": "https://o.example/"}])
    assert room.used == ROOM


async def test_a_lookup_that_fits_adds_its_tokens_to_those_used(small_model):
    step = found("Owls hunt at night.")
    room = services._Room(model=small_model, used=1_000)

    room.fit(step)

    assert step.text == "Owls hunt at night."
    assert room.used == 1_000 + counted(found("Owls hunt at night."))


async def test_a_lookup_cut_to_the_room_left_ends_with_an_ellipsis_and_fills_the_room_exactly(small_model):
    step = found()
    room = services._Room(model=small_model, used=ROOM - counted(found()) + 100)  # 100 tokens short

    room.fit(step)

    encoding = tokens.encoding_for("gpt-4o-mini")
    assert step.status == "done"
    # All the tokens that fit, less one for the ellipsis.
    assert step.text == encoding.decode(encoding.encode(OWLS)[: len(encoding.encode(OWLS)) - 101]) + "…"
    assert room.used == ROOM


HEADER = counted(found(""))  # the header a lookup's results come under


async def test_a_lookup_with_room_for_one_token_of_its_results_keeps_that_token(small_model):
    step = found()
    room = services._Room(model=small_model, used=ROOM - HEADER - 2)  # one token and the ellipsis

    room.fit(step)

    encoding = tokens.encoding_for("gpt-4o-mini")
    assert (step.status, step.text) == ("done", encoding.decode(encoding.encode(OWLS)[:1]) + "…")
    assert room.used == ROOM


async def test_a_lookup_with_no_room_for_any_of_its_results_fails_and_keeps_nothing(small_model):
    step = found()
    room = services._Room(model=small_model, used=ROOM - HEADER - 1)  # the ellipsis alone

    room.fit(step)

    assert (step.status, step.text, step.sources, step.error) == ("failed", "", [], services.NO_ROOM)
    assert room.used == ROOM - HEADER - 1 + counted(step)


# _step_run: a lookup run by the reply's job ----------------------------------------------------
async def ask(conversation, text: str, *steps: Step) -> Message:
    """The user's message and its pending reply, as the send leaves them."""
    await sync_to_async(MessageFactory)(conversation=conversation, content=text)
    return await sync_to_async(MessageFactory)(
        conversation=conversation, pending=True, steps=[step.as_json() for step in steps]
    )


async def job_started(reply: Message) -> tuple[asyncio.Task, Message]:
    """The reply claimed and its job running here, as reply_start leaves it: the job's task and the
    reply as claimed."""
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.STREAMING, updated_at=timezone.now())
    claimed = await reload(reply)
    stopped = await relay.open(reply.pk)
    return asyncio.create_task(services.reply_write(reply_id=reply.pk, stopped=stopped, reply=await reload(reply))), claimed


def log_fields(reply: Message) -> str:
    return (
        f"model={reply.model.pk} model_name=fake-gpt host={urlsplit(reply.model.api_endpoint).netloc} "
        f"conversation={reply.conversation.public_id} reply={reply.pk}"
    )


async def test_a_lookups_sources_are_saved_with_their_title_and_address(client_in, conversation, fake_upstream, web):
    reply = await ask(conversation, "search for mario golf", Step(kind="search", query="mario golf"))

    await read_all(client_in, reply)

    (step,) = (await reload(reply)).lookup_steps
    assert step.sources[0] == {
        "title": "Get information and compare prices of Mario Golf for Game Boy | VGDb",
        "url": "https://vgdb.uk/mario-golf/game/48484",
    }
    assert all(set(source) == {"title", "url"} for source in step.sources)


async def test_a_failed_lookup_is_logged_with_its_kind_the_lookups_kind_how_it_was_asked_and_the_ids(
    client_in, conversation, fake_upstream, web, settings, caplog
):
    settings.SEARCH_URL = web.url("/status/500?q={query}")
    reply = await ask(conversation, "search for owls", Step(kind="search", query="owls"))

    await read_all(client_in, reply)

    loaded = await reload(reply)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("Lookup failed")] == [
        f"Lookup failed: kind=http_status lookup=search via=message {log_fields(loaded)}"
    ]


async def test_a_lookup_that_breaks_on_our_side_is_logged_with_the_error_and_the_ids(
    client_in, conversation, fake_upstream, monkeypatch, caplog
):
    def broken(*, request):
        raise RuntimeError("a parser's bug")

    monkeypatch.setattr(services.lookups, "lookup_run", broken)
    reply = await ask(conversation, "search for owls", Step(kind="search", query="owls"))

    await read_all(client_in, reply)

    loaded = await reload(reply)
    [line] = [r for r in caplog.records if r.getMessage().startswith("Lookup failed")]
    assert line.getMessage() == f"Lookup failed on our side: error=RuntimeError {log_fields(loaded)}"
    assert line.exc_info[0] is RuntimeError


async def test_a_stop_seen_in_the_database_ends_a_lookup_that_hangs(conversation, fake_upstream, web, settings, monkeypatch):
    # Stopped through a worker the relay does not reach: only the database's flag says so.
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    settings.SEARCH_URL = web.url("/stall-headers?q={query}")
    earlier = await ask(conversation, "Hello")  # a reply stopped earlier keeps its flag
    await Message.objects.filter(pk=earlier.pk).aupdate(status=Message.Status.INTERRUPTED, stop_requested=True)
    reply = await ask(conversation, "search for owls", Step(kind="search", query="owls"))
    job, _ = await job_started(reply)  # nothing sets its event: the relay never hears of the stop
    async with asyncio.timeout(60):
        while not web.hits:  # the lookup has reached the server, which does not answer
            await asyncio.sleep(0.01)

    await Message.objects.filter(pk=reply.pk).aupdate(stop_requested=True)
    await asyncio.wait_for(job, 60)

    saved = await reload(reply)
    assert (saved.status, saved.error) == (Message.Status.INTERRUPTED, models.STOPPED)
    assert [(s.status, s.error) for s in saved.lookup_steps] == [("failed", services.STEP_UNFINISHED)]
    assert fake_upstream.chat_requests == []


async def test_a_slow_lookup_is_checkpointed_so_the_reply_does_not_look_abandoned(
    conversation, fake_upstream, web, settings, monkeypatch
):
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 0.05)
    settings.SEARCH_URL = web.url("/gate/ddg/results?q={query}")  # answers once the test opens the gate
    reply = await ask(conversation, "search for owls", Step(kind="search", query="owls"))
    fake_upstream.script(FakeReply(text="Owls hunt."))
    job, claimed = await job_started(reply)

    heartbeat = await reloaded_when(reply, lambda saved: saved.updated_at > claimed.updated_at)
    assert heartbeat.status == Message.Status.STREAMING
    assert [s.status for s in heartbeat.lookup_steps] == ["pending"]  # a checkpoint while the lookup runs
    web.gate.set()
    await asyncio.wait_for(job, 60)

    saved = await reload(reply)
    assert (saved.status, saved.content) == (Message.Status.COMPLETE, "Owls hunt.")
    assert [s.status for s in saved.lookup_steps] == ["done"]


# _tool_step: a tool the model called ---------------------------------------------------------------
async def test_a_call_to_a_tool_we_do_not_have_gets_no_query_whatever_its_arguments(conversation, chat_model, fake_upstream, web):
    chat_model.supports_tools = True
    await sync_to_async(chat_model.save)()
    call = FakeToolCall("run_shell", {"XXXX": "rm -rf /", "query": "rm -rf /"}, id="call_x")
    fake_upstream.script(FakeReply(tool_calls=[call]), FakeReply(text="Sorry."))
    reply = await ask(conversation, "Do something")
    job, _ = await job_started(reply)

    await asyncio.wait_for(job, 60)

    (step,) = (await reload(reply)).lookup_steps
    assert step == Step(kind="", query="", via="tool", status="failed", error="No such tool.", call_id="call_x")
    assert fake_upstream.last.body["messages"][-1] == {
        "role": "tool", "tool_call_id": "call_x", "content": models.LOOKUP_FAILED.format(query="", error="No such tool.")
    }
    assert web.hits == []


# reply_start_soon, reply_start and _reply_claim: a reply started by the send, or by its page --------
def started_soon_in_a_thread_of_its_own(reply: Message, loop: asyncio.AbstractEventLoop | None) -> BaseException | None:
    """reply_start_soon as a sync view's thread calls it: a WSGI worker's (no event loop recorded),
    or one whose recorded loop is `loop`. What it raised, if anything."""
    raised: list[BaseException] = []

    def view_thread() -> None:
        from asgiref.sync import SyncToAsync
        from django.db import connections

        if loop is not None:
            SyncToAsync.threadlocal.main_event_loop = loop
        try:
            services.reply_start_soon(reply=reply)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            raised.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=view_thread)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "reply_start_soon did not return"
    return raised[0] if raised else None


@pytest.mark.parametrize("loop", ["none", "closed"])
async def test_without_an_event_loop_to_run_its_job_the_reply_stays_pending_for_its_page(turn, loop):
    _, reply = turn
    closed = None
    if loop == "closed":
        closed = asyncio.new_event_loop()
        closed.close()

    raised = await asyncio.to_thread(started_soon_in_a_thread_of_its_own, reply, closed)

    assert raised is None
    assert (await reload(reply)).status == Message.Status.PENDING  # the page's stream starts it (reply_start)


async def started_by_the_send(reply: Message) -> None:
    """reply_start_soon, from the sending view's thread under ASGI."""
    assert await asyncio.to_thread(started_soon_in_a_thread_of_its_own, reply, asyncio.get_running_loop()) is None


async def started_by_its_page(reply: Message) -> None:
    """reply_start, from the page's stream."""
    await services.reply_start(reply_id=reply.pk)


STARTERS = pytest.mark.parametrize("start", [started_by_the_send, started_by_its_page], ids=["send", "page"])


@STARTERS
async def test_a_started_reply_is_fresh_however_long_it_waited(start, turn, fake_upstream, upstream_gate, monkeypatch):
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 3_600)  # no checkpoint freshens it meanwhile
    monkeypatch.setattr(models, "STALE_STREAM", timedelta(hours=1))  # however slow the machine
    _, reply = turn
    await Message.objects.filter(pk=reply.pk).aupdate(updated_at=timezone.now() - timedelta(days=1))
    fake_upstream.script(FakeReply(text="Hello.", hang_after=0))  # the job waits on the provider

    await start(reply)

    claimed = await reload(reply)
    assert claimed.status == Message.Status.STREAMING
    assert not claimed.is_stale  # a page does not show it abandoned, nor Retry take it from its job
    upstream_gate.set()
    await background_done()
    assert (await reload(reply)).status == Message.Status.COMPLETE


@STARTERS
async def test_a_start_claims_its_own_reply_only(start, turn, user, chat_model, fake_upstream):
    _, reply = turn
    elsewhere = await sync_to_async(ConversationFactory)(user=user, model=chat_model)
    await sync_to_async(MessageFactory)(conversation=elsewhere, content="Another question")
    other = await sync_to_async(MessageFactory)(conversation=elsewhere, pending=True)

    await start(reply)
    await background_done()

    assert (await reload(reply)).status == Message.Status.COMPLETE
    assert (await reload(other)).status == Message.Status.PENDING
    assert len(fake_upstream.chat_requests) == 1


@STARTERS
async def test_a_reply_claimed_already_is_not_started_again(start, turn, fake_upstream):
    _, reply = turn
    # Claimed by another job: the page's (for the send), another worker's (for the page).
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.STREAMING, updated_at=timezone.now())

    await start(reply)
    await background_done()

    assert fake_upstream.chat_requests == []  # one job per reply
    assert (await reload(reply)).status == Message.Status.STREAMING


async def test_a_database_failure_when_the_send_starts_the_reply_is_one_warning_and_leaves_it_pending(
    turn, fake_upstream, monkeypatch, caplog
):
    _, reply = turn
    real_update = QuerySet.update

    def busy(rows, **changes):  # the claim finds no database connection free
        if changes.get("status") == Message.Status.STREAMING:
            raise OperationalError("couldn't get a connection after 5.00 sec")
        return real_update(rows, **changes)

    monkeypatch.setattr(QuerySet, "update", busy)

    assert await asyncio.to_thread(started_soon_in_a_thread_of_its_own, reply, asyncio.get_running_loop()) is None
    await background_done()

    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "conversations.services"] == [
        (logging.WARNING, f"Reply not started: error=OperationalError reply={reply.pk}")
    ]
    assert (await reload(reply)).status == Message.Status.PENDING
    assert fake_upstream.chat_requests == []


# conversation_title_generate: a few words the model writes as the title ------------------------
QUESTION = "What should I see in Paris in three days, and where should I eat?"


async def titled_by_first_words(user, chat_model) -> Conversation:
    conversation = await sync_to_async(ConversationFactory)(user=user, model=chat_model)
    conversation.title = conversation.title_from(QUESTION)
    await conversation.asave()
    return conversation


async def test_a_generated_title_replaces_the_first_words_of_its_own_conversation_only(user, chat_model, fake_upstream):
    mine, other = await titled_by_first_words(user, chat_model), await titled_by_first_words(user, chat_model)
    fake_upstream.script(FakeReply(text="Three Days in Paris"))

    await services.conversation_title_generate(conversation=mine, model=chat_model, text=QUESTION)

    assert (await Conversation.objects.aget(pk=mine.pk)).title == "Three Days in Paris"
    assert (await Conversation.objects.aget(pk=other.pk)).title == other.title_from(QUESTION)  # the same first words


async def test_a_title_the_provider_fails_is_logged_at_info_with_its_kind_and_conversation(
    user, chat_model, fake_upstream, caplog
):
    caplog.set_level(logging.INFO)
    conversation = await titled_by_first_words(user, chat_model)
    fake_upstream.queue_error(status=500)

    await services.conversation_title_generate(conversation=conversation, model=chat_model, text=QUESTION)

    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "conversations.services"] == [
        (logging.INFO, f"Title not generated: kind=server conversation={conversation.public_id}")
    ]
    assert (await Conversation.objects.aget(pk=conversation.pk)).title == conversation.title_from(QUESTION)


# _checkpoint: the reply's state saved while it is written ----------------------------------------
async def test_a_checkpoint_saves_the_lookups_as_they_are_now(conversation, fake_upstream, web, upstream_gate, monkeypatch):
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 0.05)
    reply = await ask(conversation, "search for owls", Step(kind="search", query="owls"))
    fake_upstream.script(FakeReply(text="Owls hunt.", hang_after=0))  # the model is silent once the lookup is done
    job, _ = await job_started(reply)

    checkpointed = await reloaded_when(reply, lambda saved: [s.status for s in saved.lookup_steps] == ["done"])

    assert checkpointed.status == Message.Status.STREAMING  # a checkpoint, not the end
    assert checkpointed.lookup_steps[0].text.startswith("1. Get information and compare prices of Mario Golf")  # its results
    upstream_gate.set()
    await asyncio.wait_for(job, 60)
    assert (await reload(reply)).status == Message.Status.COMPLETE


# _usage_added: the tokens of a reply asked for in several requests -------------------------------
async def test_the_usage_of_rounds_that_report_zero_tokens_adds_zero(conversation, chat_model, fake_upstream, web):
    chat_model.supports_tools = True
    await sync_to_async(chat_model.save)()
    fake_upstream.script(
        FakeReply(tool_calls=[FakeToolCall("weather", {"place": "Oslo"})], prompt_tokens=20, completion_tokens=0),
        FakeReply(text="Overcast.", prompt_tokens=0, completion_tokens=7),
    )
    reply = await ask(conversation, "Umbrella in Oslo?")
    job, _ = await job_started(reply)

    await asyncio.wait_for(job, 60)

    assert (await reload(reply)).usage == {"prompt_tokens": 20, "completion_tokens": 7}


# _reply_open: the send's job starts with what the send read -----------------------------------------
async def test_the_sends_job_asks_the_provider_without_reading_its_reply_again(turn, fake_upstream, monkeypatch):
    _, reply = turn
    read = []
    real_aget = QuerySet.aget

    async def recorded(rows, *args, **kwargs):
        read.append(rows.model)
        return await real_aget(rows, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "aget", recorded)

    assert await asyncio.to_thread(started_soon_in_a_thread_of_its_own, reply, asyncio.get_running_loop()) is None
    await background_done()

    assert read == []  # the job had the reply the send read (and its context)
    assert (await reload(reply)).status == Message.Status.COMPLETE


async def test_the_sends_job_asks_the_provider_while_redis_is_still_being_told(turn, fake_upstream, monkeypatch):
    from conversations import relay as relay_module
    from conversations.relay import RedisRelay
    from conversations.tests.conftest import relay_swap

    # A Redis that takes the connection and never answers (slow, far away): only the test ends it.
    monkeypatch.setattr(relay_module, "FOLLOW_CHECK_SECONDS", 3_600)  # so no socket timeout ends it either
    monkeypatch.setattr(relay_module, "CONNECT_SECONDS", 3_600)
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    redis_relay = RedisRelay(f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0")
    relay_swap(monkeypatch, redis_relay)
    _, reply = turn
    try:
        assert await asyncio.to_thread(started_soon_in_a_thread_of_its_own, reply, asyncio.get_running_loop()) is None

        async with asyncio.timeout(60):
            while not fake_upstream.chat_requests:  # asked at once, whatever Redis does
                await asyncio.sleep(0.01)
    finally:
        server.close()
        for writer in connections:
            writer.transport.abort()  # Redis goes away: the job goes on without it
        await background_done()
        await redis_relay.aclose()
    assert (await reload(reply)).status == Message.Status.COMPLETE


# _stops_watch_run, _until_stopped: the stop, and the checkpoints --------------------------------------
async def test_stops_not_read_are_one_warning_and_read_again_next_time(turn, fake_upstream, monkeypatch, caplog):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    real_aiter = QuerySet.__aiter__
    failures = []

    def once_busy(rows):
        if "stop_requested" in str(rows.query) and not failures:  # the first look finds no connection free
            failures.append(rows)

            async def busy():
                raise OperationalError("couldn't get a connection after 5.00 sec")
                yield

            return busy()
        return real_aiter(rows)

    monkeypatch.setattr(QuerySet, "__aiter__", once_busy)
    _, reply = turn
    fake_upstream.script(FakeReply(text="never finished", hang_after=0))
    job, _ = await job_started(reply)
    async with asyncio.timeout(60):
        while not failures:
            await asyncio.sleep(0.01)

    await Message.objects.filter(pk=reply.pk).aupdate(stop_requested=True)  # seen at a later look
    await asyncio.wait_for(job, 60)

    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "conversations.services"][0] == (
        logging.WARNING, "Stops not read: error=OperationalError replies=1"
    )
    assert (await reload(reply)).error == models.STOPPED


async def test_a_reply_that_ended_is_no_longer_watched_for_a_stop(turn, fake_upstream):
    _, reply = turn
    job, _ = await job_started(reply)

    await asyncio.wait_for(job, 60)

    assert (await reload(reply)).status == Message.Status.COMPLETE
    assert reply.pk not in services._WRITING


async def test_a_reply_written_after_the_watch_ended_is_watched_for_a_stop_again(conversation, fake_upstream, monkeypatch):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    first = await ask(conversation, "One")
    job, _ = await job_started(first)
    await asyncio.wait_for(job, 60)
    watch = services._stops_watch
    assert watch.get_loop() is asyncio.get_running_loop()
    await asyncio.wait_for(watch, 60)  # nothing left to watch: it ended

    second = await ask(conversation, "Two")
    fake_upstream.script(FakeReply(text="never finished", hang_after=0))
    job, _ = await job_started(second)  # nothing sets its event: the relay never hears of the stop
    await Message.objects.filter(pk=second.pk).aupdate(stop_requested=True)  # a worker the relay does not reach
    await asyncio.wait_for(job, 60)

    assert (await reload(second)).error == models.STOPPED


async def test_text_is_not_saved_as_it_arrives_only_at_checkpoints(turn, fake_upstream, upstream_gate, monkeypatch):
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 3_600)  # none comes during the test
    _, reply = turn
    fake_upstream.script(FakeReply(text="one two three four", hang_after=3))  # then the gate
    job, _ = await job_started(reply)
    async with asyncio.timeout(60):
        while [e.kind for e in relay._replies[reply.pk].events].count("delta") < 3:  # the page has "one two three"
            await asyncio.sleep(0.01)

    mid_way = await reload(reply)

    assert (mid_way.status, mid_way.content) == (Message.Status.STREAMING, "")  # never a write per token
    upstream_gate.set()
    await asyncio.wait_for(job, 60)
    assert (await reload(reply)).content == "one two three four"


async def test_one_watch_reads_the_stops_of_every_reply_being_written(conversation, user, chat_model, fake_upstream, upstream_gate):
    first = await ask(conversation, "One")
    elsewhere = await sync_to_async(ConversationFactory)(user=user, model=chat_model)
    second = await ask(elsewhere, "Two")
    fake_upstream.script(FakeReply(text="a b", hang_after=1), FakeReply(text="c d", hang_after=1))
    jobs = [(await job_started(first))[0], (await job_started(second))[0]]
    async with asyncio.timeout(60):
        while not (first.pk in services._WRITING and second.pk in services._WRITING):
            await asyncio.sleep(0.01)

    loop = asyncio.get_running_loop()  # not a watch an earlier test's event loop left
    watches = [t for t in services.BACKGROUND if t.get_name() == "_stops_watch_run" and t.get_loop() is loop and not t.done()]

    assert len(watches) == 1
    upstream_gate.set()
    await asyncio.wait_for(asyncio.gather(*jobs), 60)


# _reply_save: the reply's final state ------------------------------------------------------------
async def test_a_reply_whose_conversation_went_is_one_info_line_with_its_id(turn, fake_upstream, caplog):
    caplog.set_level(logging.INFO)
    _, reply = turn
    loaded = await reload(reply)
    context = await services.context_build(reply=loaded, model=loaded.model)  # read before the delete
    await reply.conversation.adelete()

    [event async for event in services.reply_stream(reply=loaded, stopped=asyncio.Event(), context=context)]

    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "conversations.services"] == [
        (logging.INFO, f"Reply {reply.pk} ended after its conversation was deleted")
    ]


async def test_a_reply_that_cannot_be_saved_is_not_taken_for_one_whose_conversation_went(turn, fake_upstream, monkeypatch):
    _, reply = turn
    loaded = await reload(reply)

    async def busy(*args, **kwargs):  # the database fails, the reply is still there
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(loaded, "asave", busy)

    with pytest.raises(OperationalError):
        [event async for event in services.reply_stream(reply=loaded, stopped=asyncio.Event())]
    assert (await reload(reply)).status == Message.Status.PENDING  # nothing saved: a page sees it abandoned in time


async def test_the_final_save_writes_the_replys_state_only_and_keeps_the_stop_flag(client_in, turn, fake_upstream, upstream_gate):
    _, reply = turn
    fake_upstream.script(FakeReply(text="one two three", hang_after=2))  # then silent until the gate
    job, _ = await job_started(reply)
    async with asyncio.timeout(60):
        while [e.kind for e in relay._replies[reply.pk].events].count("delta") < 2:
            await asyncio.sleep(0.01)

    stop = await client_in.post(reverse("conversations:reply_stop", args=[reply.conversation.public_id, reply.pk]))
    await asyncio.wait_for(job, 60)

    assert stop.status_code == 204
    saved = await reload(reply)
    assert (saved.status, saved.error, saved.content) == (Message.Status.INTERRUPTED, models.STOPPED, "one two")
    assert saved.stop_requested  # written by the stop meanwhile, not undone by the save (the admin shows it)


# _released: the connection background work shares is given back by the last one to end -----------
async def test_the_last_background_work_to_end_gives_the_connection_back_and_no_other(
    turn, fake_upstream, upstream_gate, monkeypatch
):
    from chatter.db import connection_release

    monkeypatch.setattr(services, "BACKGROUND", set())  # not work an earlier test's event loop left unfinished
    releases = []
    monkeypatch.setattr(services, "connection_release", lambda: releases.append(1) or connection_release())
    _, reply = turn
    fake_upstream.script(FakeReply(text="one two", hang_after=1))  # then silent until the gate

    await services.reply_start(reply_id=reply.pk)  # its claim has ended; its job is writing
    async with asyncio.timeout(60):
        while "delta" not in [e.kind for e in relay._replies[reply.pk].events]:
            await asyncio.sleep(0.01)

    assert releases == []  # the job still uses it
    upstream_gate.set()
    await background_done()
    assert releases == [1]
    assert (await reload(reply)).status == Message.Status.COMPLETE


# reply_stream: rounds of tool calls ------------------------------------------------------------------
async def test_a_model_that_calls_tools_in_the_round_that_must_answer_gets_no_more_rounds(
    conversation, chat_model, fake_upstream, web
):
    chat_model.supports_tools = True
    await sync_to_async(chat_model.save)()
    # Told not to (tool_choice "none"), the fourth answer still calls a tool: a provider that ignores it.
    fake_upstream.script(
        *[FakeReply(tool_calls=[FakeToolCall("web_search", {"query": f"owls {n}"})]) for n in range(4)],
        FakeReply(text="A fifth request."),
    )
    reply = await ask(conversation, "Tell me everything about owls")
    job, _ = await job_started(reply)

    await asyncio.wait_for(job, 60)

    assert [r.body["tool_choice"] for r in fake_upstream.chat_requests] == ["auto", "auto", "auto", "none"]
    saved = await reload(reply)
    assert [s.query for s in saved.lookup_steps] == ["owls 0", "owls 1", "owls 2"]  # the fourth call is not run
    assert (saved.status, saved.content) == (Message.Status.COMPLETE, "")


async def test_a_reply_that_breaks_on_our_side_tells_the_user_to_try_again(turn, monkeypatch):
    async def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "context_build", broken)
    _, reply = turn
    job, _ = await job_started(reply)

    await asyncio.wait_for(job, 60)

    saved = await reload(reply)
    assert (saved.status, saved.error) == (
        Message.Status.FAILED, "Something went wrong on our side while asking for the reply. Try again."
    )


async def test_a_message_too_long_for_the_model_tells_the_user_by_how_much(conversation, chat_model, fake_upstream):
    await sync_to_async(MessageFactory)(conversation=conversation, content="A long paste", token_count=1_000_000)
    reply = await sync_to_async(MessageFactory)(conversation=conversation, pending=True)
    job, _ = await job_started(reply)

    await asyncio.wait_for(job, 60)

    saved = await reload(reply)
    assert saved.status == Message.Status.FAILED
    fits = re.fullmatch(
        rf"The conversation no longer fits {re.escape(chat_model.name)}: the last message is 1,000,000 tokens "
        r"and at most (\d{1,3}(?:,\d{3})*) fit\. Start a new conversation\.",
        saved.error,
    )
    assert fits and 0 < int(fits[1].replace(",", "")) < chat_model.context_window
    assert fake_upstream.chat_requests == []


async def test_a_slow_lookup_the_model_called_is_checkpointed_so_the_reply_does_not_look_abandoned(
    conversation, chat_model, fake_upstream, web, settings, monkeypatch
):
    chat_model.supports_tools = True
    await sync_to_async(chat_model.save)()
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 0.05)
    settings.SEARCH_URL = web.url("/gate/ddg/results?q={query}")  # answers once the test opens the gate
    fake_upstream.script(FakeReply(tool_calls=[FakeToolCall("web_search", {"query": "owls"})]), FakeReply(text="Owls hunt."))
    reply = await ask(conversation, "Tell me about owls")
    job, _ = await job_started(reply)
    async with asyncio.timeout(60):
        while not web.hits:  # the model's lookup has reached the server, which waits for the gate
            await asyncio.sleep(0.01)
    started = await reload(reply)

    heartbeat = await reloaded_when(reply, lambda saved: saved.updated_at > started.updated_at)
    assert heartbeat.status == Message.Status.STREAMING
    assert [(s.via, s.status) for s in heartbeat.lookup_steps] == [("tool", "pending")]  # a checkpoint meanwhile
    web.gate.set()
    await asyncio.wait_for(job, 60)
    assert (await reload(reply)).content == "Owls hunt."


async def test_a_first_reply_that_fails_asks_for_no_title(turn, conversation, fake_upstream, settings):
    settings.GENERATED_TITLES = True
    fake_upstream.queue_error(status=500)
    _, reply = turn
    job, _ = await job_started(reply)

    await asyncio.wait_for(job, 60)
    await background_done()

    assert (await reload(reply)).status == Message.Status.FAILED
    assert len(fake_upstream.chat_requests) == 1  # the reply's: no title asked after a failure
    assert (await Conversation.objects.aget(pk=conversation.pk)).title == conversation.title


# _context_plan: the room for the messages ------------------------------------------------------------
async def test_a_conversation_that_fills_the_window_exactly_is_sent_whole(conversation, chat_model):
    older = await sync_to_async(MessageFactory)(conversation=conversation, content="First", token_count=300)
    await sync_to_async(MessageFactory)(conversation=conversation, reply=True, content="Answer", token_count=200)
    await sync_to_async(MessageFactory)(conversation=conversation, content="Second", token_count=100)
    reply = await sync_to_async(MessageFactory)(conversation=conversation, pending=True)
    # Room for the three messages to the token: the reply's, the margin and the reply priming aside.
    chat_model.context_window = 1_000 + services.DEFAULT_MARGIN + tokens.REPLY_PRIMING + 600
    chat_model.max_completion_tokens = 1_000
    await sync_to_async(chat_model.save)()

    context = await services.context_build(reply=reply, model=chat_model)

    assert (context.omitted, context.tokens) == (0, 600 + tokens.REPLY_PRIMING)
    assert context.messages[0] == {"role": "user", "content": older.content}
