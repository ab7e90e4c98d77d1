"""Requests that stay open (a reply's stream, the wait for a new conversation's title) share a few
threads for their synchronous work, instead of one each.

Under ASGI, Django gives every request a thread of its own for its synchronous work (its
database queries, a template), created at the first such call and ended with the request. A
stream stays open as long as its reply is written, mostly waiting, and its thread with it: about
100 KB each (bench/idle_streams.py), for the two or three short calls a stream makes. Here those
requests run in a context whose thread-sensitive calls go to one of STREAM_THREADS threads, each
running one call at a time, as a request's own thread does (asgiref's ThreadSensitiveContext
with an executor; Django's own context inside it then uses it). A stream's calls end by giving
back their database connection (views.reply_stream), so the threads keep none for a stream.
"""

import itertools
import re
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext

STREAM_THREADS = 8
LONG_REQUESTS = re.compile(r"^/c/[0-9a-f-]{36}/(?:replies/\d+/stream|title)/$")


class SharedThreadsForLongRequests:
    """ASGI middleware: the requests whose path matches LONG_REQUESTS take turns on a few threads."""

    def __init__(self, app, *, threads: int = STREAM_THREADS) -> None:
        self.app = app
        self.executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"long-requests-{n}") for n in range(threads)
        ]
        self._next = itertools.cycle(self.executors)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not LONG_REQUESTS.match(scope.get("path", "")):
            return await self.app(scope, receive, send)
        async with ThreadSensitiveContext(executor=next(self._next)):
            return await self.app(scope, receive, send)
