"""The relay on Redis (REDIS_URL): what only Redis does. Events expire after the end and are
capped; a stop asked on any worker reaches the writer through pub/sub; a page notices a writer
that died; and Redis failing, at the start or midway, loses no reply and shows no error page.
Tests that need a Redis are skipped unless TEST_REDIS_URL is set (.ci/run starts one); those
of an unreachable Redis need none."""

import asyncio
import logging
import shutil
import subprocess
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from bs4 import BeautifulSoup
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from bench.fake_upstream import FakeReply
from conversations import models, services
from conversations import relay as relay_module
from conversations.models import Message
from conversations.relay import LocalRelay, RedisRelay, RelayUnavailable, relay_for
from conversations.tests.asgi_server import free_port
from conversations.tests.conftest import redis_url_or_skip, relay_swap
from conversations.tests.test_relay import WORDS, parse, read, text_shown, turn  # noqa: F401 (fixtures)
from conversations.tests.test_stream import open_stream, reload

pytestmark = pytest.mark.django_db(transaction=True)

LONGER = " ".join(f"w{n}" for n in range(40))


@pytest.fixture
def redis_client(redis_url):
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


async def read_until(chunks, raw: str, condition) -> str:
    """More of a stream, until `condition(raw)` holds (the rest unread)."""
    async for chunk in chunks:
        raw += chunk.decode()
        if condition(raw):
            break
    return raw


def relay_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "conversations.relay" and r.levelno >= logging.WARNING]


def test_a_replys_events_are_capped_near_10000_and_kept_60_seconds_after_it_ends():
    # README, "Workers". The tests below shorten or read these values (the cap, the time kept).
    assert (relay_module.MAXLEN, relay_module.KEEP_SECONDS) == (10_000, 60)


def test_redis_url_chooses_the_relay():
    assert isinstance(relay_for(""), LocalRelay)
    chosen = relay_for("redis://127.0.0.1:1/0")  # nothing is connected until it is used
    assert isinstance(chosen, RedisRelay) and chosen.url == "redis://127.0.0.1:1/0"


# Events kept, and for how long ---------------------------------------------------------------------
@pytest.mark.asyncio
async def test_events_expire_a_while_after_the_end(redis_relay, redis_client):
    await redis_relay.open(9)
    assert redis_client.exists("chatter:reply:9:writer")  # a page on any worker can follow it already
    await redis_relay.publish(9, "delta", text="hi")
    assert redis_client.pttl("chatter:reply:9") > relay_module.KEEP_SECONDS * 1000  # kept while written

    await redis_relay.publish(9, "end")

    assert 0 < redis_client.pttl("chatter:reply:9") <= relay_module.KEEP_SECONDS * 1000
    assert not redis_client.exists("chatter:reply:9:writer")
    assert [entry_id for entry_id, _ in redis_client.xrange("chatter:reply:9")] == ["0-1", "0-2"]


@pytest.mark.asyncio
async def test_a_writer_that_does_not_wait_for_redis_has_every_event_in_it_in_order(redis_relay, redis_client):
    """The send's job asks the provider while Redis is told (open without wait): an event
    published before Redis knew still lands after the old stream is gone, none lost."""
    redis_client.xadd("chatter:reply:6", {"kind": "delta", "data": '{"text": "an old writing"}'}, id="0-1")

    await redis_relay.open(6, wait=False)
    await redis_relay.publish(6, "delta", text="new")  # at once, as a provider's first token could
    await redis_relay.publish(6, "end")

    assert [fields["data"] for _, fields in redis_client.xrange("chatter:reply:6")] == ['{"text":"new"}', "{}"]


@pytest.mark.asyncio
async def test_a_reply_longer_than_the_cap_keeps_its_newest_events(redis_relay, redis_client, monkeypatch):
    monkeypatch.setattr(relay_module, "MAXLEN", 100)
    await redis_relay.open(8)
    for n in range(1, 1001):
        await redis_relay.publish(8, "delta", text=f"{n} ")
    await redis_relay.publish(8, "end")

    assert 100 <= redis_client.xlen("chatter:reply:8") <= 300  # "~": Redis trims whole nodes
    [newest] = [batch async for batch in redis_relay.follow(8, after=995)]
    assert [event.data["text"] for event in newest] == ["996 ", "997 ", "998 ", "999 ", "1000 "]
    with pytest.raises(RelayUnavailable):  # the beginning is gone: the page reads the checkpoints
        [batch async for batch in redis_relay.follow(8)]


