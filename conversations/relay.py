"""The relay: carries a reply's events from the job that writes it to every page watching it.

The writer (services.reply_write) publishes each event with the next sequence number: "delta"
(text added after the last finished block), "block" (finished blocks rendered, and the text
after them), then "end" once the reply is saved. A watcher (the SSE view) follows from any
point: the events it has not seen, then each new one as it comes, until "end". Stop travels
the other way: any request can ask the writer to stop.

Only the job that claimed the reply in the database (services.reply_start: one per reply,
whichever worker) opens it here, so `open` is called once per writing of a reply.

In-process (LocalRelay) by default: one worker, nothing to install. With REDIS_URL set,
RedisRelay: the events go through Redis, so a page on any worker follows a reply written on any
other, and a stop asked on any worker reaches the writer. The events of a reply are kept while
it is written and KEEP_SECONDS after it ends (a page that attaches later reads the saved reply
instead). A watcher of a reply the relay does not know (`knows` is False: written by another
worker without Redis, or before a restart, or Redis is unreachable) reads the database's
checkpoints instead, and so does one whose relay fails midway (`follow` raises RelayUnavailable).
"""

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
from redis.backoff import NoBackoff
from redis.retry import Retry

from chatter.db import connection_release
from conversations.models import Message

logger = logging.getLogger(__name__)

KEEP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Event:
    seq: int  # 1, 2, 3... within one reply
    kind: str  # "delta", "block" or "end"
    data: dict[str, Any]


class RelayUnavailable(Exception):
    """The relay cannot carry (the rest of) the reply's events: read the database instead."""


@dataclass
class _Reply:
    events: list[Event] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # replaced after each event
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False


class LocalRelay:
    """The relay within one process. Used from its event loop only, except `stop_soon`."""

    def __init__(self) -> None:
        self._replies: dict[int, _Reply] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self, reply_id: int, *, wait: bool = True) -> asyncio.Event | None:
        """A writer starts on `reply_id`: its events begin. Returns the event set when a stop is
        asked for (see `stop`), or None when a writer here has the reply already. (`wait`: see
        RedisRelay.open; nothing here to wait for.)"""
        channel = self._replies.get(reply_id)
        if channel is not None and not channel.ended:
            return None
        self._loop = asyncio.get_running_loop()
        channel = self._replies[reply_id] = _Reply()
        return channel.stopped

    async def publish(self, reply_id: int, kind: str, **data: Any) -> int:
        channel = self._replies[reply_id]
        event = Event(len(channel.events) + 1, kind, data)
        channel.events.append(event)
        channel.ended = kind == "end"
        channel.changed.set()
        channel.changed = asyncio.Event()
        if channel.ended:
            asyncio.get_running_loop().call_later(KEEP_SECONDS, self._forget, reply_id, channel)
        return event.seq

    def _forget(self, reply_id: int, channel: _Reply) -> None:
        if self._replies.get(reply_id) is channel:
            del self._replies[reply_id]

    async def knows(self, reply_id: int) -> bool:
        return reply_id in self._replies

    async def follow(self, reply_id: int, *, after: int = 0) -> AsyncIterator[list[Event]]:
        """The reply's events after sequence number `after`, in batches: those there already,
        then each new one (or several, when they came together), up to "end" (not included).
        Nothing at all when this relay does not know the reply (check `knows` first)."""
        channel = self._replies.get(reply_id)
        if channel is None:
            return
        seen = after
        while True:
            changed = channel.changed  # set by the next event: taken before reading, so none is missed
            events = channel.events[seen:]
            seen = max(seen, len(channel.events))
            if channel.ended and not events:  # `after` was past the end (an id of an earlier run)
                return
            if events and events[-1].kind == "end":
                if events[:-1]:
                    yield events[:-1]
                return
            if events:
                yield events
            await changed.wait()

    async def stop(self, reply_id: int) -> bool:
        """Asks the writer of `reply_id` to stop; False when it is not written here."""
        channel = self._replies.get(reply_id)
        if channel is None or channel.ended:
            return False
        channel.stopped.set()
        return True

    def stop_soon(self, reply_id: int) -> None:
        """`stop`, from another thread (a sync view)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.stop(reply_id)))


# Redis ------------------------------------------------------------------------------------------
MAXLEN = 10_000  # events kept per reply (approximately: Redis trims whole nodes); a page that
# attaches to a longer reply than this finds its beginning gone and reads the checkpoints
LIVE_SECONDS = 3600.0  # a reply's events outlive its newest one by this much while it is written
# (its writer publishes again well before; a writer that died leaves nothing behind for long)
FOLLOW_CHECK_SECONDS = 1.0  # a follower that has had no event for this long looks at the reply's row
CONNECT_SECONDS = 1.0  # to connect to Redis, and to wait for the stop channel when opening
RECONNECT_SECONDS = 1.0  # between attempts to subscribe to the stop channel again


REDIS_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)


@dataclass
class _Writer:
    """A reply this process writes."""

    stopped: asyncio.Event  # set when a stop is asked for
    seq: int = 0
    relayed: bool = True  # False once Redis failed for this reply: nothing more is sent (no gaps)
    opening: asyncio.Task | None = None  # telling Redis a writer started (RedisRelay.open)


@dataclass
class _Connection:
    """The asyncio client and the stop channel's listener, for one event loop."""

    loop: asyncio.AbstractEventLoop
    client: redis.asyncio.Redis
    listener: asyncio.Task | None = None
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


