"""Benchmark: a crowd of conversations, each as the browser makes its turns (the HTMX send, then
the reply's stream), beside the fake upstream asked directly, at several sizes of crowd.

    [DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/NAME] [REDIS_URL=redis://HOST:PORT/9] \\
        .venv/bin/python -m bench.crowd [--levels 1,10,50,200,500] [--databases sqlite,postgres] \\
        [--workers 1,2] [--turns 3] [--first-delay 0.2 --chunks 50 --gap 0.02]

For each configuration (database × workers) it builds a throwaway database (SQLite: a file in a
temporary directory; PostgreSQL: a database beside the one DATABASE_URL names, copied from a
template and dropped at the end, as bench.db_pool does: the role needs CREATEDB), starts chatter
under uvicorn with that many workers (DEBUG off, chatter's own settings as in production; with 2
workers the relay and the cache on REDIS_URL, with 1 in the worker), and then, for each level N:

1. the baseline: N conversations at once, each asking the fake upstream directly (a streamed
   chat completion, the same script chatter gets) --turns times in sequence: time to the first
   token, time to [DONE];
2. chatter: N conversations at once, each doing --turns turns in sequence: the send (POST
   /c/<id>/messages/ with the session cookie, the CSRF cookie and X-CSRFToken, HX-Request and the
   other headers htmx sends), the stream URL read from its answer (sse-connect), the stream read
   to its end: from the start of the send to the first text event ("delta", "tail", "block" or
   "snapshot" with text), and to "done". A reply written before its stream opened (the crowd
   kept the stream waiting) has no text event: its text comes whole with "done", which is then
   its first text too (the bench counts these turns and prints how many).

A turn fails (an error) when the send is not answered 2xx or its answer has no stream, the stream
is not 200, it ends without "done", "done" carries a reply that is not complete, or a read waits
longer than --timeout seconds. A conversation stops at its first failed turn (its next send would
only be refused while the reply is still being written), so the turns it did not ask are missing
from "turns"; nothing is retried.

Figures per configuration and N (each row is printed as its level ends, and all in one Markdown
table at the end):

- turns: turns completed (stream to "done", reply complete) of N × --turns;
- errors: failed turns, chatter's and the baseline's (zero at every level is part of every figure);
- upstream first token / end: the baseline's medians (p50), from the same run at the same N;
- added first token, p50 and p95: the 50th and 95th percentiles of chatter's per-turn times (send
  to first text) minus the baseline's median first token. "Added end" likewise with send to
  "done" and the baseline's median time to [DONE]. (Each turn's time minus one number, the
  baseline's median: not the difference of two percentiles, which would mix in the baseline's own
  spread.)
- replies/s: turns completed / the wall time of the level (first send to last "done");
- CPU per reply: CPU time of the server's process tree (uvicorn and all its workers) during the
  level / turns completed (the send, the stream and the reply's job; no titles: see below);
- peak RSS: the most resident memory of the server's processes at once (VmRSS summed over the
  tree: uvicorn's supervisor, if any, and its workers), sampled every 0.2 s during the level;
- bench CPU: the bench's own CPU during the baseline and during the chatter level, as % of one
  core: this process (the client) and the fake upstream's process, summed (each apart, and the
  worst lateness of the client's event loop, in the line printed under each row). When one of
  them nears 100 %, the bench and not chatter sets the pace.

What the bench sets for chatter, besides bench_env (DEBUG off, plain HTTP): each conversation is
its own user's (max(levels) users, a new empty conversation each per level, so every turn of a
level has the same context), so REPLIES_AT_ONCE_PER_USER (2) never refuses (one reply at a time
per user) and stays as it is; SEND_RATE_PER_USER is raised to 1000000/m, since a user sends in
every level (and more often than 20 a minute with larger --turns); GENERATED_TITLES=false, so
the first turn of each conversation does not ask the model for a title (not part of a turn's
path, and it would add an upstream request and its CPU to the first reply only). The
conversations exist before the level (as if each page were open), so a send goes to
/c/<id>/messages/, not /new/messages/. Before a level, each worker has served a turn or two
(the first request of a worker costs more). With 2 workers the bench deletes the keys
"chatter:reply:*" from REDIS_URL's database before starting chatter: a new database numbers
its replies from 1 again, and a stream must not follow an earlier run's reply of the same id.

The fake upstream (bench.fake_upstream) answers every request with --chunks tokens, the first
after --first-delay seconds, then --gap seconds apart. --upstream process (the default) runs it
in a process of its own, --upstream thread in this one (its own event loop in a thread, as the
other benchmarks do). One process is not enough at the larger levels: on the 2-core machine
(2026-11-29), the baseline alone at N = 500 (1,500 streams, 25,000 tokens a second) took 93 % of
a core with the upstream in a thread, its loop up to 270 ms late, and the median stream ended
after 2.6 s instead of 1.25 s; in two processes, 48-68 % and 58-76 % of a core, ending after
1.4-2.1 s (the rest: the machine's 2 cores were shared). During chatter's levels the bench
needs far less (chatter's pace sets the tokens a second).

A configuration whose needs are missing is skipped with one line: PostgreSQL without a
PostgreSQL DATABASE_URL, 2 workers without REDIS_URL. Ctrl-C (or the end) stops the servers and
drops the throwaway databases. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import psycopg
from psycopg import sql

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.db_pool import CSRF, STREAM_URL, database_url, tree_cpu_seconds  # noqa: E402
from bench.fake_upstream import FakeReply, FakeUpstream  # noqa: E402
from bench.stream_bench import bench_account, bench_env, cpu_seconds, upstream_request  # noqa: E402
from bench.turn_bench import p  # noqa: E402
from conversations.tests.asgi_server import free_port  # noqa: E402

FIRST_TEXT = re.compile(rb"event: (?:delta|tail|block|snapshot)\ndata: [^\n]")  # an event with text
DONE = b"event: done\n"
UPSTREAM_TEXT = re.compile(rb'"content": "[^"]')  # a delta with text (the role chunk's content is "")
UPSTREAM_DONE = b"data: [DONE]"
MARKER = "CROWD-PREPARED "


# The throwaway data ------------------------------------------------------------------------------
def prepare_child() -> None:
    """Run in a child process whose environment names the database (a template): migrate it, then
    the model (served by the fake upstream), max(levels) users signed in, and for each level and
    for the warm-up a new conversation per user. Prints MARKER + JSON for the parent."""
    spec = json.loads(os.environ["CROWD_PREPARE"])
    _, model, _ = bench_account(dict(os.environ), SimpleNamespace(openai_base_url=spec["upstream"]))
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import connections
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from conversations.models import Conversation

    User = get_user_model()
    users = []
    for n in range(spec["users"]):
        user = User(username=f"crowd{n}", email=f"crowd{n}@example.com", email_verified_at=timezone.now())
        user.set_unusable_password()
        users.append(user)
    users = User.objects.bulk_create(users, batch_size=500)
    expires = timezone.now() + datetime.timedelta(days=1)
    sessions = []
    for user in users:
        data = {"_auth_user_id": str(user.pk), "_auth_user_hash": user.get_session_auth_hash(),
                "_auth_user_backend": "django.contrib.auth.backends.ModelBackend"}
        sessions.append(Session(session_key=get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789"),
                                session_data=SessionStore().encode(data), expire_date=expires))
    Session.objects.bulk_create(sessions, batch_size=500)
    conversations = {}
    for group, size in [("warm", spec["warm"]), *((str(n), n) for n in spec["levels"])]:
        made = Conversation.objects.bulk_create(
            [Conversation(user=users[i], model=model, title=f"crowd {group} {i}") for i in range(size)], batch_size=500
        )
        conversations[group] = [str(c.public_id) for c in made]
    connections.close_all()
    if hasattr(connections["default"], "close_pool"):
        connections["default"].close_pool()  # nothing may hold a PostgreSQL template open
    print(MARKER + json.dumps({"model": model.pk, "sessions": [s.session_key for s in sessions],
                               "conversations": conversations}), flush=True)


def prepare(env: dict[str, str], upstream_url: str, levels: list[int], warm: int) -> dict:
    spec = {"upstream": upstream_url, "users": max([*levels, warm]), "levels": levels, "warm": warm}
    done = subprocess.run(
        [sys.executable, "-c", "import bench.crowd; bench.crowd.prepare_child()"],
        cwd=BASE_DIR, env={**env, "CROWD_PREPARE": json.dumps(spec)}, capture_output=True, text=True, timeout=600,
    )
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise RuntimeError(f"preparing the database failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


# The fake upstream ---------------------------------------------------------------------------
def serve_upstream_child() -> None:
    """Run in a child process: the fake upstream with the reply in CROWD_REPLY; prints its port,
    serves until its stdin closes (the parent ended)."""
    with FakeUpstream() as upstream:
        upstream.default_reply = FakeReply(**json.loads(os.environ["CROWD_REPLY"]))
        upstream.requests = _Forgetful()
        print(upstream.port, flush=True)
        sys.stdin.read()


class _Forgetful(list):
    """FakeUpstream records each request; tens of thousands need not be kept."""

    def append(self, item) -> None:
        pass


class Upstream:
    """The fake upstream in this process (a thread of its own) or in a child process."""

    def __init__(self, mode: str, reply: dict) -> None:
        self.mode, self.process, self.fake = mode, None, None
        if mode == "thread":
            self.fake = FakeUpstream().start()
            self.fake.default_reply = FakeReply(**reply)
            self.fake.requests = _Forgetful()
            self.port = self.fake.port
        else:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "import bench.crowd; bench.crowd.serve_upstream_child()"], cwd=BASE_DIR,
                env={**os.environ, "CROWD_REPLY": json.dumps(reply)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True, start_new_session=True,
            )
            try:
                self.port = int(self.process.stdout.readline())
            except BaseException:
                self.process.kill()
                self.process.wait()
                raise
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid) if self.process else 0.0

    def stop(self) -> None:
        if self.fake:
            self.fake.stop()
        if self.process and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# chatter -------------------------------------------------------------------------------------
class Server:
    """chatter under uvicorn with `workers` workers (its own session: stopped here only)."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.port, self.workers, self.log = free_port(), workers, log
        self.log_file = open(log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "chatter.asgi:application", "--port", str(self.port),
             "--lifespan", "off", "--no-access-log", "--log-level", "info", "--workers", str(workers)],
            cwd=BASE_DIR, env=env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 120
        try:
            # Each worker says "Started server process" once it has loaded the app (and chatter.warm).
            while self.log.read_text().count("Started server process") < workers:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def pids(self) -> list[int]:
        pids = [self.process.pid]
        for pid in pids:
            for children in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    pids += [int(child) for child in children.read_text().split()]
                except OSError:
                    pass
        return pids

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if found := re.search(r"^VmRSS:\s+(\d+) kB", status, re.M):
                total += int(found.group(1))
        return total / 1024

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> Counter:
        with open(self.log, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
        lines = text.splitlines()
        return Counter({
            "WARNING": sum("WARNING" in line for line in lines),
            "ERROR": sum("ERROR" in line for line in lines),
            "Traceback": text.count("Traceback (most recent call last)"),
        }) + Counter()  # the zeros dropped

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # any worker left behind (its own session)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.log_file.close()


# The client ----------------------------------------------------------------------------------
class Failed(Exception):
    """A turn failed: its kind (counted) and what was received."""


async def exchange(port: int, request: bytes, timeout: float, *, first: re.Pattern | None = None,
                   end: bytes | None = None) -> tuple[int, bytes, float | None, float | None]:
    """One request on its own connection (Connection: close), every step with a deadline:
    (status, raw response, perf_counter when `first` first matched, when `end` showed up). Read to
    the connection's close (chatter's stream closes just after "done", whose bubble is read too),
    except the upstream's stream, left at [DONE]."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    buffer, first_at, end_at = bytearray(), None, None
    try:
        writer.write(request)
        await asyncio.wait_for(writer.drain(), timeout)
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            buffer += chunk
            if first is not None and first_at is None and first.search(buffer):
                first_at = time.perf_counter()
            if end is not None and end_at is None and end in buffer[-len(chunk) - len(end):]:
                end_at = time.perf_counter()
                if end == UPSTREAM_DONE:
                    break
    finally:
        writer.close()
    status = int(buffer.split(b" ", 2)[1]) if buffer.startswith(b"HTTP/") else 0
    return status, bytes(buffer), first_at, end_at


@dataclass
class Level:
    turns: int = 0  # asked
    done: int = 0  # completed
    firsts: list[float] = field(default_factory=list)  # seconds from the send to the first text
    ends: list[float] = field(default_factory=list)  # ... to "done" (or [DONE])
    sends: list[float] = field(default_factory=list)  # the send's own time
    errors: Counter = field(default_factory=Counter)
    whole: int = 0  # replies written before their stream opened: first text with "done"
    seconds: float = 0.0
    bench_cpu: float = 0.0  # this process, % of a core
    upstream_cpu: float = 0.0  # the upstream's process, % of a core
    lag_ms: float = 0.0  # the worst lateness of this process's event loop(s)


async def chatter_turns(port: int, session: str, conversation: str, model: int, turns: int, timeout: float,
                        level: Level) -> None:
    """One conversation's turns, as the page makes them, one after another."""
    origin = f"http://127.0.0.1:{port}"
    page = f"/c/{conversation}/"
    head = f"Host: 127.0.0.1:{port}\r\nCookie: sessionid={session}; csrftoken={CSRF}\r\nReferer: {origin}{page}\r\n"
    for n in range(turns):
        level.turns += 1
        body = urlencode({"model": model, "content": f"Question {n + 1}: tell me something."}).encode()
        send = (
            f"POST {page}messages/ HTTP/1.1\r\n{head}Origin: {origin}\r\nX-CSRFToken: {CSRF}\r\n"
            f"HX-Request: true\r\nHX-Current-URL: {origin}{page}\r\nHX-Target: message-list\r\n"
            "HX-Trigger: composer\r\nAccept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        started = time.perf_counter()
        try:
            try:
                status, raw, _, _ = await exchange(port, send, timeout)
            except (OSError, asyncio.TimeoutError) as error:
                raise Failed(f"send: {type(error).__name__}") from None
            sent = time.perf_counter()
            found = STREAM_URL.search(raw)
            if not 200 <= status < 300 or not found:
                raise Failed(f"send {status}" + ("" if status != 200 else " without a stream"))
            stream = (f"GET {found.group(1).decode()} HTTP/1.1\r\n{head}Accept: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\nConnection: close\r\n\r\n").encode()
            try:
                status, raw, first_at, done_at = await exchange(port, stream, timeout, first=FIRST_TEXT, end=DONE)
            except (OSError, asyncio.TimeoutError) as error:
                raise Failed(f"stream: {type(error).__name__}") from None
            if status != 200:
                raise Failed(f"stream {status}")
            if done_at is None:
                raise Failed("stream ended without done")
            if b"status-complete" not in raw[raw.rfind(DONE):]:
                raise Failed("reply not complete")
            if first_at is None:  # written before the stream opened: its text came whole, with "done"
                first_at = done_at
                level.whole += 1
        except Failed as failure:
            level.errors[str(failure)] += 1
            return
        level.done += 1
        level.sends.append(sent - started)
        level.firsts.append(first_at - started)
        level.ends.append(done_at - started)


async def upstream_turns(port: int, turns: int, timeout: float, level: Level) -> None:
    """One conversation's turns asked of the fake upstream directly."""
    request = upstream_request(port)
    for _ in range(turns):
        level.turns += 1
        started = time.perf_counter()
        try:
            status, _, first_at, done_at = await exchange(port, request, timeout, first=UPSTREAM_TEXT,
                                                          end=UPSTREAM_DONE)
        except (OSError, asyncio.TimeoutError) as error:
            level.errors[f"upstream: {type(error).__name__}"] += 1
            return
        if status != 200 or first_at is None or done_at is None:
            level.errors[f"upstream {status}" if status != 200 else "upstream stream cut"] += 1
            return
        level.done += 1
        level.firsts.append(first_at - started)
        level.ends.append(done_at - started)


async def _lateness(stop: threading.Event, worst: list[float], every: float = 0.05) -> None:
    """How late this event loop wakes from a short sleep, at worst (into worst[0], seconds)."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(every)
        worst[0] = max(worst[0], time.perf_counter() - started - every)


async def measured(crowd, upstream: Upstream, level: Level) -> None:
    """Run `crowd` (coroutines) at once, timing it and this process's CPU and loop lateness."""
    stop, worst, upstream_worst = threading.Event(), [0.0], [0.0]
    ticker = asyncio.ensure_future(_lateness(stop, worst))
    upstream_ticker = None
    if upstream.fake is not None:  # the upstream's own loop, in its thread
        upstream_ticker = asyncio.run_coroutine_threadsafe(_lateness(stop, upstream_worst), upstream.fake._loop)
    cpu, upstream_cpu, started = cpu_seconds(os.getpid()), upstream.cpu(), time.perf_counter()
    await asyncio.gather(*crowd)
    level.seconds = time.perf_counter() - started
    level.bench_cpu = (cpu_seconds(os.getpid()) - cpu) / level.seconds * 100
    level.upstream_cpu = (upstream.cpu() - upstream_cpu) / level.seconds * 100
    stop.set()
    await ticker
    if upstream_ticker is not None:
        await asyncio.wrap_future(upstream_ticker)
    level.lag_ms = max(worst[0], upstream_worst[0]) * 1000


class RssSampler(threading.Thread):
    def __init__(self, server: Server, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.server, self.every, self.peak, self.halt = server, every, 0.0, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak = max(self.peak, self.server.rss_mb())
            self.halt.wait(self.every)

    def stop(self) -> float:
        self.halt.set()
        self.join()
        self.peak = max(self.peak, self.server.rss_mb())
        return self.peak


# One configuration ---------------------------------------------------------------------------
@dataclass
class Row:
    database: str
    workers: int
    n: int
    chatter: Level
    baseline: Level
    cpu_ms: float
    rss_mb: float
    log: Counter
    turns: int  # each conversation's

    def cells(self) -> list[str]:
        c, b = self.chatter, self.baseline
        base_first = statistics.median(b.firsts) if b.firsts else None
        base_end = statistics.median(b.ends) if b.ends else None

        def added(values: list[float], base: float | None, q: int) -> str:
            return f"{p(values, q) - base * 1000:.0f}" if values and base is not None else "—"

        errors = sum(c.errors.values()) + sum(b.errors.values())
        return [
            self.database, str(self.workers), f"{self.n:,}",
            f"{c.done:,} of {self.n * self.turns:,}",
            f"{errors}" if not b.errors else f"{errors} ({sum(b.errors.values())} upstream)",
            f"{base_first * 1000:.0f}" if base_first is not None else "—",
            f"{added(c.firsts, base_first, 50)} / {added(c.firsts, base_first, 95)}",
            f"{base_end * 1000:.0f}" if base_end is not None else "—",
            f"{added(c.ends, base_end, 50)} / {added(c.ends, base_end, 95)}",
            f"{c.done / c.seconds:.1f}" if c.seconds else "—",
            f"{b.done / b.seconds:.1f}" if b.seconds else "—",
            f"{self.cpu_ms:.0f}" if c.done else "—",
            f"{self.rss_mb:.0f}",
            f"{b.bench_cpu + b.upstream_cpu:.0f} / {c.bench_cpu + c.upstream_cpu:.0f}",
        ]


HEADER = ["database", "workers", "N", "turns", "errors", "upstream first token p50 (ms)",
          "added first token p50 / p95 (ms)", "upstream end p50 (ms)", "added end p50 / p95 (ms)", "replies/s",
          "upstream replies/s", "CPU per reply (ms)", "peak RSS (MB)", "bench CPU % (baseline / chatter)"]


def details(row: Row) -> str:
    c, b = row.chatter, row.baseline
    bench = f"bench CPU: this process {b.bench_cpu:.0f} / {c.bench_cpu:.0f} %"
    if b.upstream_cpu or c.upstream_cpu:
        bench += f", the upstream's {b.upstream_cpu:.0f} / {c.upstream_cpu:.0f} %"
    parts = [f"send p50 {p(c.sends, 50):.0f} ms" if c.sends else "no send answered",
             f"level {c.seconds:.1f} s, baseline {b.seconds:.1f} s",
             f"{bench}, worst loop lag {max(b.lag_ms, c.lag_ms):.0f} ms"]
    if c.whole:
        parts.append(f"{c.whole} replies whole at \"done\" (ended before their stream opened)")
    if c.errors or b.errors:
        parts.append(f"errors: {dict(c.errors + b.errors)}")
    if row.log:
        parts.append(f"server log: {dict(row.log)}")
    return "; ".join(parts)


def run_configuration(args, database: str, workers: int, env: dict[str, str], data: dict, upstream: Upstream,
                      log: Path, rows: list[Row]) -> None:
    """Each level against one server; each row is added to `rows` as it ends."""
    server = Server(env, workers, log)
    try:
        sessions, conversations, model = data["sessions"], data["conversations"], data["model"]

        async def warm_up() -> None:
            level = Level()
            await asyncio.gather(*(chatter_turns(server.port, sessions[i], c, model, 1, args.timeout, level)
                                   for i, c in enumerate(conversations["warm"])))
            if level.errors:
                print(f"  warm-up: {dict(level.errors)}", flush=True)

        asyncio.run(warm_up())
        for n in args.levels:
            if server.process.poll() is not None:
                print(f"  the server has exited (code {server.process.returncode}); levels from N = {n:,} skipped",
                      flush=True)
                break
            time.sleep(1)  # what the previous level left (titles are off; a reply's end) settles
            baseline, chatter = Level(), Level()
            asyncio.run(measured([upstream_turns(upstream.port, args.turns, args.timeout, baseline)
                                  for _ in range(n)], upstream, baseline))
            time.sleep(0.5)
            offset, rss = server.log_size(), RssSampler(server)
            cpu = tree_cpu_seconds(server.process.pid)
            rss.start()
            try:
                asyncio.run(measured([chatter_turns(server.port, sessions[i], c, model, args.turns, args.timeout,
                                                    chatter) for i, c in enumerate(conversations[str(n)])],
                                     upstream, chatter))
            finally:
                peak = rss.stop()
            cpu = tree_cpu_seconds(server.process.pid) - cpu
            row = Row(database, workers, n, chatter, baseline, cpu / max(chatter.done, 1) * 1000, peak,
                      server.log_since(offset), args.turns)
            rows.append(row)
            print("| " + " | ".join(row.cells()) + " |", flush=True)
            print(f"    {details(row)}", flush=True)
    finally:
        server.stop()


def redis_forget_replies(url: str) -> None:
    import redis

    with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) as client:
        client.ping()
        keys = list(client.scan_iter("chatter:reply:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])


# Main ----------------------------------------------------------------------------------------
def _interrupted(*_) -> None:
    raise KeyboardInterrupt


def machine() -> str:
    model = "unknown CPU"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    return (f"{datetime.date.today().isoformat()}, nproc {len(os.sched_getaffinity(0))}, {model}, "
            f"Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,10,50,200,500", help="conversations at once, in order")
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite, postgres (needs DATABASE_URL)")
    parser.add_argument("--workers", default="1,2", help="uvicorn workers: 1, 2 (more than 1 needs REDIS_URL)")
    parser.add_argument("--turns", type=int, default=3, help="turns each conversation takes, one after another")
    parser.add_argument("--first-delay", type=float, default=0.2, help="seconds to the upstream's first token")
    parser.add_argument("--chunks", type=int, default=50, help="tokens per reply")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between the upstream's tokens")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds any one read may wait")
    parser.add_argument("--upstream", choices=["process", "thread"], default="process",
                        help="the fake upstream in a process of its own, or in a thread of this one")
    parser.add_argument("--log-dir", type=Path, help="keep each configuration's server log here")
    args = parser.parse_args()
    args.levels = [int(n) for n in args.levels.split(",")]
    databases = [d.strip() for d in args.databases.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]

    signal.signal(signal.SIGTERM, _interrupted)  # cleaned up as for Ctrl-C
    admin_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    configurations = []
    for database in databases:
        if database not in ("sqlite", "postgres"):
            sys.exit(f"unknown database {database!r}: sqlite or postgres")
        if database == "postgres" and not admin_url.startswith(("postgres://", "postgresql://")):
            print("skipped: PostgreSQL (set DATABASE_URL=postgres://... to a role that may create databases)")
            continue
        for workers in worker_counts:
            if workers > 1 and not redis_url:
                print(f"skipped: {database}, {workers} workers "
                      "(set REDIS_URL=redis://...: replies' relay across workers)")
                continue
            configurations.append((database, workers))
    if not configurations:
        return

    reply = {"text": " ".join(f"word{n}" for n in range(args.chunks)), "first_delay": args.first_delay,
             "delay": args.gap}
    header = (f"chatter crowd benchmark ({machine()}): send then stream, {args.turns} turns per conversation; "
              f"fake upstream: first token after {args.first_delay * 1000:.0f} ms, then {args.chunks} tokens "
              f"{args.gap * 1000:.0f} ms apart (in {'its own' if args.upstream == 'process' else 'this'} process)")
    print(header, flush=True)
    print("| " + " | ".join(HEADER) + " |\n|" + " --- |" * len(HEADER), flush=True)
    started = time.monotonic()
    rows: list[Row] = []
    prefix = f"chatter_crowd_{os.getpid()}"
    created: list[str] = []  # PostgreSQL databases to drop
    tmp = Path(tempfile.mkdtemp(prefix="chatter-crowd-"))
    upstream = admin = None
    try:
        upstream = Upstream(args.upstream, reply)
        base_env = bench_env(GENERATED_TITLES="false", SEND_RATE_PER_USER="1000000/m", REDIS_URL="")
        warm = 2 * max(w for _, w in configurations)
        templates: dict[str, str] = {}  # database kind -> its template's DATABASE_URL or SQLite file
        prepared: dict[str, dict] = {}  # database kind -> the users, sessions and conversations in its template
        for database, workers in configurations:
            name = f"{database}, {workers} worker{'s' if workers > 1 else ''}"
            try:
                if database == "postgres":
                    if admin is None:
                        admin = psycopg.connect(admin_url, autocommit=True)
                    if "postgres" not in templates:
                        template = f"{prefix}_template"
                        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
                        created.append(template)
                        templates["postgres"] = database_url(admin_url, template)
                        prepared["postgres"] = prepare({**base_env, "DATABASE_URL": templates["postgres"]},
                                                       upstream.url, args.levels, warm)
                    target = f"{prefix}_{workers}w"
                    admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(target), sql.Identifier(f"{prefix}_template")))
                    created.append(target)
                    url, data = database_url(admin_url, target), prepared["postgres"]
                else:
                    if "sqlite" not in templates:
                        templates["sqlite"] = str(tmp / "template.sqlite3")
                        prepared["sqlite"] = prepare({**base_env, "DATABASE_URL": f"sqlite:///{templates['sqlite']}"},
                                                     upstream.url, args.levels, warm)
                    target = tmp / f"{workers}w.sqlite3"
                    for suffix in ("", "-wal"):
                        if Path(templates["sqlite"] + suffix).exists():
                            shutil.copy(templates["sqlite"] + suffix, str(target) + suffix)
                    url, data = f"sqlite:///{target}", prepared["sqlite"]
                env = {**base_env, "DATABASE_URL": url}
                if workers > 1:
                    redis_forget_replies(redis_url)
                    env["REDIS_URL"] = redis_url
                log_dir = args.log_dir or tmp
                log_dir.mkdir(parents=True, exist_ok=True)
                try:
                    run_configuration(args, database, workers, env, data, upstream,
                                      log_dir / f"{database}-{workers}w.log", rows)
                finally:
                    if workers > 1:
                        redis_forget_replies(redis_url)
            except KeyboardInterrupt:
                raise
            except Exception as error:  # noqa: BLE001 - one configuration breaks, the others run
                print(f"  {name}: broke ({type(error).__name__}: {str(error)[:2000]})", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", flush=True)
    finally:
        if upstream is not None:
            upstream.stop()
        if admin is not None:
            for database in reversed(created):
                try:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
                except Exception as error:  # noqa: BLE001
                    print(f"could not drop {database}: {error}")
            admin.close()
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(f"\n{header}; whole run {elapsed / 60:.1f} min\n")
    print("| " + " | ".join(HEADER) + " |\n|" + " --- |" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")
    if rows:
        print()
    for row in rows:
        print(f"- {row.database}, {row.workers} worker{'s' if row.workers > 1 else ''}, N = {row.n:,}: {details(row)}")


if __name__ == "__main__":
    main()