@pytest.mark.asyncio
async def test_a_retry_starts_the_events_again_from_the_first(redis_relay):
    await redis_relay.open(6)
    await redis_relay.publish(6, "delta", text="old")
    await redis_relay.publish(6, "end")

    await redis_relay.open(6)  # the reply is written again (Retry), within KEEP_SECONDS
    assert await redis_relay.publish(6, "delta", text="new") == 1
    await redis_relay.publish(6, "end")

    [batch] = [batch async for batch in redis_relay.follow(6)]
    assert [(event.seq, event.data) for event in batch] == [(1, {"text": "new"})]


# Stop through pub/sub ------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["stop", "stop_soon"])
@pytest.mark.asyncio
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_stop_asked_on_another_worker_reaches_the_writer_through_pub_sub(
    client_in, turn, fake_upstream, redis_relay, redis_url, monkeypatch, how
):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 3600)  # the database's flag is never looked at
    fake_upstream.script(FakeReply(text=LONGER, hang_after=5))  # five words, then silent until stopped
    response = await open_stream(client_in, turn)
    chunks = aiter(response.streaming_content)
    raw = await read_until(chunks, "", lambda raw: raw.count("event: delta") >= 3)

    elsewhere = RedisRelay(redis_url)  # another worker's relay: the writer is not in it
    try:
        if how == "stop":
            assert await elsewhere.stop(turn.pk) is True
        else:  # what the sync view reply_stop calls
            await asyncio.to_thread(elsewhere.stop_soon, turn.pk)
        raw += "".join([chunk.decode() async for chunk in chunks])
    finally:
        await elsewhere.aclose()

    saved = await reload(turn)
    assert (saved.status, saved.error) == (Message.Status.INTERRUPTED, services.STOPPED)
    assert saved.content.startswith("w0 w1 w2") and saved.content != LONGER
    assert parse(raw)[-1][0] == "done"


# A writer that died ---------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_page_stops_following_a_reply_whose_writer_died(client_in, turn, redis_relay, redis_url, monkeypatch):
    monkeypatch.setattr(models, "STALE_STREAM", timedelta(seconds=1))
    monkeypatch.setattr(relay_module, "FOLLOW_CHECK_SECONDS", 0.1)
    # Another worker claimed the reply, relayed a little of it, checkpointed, then died.
    await Message.objects.filter(pk=turn.pk).aupdate(
        status=Message.Status.STREAMING, content="Half", updated_at=timezone.now()
    )
    elsewhere = RedisRelay(redis_url)
    try:
        await elsewhere.open(turn.pk)
        await elsewhere.publish(turn.pk, "delta", text="Half")

        events, _ = await asyncio.wait_for(read(await open_stream(client_in, turn)), timeout=60)
    finally:
        await elsewhere.aclose()

    assert text_shown(events[:-1]) == "Half"  # followed on the relay
    assert [name for name, *_ in events][-1] == "done"
    bubble = BeautifulSoup(events[-1][1], "html.parser").article
    assert "status-interrupted" in bubble["class"]  # no writer any more: shown interrupted, retryable


@pytest.mark.asyncio
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_page_reading_checkpoints_follows_the_relay_once_the_writer_opens_it(
    client_in, turn, redis_relay, redis_url, monkeypatch
):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    # Claimed by another worker that has not opened it on the relay yet: the page reads checkpoints.
    await Message.objects.filter(pk=turn.pk).aupdate(status=Message.Status.STREAMING, updated_at=timezone.now())
    response = await open_stream(client_in, turn)
    chunks = aiter(response.streaming_content)
    raw = await read_until(chunks, "", lambda raw: "still being written" in raw)
    elsewhere = RedisRelay(redis_url)
    try:
        await elsewhere.open(turn.pk)
        await elsewhere.publish(turn.pk, "delta", text="Hello")
        raw = await read_until(chunks, raw, lambda raw: "id: 1" in raw)  # now on the relay
        await elsewhere.publish(turn.pk, "delta", text=" there")
        await Message.objects.filter(pk=turn.pk).aupdate(status=Message.Status.COMPLETE, content="Hello there")
        await elsewhere.publish(turn.pk, "end")
        raw += "".join([chunk.decode() async for chunk in chunks])
    finally:
        await elsewhere.aclose()

    events = parse(raw)
    assert [(name, event_id) for name, _, event_id in events if event_id] == [("delta", 1), ("delta", 2)]
    assert text_shown(events[:-1]) == "Hello there"
    assert events[-1][0] == "done"


