"""chatter.threads: requests take turns on a few shared threads for their synchronous work, each
request's calls on one thread, a new request on the least busy one."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from chatter.threads import SharedThreads

WAIT = 30  # seconds any step may take on a busy machine before the test fails


def http_scope(path: str = "/") -> dict:
    return {"type": "http", "path": path, "method": "GET", "headers": []}


async def nothing_received() -> dict:
    return {"type": "http.disconnect"}


async def nothing_sent(message: dict) -> None:
    pass


@pytest.mark.asyncio
async def test_a_requests_calls_run_on_one_shared_thread_and_many_requests_on_few():
    calls: dict[int, set[str]] = {}

    async def app(scope, receive, send):
        for _ in range(3):
            name = await sync_to_async(lambda: threading.current_thread().name)()
            calls.setdefault(scope["request"], set()).add(name)

    shared = SharedThreads(app, threads=3)
    before = threading.active_count()
    await asyncio.wait_for(
        asyncio.gather(*(shared({**http_scope(), "request": n}, nothing_received, nothing_sent) for n in range(20))),
        WAIT,
    )

    assert all(len(names) == 1 for names in calls.values()), calls  # thread-sensitive: one thread each
    used = set().union(*calls.values())
    assert len(used) <= 3 and all(name.startswith("requests-") for name in used), used
    assert threading.active_count() - before <= 3  # not a thread per request


@pytest.mark.asyncio
async def test_a_request_that_waits_in_its_thread_holds_up_none_that_come_after():
    held = threading.Event()
    release = threading.Event()
    served: list[int] = []

    async def app(scope, receive, send):
        if scope["request"] == 0:
            await sync_to_async(lambda: (held.set(), release.wait(WAIT)))()
        else:
            await sync_to_async(lambda: None)()
        served.append(scope["request"])

    shared = SharedThreads(app, threads=2)
    first = asyncio.ensure_future(shared({**http_scope(), "request": 0}, nothing_received, nothing_sent))
    try:
        await asyncio.wait_for(asyncio.to_thread(held.wait, WAIT), WAIT)
        # The first request's thread is busy: the next ones take the other thread.
        await asyncio.wait_for(
            asyncio.gather(*(shared({**http_scope(), "request": n}, nothing_received, nothing_sent) for n in (1, 2))),
            WAIT,
        )
        assert served == [1, 2]
        assert [thread.requests for thread in shared.threads] == [1, 0]
    finally:
        release.set()
        await asyncio.wait_for(first, WAIT)
    assert served == [1, 2, 0]
    assert [thread.requests for thread in shared.threads] == [0, 0]


@pytest.mark.asyncio
async def test_other_connections_pass_through():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    shared = SharedThreads(app, threads=1)
    await shared({"type": "lifespan"}, nothing_received, nothing_sent)
    assert seen == ["lifespan"] and shared.threads[0].requests == 0