class RedisRelay:
    """The relay through Redis, shared by every worker that has the same REDIS_URL.

    A reply's events are a stream, `<prefix>reply:<id>`, each entry added with the explicit id
    0-<seq> (so a page's Last-Event-ID is a position in the stream) and the fields kind and data
    (JSON), capped at about MAXLEN entries; it expires LIVE_SECONDS after its newest event while
    the reply is written, KEEP_SECONDS after its end. `<prefix>reply:<id>:writer` says a writer
    has opened the reply, before its first event (until the end, or LIVE_SECONDS). A follower
    reads the stream (XRANGE), then blocks for more (XREAD BLOCK); when no event comes for
    FOLLOW_CHECK_SECONDS it looks at the reply's row and stops following a reply saved
    meanwhile, or one whose writer died (the row no longer checkpointed: Message.is_stale). A
    stop is published on `<prefix>relay:stop`, to which each process that writes replies
    listens (one subscription per process).

    A page on the worker that writes the reply follows it in-process (as LocalRelay), without a
    round trip to Redis on the way to the first token.

    When Redis fails, nothing fails with it: a reply whose events cannot be sent is still
    written and saved (one WARNING line for the reply, and nothing more is sent for it, so no
    follower sees a gap), pages on other workers read the database's checkpoints, and the
    database's stop flag still stops the writer. Other failures are one WARNING line until
    Redis is reached again.
    """

    def __init__(self, url: str, *, prefix: str = "chatter:") -> None:
        self.url = url
        self.prefix = prefix
        self._writers: dict[int, _Writer] = {}
        # The replies written here, for the pages this worker serves: followed without Redis.
        self._local = LocalRelay()
        self._here: _Connection | None = None
        self._sync: redis.Redis | None = None  # for stop_soon
        self._down = False  # a failure was logged and Redis has not been reached since

    # Keys and clients
    def _stream(self, reply_id: int) -> str:
        return f"{self.prefix}reply:{reply_id}"

    def _marker(self, reply_id: int) -> str:
        return f"{self.prefix}reply:{reply_id}:writer"

    @property
    def _stop_channel(self) -> str:
        return f"{self.prefix}relay:stop"

    def _options(self) -> dict[str, Any]:
        return {
            "decode_responses": True,
            "socket_connect_timeout": CONNECT_SECONDS,
            # Longer than a follower's XREAD BLOCK, which waits up to FOLLOW_CHECK_SECONDS.
            "socket_timeout": FOLLOW_CHECK_SECONDS + 3,
            # One quick retry (a connection Redis closed while idle), not redis-py's ten: a
            # reply's writer must not wait on an unreachable Redis.
            "retry": Retry(NoBackoff(), 1),
            # A follower holds one while its XREAD blocks: one per page following a reply from here.
            "max_connections": settings.REDIS_RELAY_CONNECTIONS,
        }

    def _connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._here is None or self._here.loop is not loop:
            self._here = _Connection(loop, redis.asyncio.Redis.from_url(self.url, **self._options()))
        return self._here

    async def aclose(self) -> None:
        """Closes this event loop's connections (tests; a server keeps them for its lifetime)."""
        here, self._here = self._here, None
        if here is not None:
            if here.listener is not None:
                here.listener.cancel()
                with suppress(asyncio.CancelledError):
                    await here.listener
            await here.client.aclose()
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # Logging: one line per failure that matters, never one per event
    def _failed(self, error: BaseException, *, reply_id: int | None = None) -> None:
        cause = f"error={type(error).__name__}: {error}"
        if reply_id is not None:
            logger.warning(
                "Relay unreachable: reply=%s goes on without it (saved as usual; its pages on other "
                "workers read the database's checkpoints) %s", reply_id, cause,
            )
        elif not self._down:
            logger.warning("Relay unreachable: pages read the database's checkpoints until it is back %s", cause)
        self._down = True

    def _reached(self) -> None:
        if self._down:
            self._down = False
            logger.info("Relay reachable again")

    # The writer's side
    async def open(self, reply_id: int, *, wait: bool = True) -> asyncio.Event | None:
        """A writer starts on `reply_id` here: whatever an earlier writing of it left in Redis
        goes (a retry starts again from 1). Returns the event set when a stop is asked for, or
        None when a writer here has the reply already. This worker's pages can follow it at
        once; with `wait`, other workers' pages too, once this returns. Without, Redis is told
        meanwhile (a writer that has more to do first, such as asking the provider, does not
        wait for the round trip), and the reply's first event goes to Redis once it knows."""
        if reply_id in self._writers:
            return None
        if (stopped := await self._local.open(reply_id)) is None:
            return None
        writer = self._writers[reply_id] = _Writer(stopped)
        here = self._connection()
        if here.listener is None or here.listener.done():
            here.listener = here.loop.create_task(self._listen(here))
        writer.opening = here.loop.create_task(self._open_in_redis(reply_id, writer, here))
        if wait:
            await writer.opening
        return writer.stopped

    async def _open_in_redis(self, reply_id: int, writer: "_Writer", here: "_Connection") -> None:
        try:
            async with here.client.pipeline(transaction=True) as pipe:
                pipe.delete(self._stream(reply_id))
                pipe.set(self._marker(reply_id), os.getpid(), px=int(LIVE_SECONDS * 1000))
                await pipe.execute()
        except REDIS_ERRORS as error:
            writer.relayed = False
            self._failed(error, reply_id=reply_id)
        else:
            self._reached()
            # A stop asked for from now on must find this process listening (the database's
            # flag still stops the reply if not).
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(here.subscribed.wait(), CONNECT_SECONDS)

    async def publish(self, reply_id: int, kind: str, **data: Any) -> int:
        writer = self._writers[reply_id]
        writer.seq = seq = await self._local.publish(reply_id, kind, **data)  # this worker's pages first:
        await asyncio.sleep(0)  # they send it on before the round trip to Redis is even built
        if kind == "end":
            del self._writers[reply_id]
        await writer.opening
        if not writer.relayed:
            return seq
        stream = self._stream(reply_id)
        try:
            async with self._connection().client.pipeline(transaction=False) as pipe:
                fields = {"kind": kind, "data": json.dumps(data, separators=(",", ":"))}
                pipe.xadd(stream, fields, id=f"0-{seq}", maxlen=MAXLEN, approximate=True)
                if kind == "end":
                    pipe.pexpire(stream, int(KEEP_SECONDS * 1000))
                    pipe.delete(self._marker(reply_id))
                else:
                    pipe.pexpire(stream, int(LIVE_SECONDS * 1000))
                await pipe.execute()
        except REDIS_ERRORS as error:
            writer.relayed = False
            self._failed(error, reply_id=reply_id)
        return seq

    async def _listen(self, here: _Connection) -> None:
        """This process's subscription to the stop channel: each stop for a reply written here
        sets its event. Subscribes again after a failure, for as long as the process runs."""
        while True:
            pubsub = here.client.pubsub()
            try:
                await pubsub.subscribe(self._stop_channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        here.subscribed.set()
                        self._reached()
                    elif message["type"] == "message" and str(message["data"]).isdigit():
                        if (writer := self._writers.get(int(message["data"]))) is not None:
                            writer.stopped.set()
            except REDIS_ERRORS as error:
                here.subscribed.clear()
                self._failed(error)
            finally:
                with suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(RECONNECT_SECONDS)

    # The watchers' side
    async def knows(self, reply_id: int) -> bool:
        """Whether a page can follow the reply here: a writer has opened it, or its events are
        still kept. For a reply written on another worker, False when Redis is unreachable."""
        if reply_id in self._writers:
            return True
        try:
            found = await self._connection().client.exists(self._stream(reply_id), self._marker(reply_id))
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        self._reached()
        return found > 0

    async def follow(self, reply_id: int, *, after: int = 0) -> AsyncIterator[list[Event]]:
        """As LocalRelay.follow, from any worker. Also ends, before "end", when the reply's row
        says it is no longer written (saved, or its writer died). Raises RelayUnavailable when
        Redis fails, or no longer has the events right after `after` (trimmed: see MAXLEN).
        A reply written on this worker is followed here, without Redis (and whether or not Redis
        can be reached)."""
        if reply_id in self._writers:
            async for batch in self._local.follow(reply_id, after=after):
                yield batch
            return
        client = self._connection().client
        stream = self._stream(reply_id)
        seen = after
        try:
            entries = await client.xrange(stream, min=f"0-{after + 1}")
            self._reached()
            while True:
                if entries:
                    events = [_event(entry_id, fields) for entry_id, fields in entries]
                    if events[0].seq != seen + 1:
                        raise RelayUnavailable(f"reply {reply_id}: events {seen + 1} to {events[0].seq - 1} are gone")
                    seen = events[-1].seq
                    ended = events[-1].kind == "end"
                    if batch := events[:-1] if ended else events:
                        yield batch
                    if ended:
                        return
                read = await client.xread({stream: f"0-{seen}"}, block=int(FOLLOW_CHECK_SECONDS * 1000))
                entries = read[0][1] if read else []
                if not entries and not await _still_written(reply_id):
                    return
        except REDIS_ERRORS as error:
            self._failed(error)
            raise RelayUnavailable(f"reply {reply_id}: {type(error).__name__}") from error

    # Stop
    async def stop(self, reply_id: int) -> bool:
        """Asks the writer of `reply_id`, on whichever worker, to stop; False when no worker has
        it open (or Redis is unreachable: the database's flag then reaches the writer)."""
        if (writer := self._writers.get(reply_id)) is not None:
            writer.stopped.set()
            return True
        try:
            async with self._connection().client.pipeline(transaction=False) as pipe:
                pipe.exists(self._marker(reply_id))
                pipe.publish(self._stop_channel, str(reply_id))
                writing, _ = await pipe.execute()
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        self._reached()
        return writing > 0

    def stop_soon(self, reply_id: int) -> None:
        """`stop`, from another thread (a sync view): through this process's event loop when the
        writer is here, else published with a sync client (the stop channel's listener on the
        writer's worker sets its event)."""
        here, writer = self._here, self._writers.get(reply_id)
        if writer is not None and here is not None and not here.loop.is_closed():
            here.loop.call_soon_threadsafe(writer.stopped.set)
            return
        try:
            if self._sync is None:
                self._sync = redis.Redis.from_url(self.url, **self._options())
            self._sync.publish(self._stop_channel, str(reply_id))
        except REDIS_ERRORS as error:
            self._failed(error)


def _event(entry_id: str, fields: dict[str, str]) -> Event:
    return Event(int(entry_id.partition("-")[2]), fields["kind"], json.loads(fields["data"]))


async def _still_written(reply_id: int) -> bool:
    """The reply's row says it is being written: in progress, and checkpointed lately. Asked
    while a page follows the reply, which holds no database connection meanwhile: the one
    this takes goes straight back to the pool. With none free in time the answer is yes (it is
    asked again FOLLOW_CHECK_SECONDS later); the writer's end comes through Redis anyway."""
    return await sync_to_async(_row_says_written)(reply_id)


def _row_says_written(reply_id: int) -> bool:
    try:
        row = Message.objects.filter(pk=reply_id).only("status", "updated_at").first()
    except DatabaseError:
        return True
    finally:
        connection_release()
    return row is not None and row.status in Message.IN_PROGRESS and not row.is_stale


def relay_for(url: str) -> LocalRelay | RedisRelay:
    """RedisRelay at `url` (REDIS_URL); LocalRelay when it is empty."""
    return RedisRelay(url) if url else LocalRelay()


relay = relay_for(settings.REDIS_URL)