# Redis unreachable, or failing midway -------------------------------------------------------------
@contextmanager
def private_redis():
    """A redis-server of this test's own, to stop midway (not the one the other tests share)."""
    redis_url_or_skip()
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("TEST_REDIS_URL is set but redis-server is not on PATH")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with redis.Redis.from_url(url, retry=None) as client:
            deadline = time.monotonic() + 30
            while True:  # waits for the state "answering", bounded by the deadline
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not start within 30 s"
                    time.sleep(0.05)
        yield process, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.asyncio
@pytest.mark.usefixtures("close_thread_connections")
async def test_redis_stopping_mid_reply_loses_nothing(client_in, turn, fake_upstream, monkeypatch, caplog, upstream_gate):
    fake_upstream.script(FakeReply(text=LONGER, hang_after=5))  # five words, then it waits for the gate
    with private_redis() as (server, url):
        relay = RedisRelay(url)
        relay_swap(monkeypatch, relay)
        try:
            response = await open_stream(client_in, turn)
            chunks = aiter(response.streaming_content)
            raw = await read_until(chunks, "", lambda raw: raw.count("event: delta") >= 3)

            server.terminate()  # Redis goes away while the reply is written
            await asyncio.to_thread(server.wait, 10)
            upstream_gate.set()  # the rest of the reply
            raw += "".join([chunk.decode() async for chunk in chunks])
        finally:
            await relay.aclose()

    saved = await reload(turn)
    assert (saved.status, saved.content) == (Message.Status.COMPLETE, LONGER)  # written and saved all the same
    events = parse(raw)
    # A page on the writer's own worker follows it in-process: live to the end, no gap.
    assert ("snapshot", "", None) not in events and text_shown(events[:-1]) == LONGER
    assert events[-1][0] == "done" and LONGER in BeautifulSoup(events[-1][1], "html.parser").get_text()
    warnings = relay_records(caplog)
    assert len([r for r in warnings if f"reply={turn.pk} " in r.getMessage()]) == 1  # one line for the reply
    assert len(warnings) <= 2  # and at most one for the worker's other uses of Redis
    assert all("unreachable" in r.getMessage() and r.exc_info is None for r in warnings)  # no tracebacks
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.asyncio
@pytest.mark.usefixtures("close_thread_connections")
async def test_redis_stopping_under_a_page_of_another_worker_goes_on_from_the_checkpoints(client_in, turn, monkeypatch):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    # Another worker writes the reply: it relayed a finished paragraph and checkpointed a bit more.
    await Message.objects.filter(pk=turn.pk).aupdate(
        status=Message.Status.STREAMING, content="First paragraph.\n\nSec", updated_at=timezone.now()
    )
    with private_redis() as (server, url):
        relay_swap(monkeypatch, RedisRelay(url))  # this worker's
        elsewhere = RedisRelay(url)
        try:
            await elsewhere.open(turn.pk)
            await elsewhere.publish(turn.pk, "block", html="<p>First paragraph.</p>", rest="Sec")
            chunks = aiter((await open_stream(client_in, turn)).streaming_content)
            raw = await read_until(chunks, "", lambda raw: "id: 1" in raw)  # followed on the relay

            server.terminate()  # Redis goes away under the page
            await asyncio.to_thread(server.wait, 10)
            raw = await asyncio.wait_for(read_until(chunks, raw, lambda raw: "event: tail" in raw.partition("id: 1")[2]), 60)
            await Message.objects.filter(pk=turn.pk).aupdate(status=Message.Status.COMPLETE)
            raw += "".join([chunk.decode() async for chunk in chunks])
        finally:
            await elsewhere.aclose()
            await relay_module.relay.aclose()

    events = parse(raw)
    assert ("snapshot", "", None) in events  # what the relay had shown is dropped, then read again:
    assert text_shown(events[:-1]) == "First paragraph.\n\nSec"  # shown once, from the checkpoint
    assert events[-1][0] == "done"


