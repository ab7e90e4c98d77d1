"""The relay: carries a reply's events from the job that writes it to every page watching it.

The writer (services.reply_write) publishes each event with the next sequence number: "delta"
(text added after the last finished block), "block" (finished blocks rendered, and the text
after them), then "end" once the reply is saved. A watcher (the SSE view) follows from any
point: the events it has not seen, then each new one as it comes, until "end". Stop travels
the other way: any request can ask the writer to stop.

In-process (this module's LocalRelay) by default: one worker, nothing to install. The events of
a reply are kept while it is written and KEEP_SECONDS after it ends (a page that attaches later
reads the saved reply instead). A watcher of a reply this relay does not know (written by
another worker, or before a restart) gets None, and reads the database's checkpoints instead.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

KEEP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Event:
    seq: int  # 1, 2, 3... within one reply
    kind: str  # "delta", "block" or "end"
    data: dict[str, Any]


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

    def open(self, reply_id: int) -> asyncio.Event | None:
        """A writer starts on `reply_id`: its events begin. Returns the event set when a stop is
        asked for (see `stop`), or None when a writer here has the reply already."""
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

    def knows(self, reply_id: int) -> bool:
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
            seen = len(channel.events)
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


relay = LocalRelay()
