"""Requests share a few threads for their synchronous work, instead of one each.

Under ASGI, Django gives every request a thread of its own for its synchronous work (its
database queries, its view when the view is sync), created at the first such call and ended
with the request. That costs a thread's start, and a database connection opened and closed, per
request; and a stream stays open as long as its reply is written, mostly waiting, and its
thread with it: about 100 KB each (bench/idle_streams.py), for the two or three short calls a
stream makes. Here each request runs in a context whose thread-sensitive calls go to one of a
few threads (SYNC_VIEWS_AT_ONCE: as many as the sync views that may run at once), each running
one call at a time, as a request's own thread does (asgiref's ThreadSensitiveContext with an
executor; Django's own context inside it then uses it). A request takes the least busy thread,
so one that waits long in its thread (for a database lock, say) holds up none that come after
it. The threads keep their database connections between requests where Django is told to
(CONN_MAX_AGE, SQLite); on PostgreSQL each request gives its connection back to the pool. A
stream's calls give theirs back before it waits (views.reply_stream).
"""

from concurrent.futures import Future, ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext


class _Thread(ThreadPoolExecutor):
    """One thread, knowing the calls given to it that have not ended yet."""

    def __init__(self, name: str) -> None:
        super().__init__(max_workers=1, thread_name_prefix=name)
        self.calls: set[Future] = set()  # set.add and set.discard are atomic: no lock needed
        self.requests = 0  # requests in progress that use this thread

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = super().submit(fn, *args, **kwargs)
        self.calls.add(future)
        future.add_done_callback(self.calls.discard)
        return future


class SharedThreads:
    """ASGI middleware: HTTP requests take turns on a few threads for their synchronous work."""

    def __init__(self, app, *, threads: int) -> None:
        self.app = app
        self.threads = [_Thread(f"requests-{n}") for n in range(threads)]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # The least busy: the fewest calls waiting or running (a thread stuck in a long call has
        # one), then the fewest requests (a stream's are mostly waiting elsewhere).
        thread = min(self.threads, key=lambda each: (len(each.calls), each.requests))
        thread.requests += 1
        try:
            async with ThreadSensitiveContext(executor=thread):
                return await self.app(scope, receive, send)
        finally:
            thread.requests -= 1