@pytest.mark.asyncio
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_page_that_finds_the_relayed_beginning_gone_reads_the_checkpoints(
    client_in, turn, redis_relay, redis_url, redis_client, monkeypatch
):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    await Message.objects.filter(pk=turn.pk).aupdate(
        status=Message.Status.STREAMING, content="One two", updated_at=timezone.now()
    )
    elsewhere = RedisRelay(redis_url)  # another worker writes the reply
    try:
        await elsewhere.open(turn.pk)
        for word in ("One", " two", " three"):
            await elsewhere.publish(turn.pk, "delta", text=word)
        redis_client.xdel(f"chatter:reply:{turn.pk}", "0-1")  # trimmed (a reply longer than MAXLEN)
        chunks = aiter((await open_stream(client_in, turn)).streaming_content)

        # Read from the checkpoints (not the relay again and again, which no longer has the beginning).
        raw = await asyncio.wait_for(read_until(chunks, "", lambda raw: "event: tail" in raw), 60)
        await Message.objects.filter(pk=turn.pk).aupdate(status=Message.Status.COMPLETE, content="One two three")
        await elsewhere.publish(turn.pk, "end")
        raw += "".join([chunk.decode() async for chunk in chunks])
    finally:
        await elsewhere.aclose()

    events = parse(raw)
    assert [name for name, *_ in events] == ["tail", "done"]
    assert text_shown(events[:-1]) == "One two"
    assert "One two three" in BeautifulSoup(events[-1][1], "html.parser").get_text()


@pytest.mark.asyncio
@pytest.mark.usefixtures("close_thread_connections")
async def test_an_unreachable_redis_loses_no_reply(client_in, turn, fake_upstream, monkeypatch, caplog):
    fake_upstream.script(FakeReply(text=WORDS))
    relay = RedisRelay(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    relay_swap(monkeypatch, relay)
    try:
        events, _ = await read(await open_stream(client_in, turn))
        stop = await client_in.post(reverse("conversations:reply_stop", args=[turn.conversation.public_id, turn.pk]))
    finally:
        await relay.aclose()

    saved = await reload(turn)
    assert (saved.status, saved.content) == (Message.Status.COMPLETE, WORDS)
    assert events[-1][0] == "done" and WORDS in BeautifulSoup(events[-1][1], "html.parser").get_text()
    assert stop.status_code == 204
    warnings = relay_records(caplog)
    assert len([r for r in warnings if f"reply={turn.pk} " in r.getMessage()]) == 1
    assert all(r.exc_info is None for r in warnings)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_message_is_sent_while_the_shared_cache_is_unreachable(signed_in, conversation, caplog):
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        }
    }
    with override_settings(CACHES=unreachable):  # (the cache is emptied after each test: not this one)
        response = signed_in.post(
            reverse("conversations:message_create", args=[conversation.public_id]), {"content": "Still there?"},
            headers={"HX-Request": "true"},
        )

    assert response.status_code == 200  # the rate limit is not counted, and the log says so
    assert Message.objects.filter(conversation=conversation, content="Still there?").exists()
    assert "Rate limit not counted, the cache is unreachable" in caplog.text


# Many pages ----------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_worker_follows_more_replies_from_another_than_redis_pys_default_pool_allows(
    redis_relay, redis_url, monkeypatch
):
    """redis-py's pool allows 100 connections unless told otherwise, and a follower's XREAD holds
    one while it waits: the 101st page used to get 'Too many connections' (and the checkpoints)."""
    # Each XREAD waits for its event however slow the machine (after FOLLOW_CHECK_SECONDS without
    # one, a follower looks at the reply's row: these replies have none, so it would stop there),
    # and 130 connections opened at once may take more than a second on a busy one.
    monkeypatch.setattr(relay_module, "FOLLOW_CHECK_SECONDS", 60)
    monkeypatch.setattr(relay_module, "CONNECT_SECONDS", 60)
    pages = 130
    elsewhere = RedisRelay(redis_url)  # the pages' worker; the writers are on redis_relay's
    try:
        for reply_id in range(1, pages + 1):
            await redis_relay.open(reply_id)
        followers = [asyncio.ensure_future(collect(elsewhere.follow(reply_id))) for reply_id in range(1, pages + 1)]
        async with asyncio.timeout(60):
            while len(elsewhere._connection().client.connection_pool._in_use_connections) < pages:
                await asyncio.sleep(0.01)  # every page waits in its XREAD
        for reply_id in range(1, pages + 1):
            await redis_relay.publish(reply_id, "delta", text=f"to {reply_id}")
            await redis_relay.publish(reply_id, "end")

        followed = await asyncio.wait_for(asyncio.gather(*followers), 60)
    finally:
        await elsewhere.aclose()

    assert followed == [[f"to {reply_id}"] for reply_id in range(1, pages + 1)]


async def collect(batches) -> list[str]:
    return [event.data["text"] async for batch in batches for event in batch]
