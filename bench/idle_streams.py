"""Benchmark of idle reply streams: the worker's memory per open stream whose reply is waiting.

    .venv/bin/python -m bench.idle_streams [--streams 100,500] [--warmup 5]

For each count N (comma-separated; each on a fresh worker): chatter under uvicorn (one worker,
DEBUG off) on a throwaway SQLite database, and the fake OpenAI-compatible upstream (in this
process) scripted so that every reply hangs before its first token (FakeReply(hang_after=0)).
Pending replies are made in the database just before their streams open (a reply pending 12 s
is abandoned), and their stream URLs opened over raw sockets and kept open: the stream view
starts each reply's job, which asks the upstream and waits, holding one upstream connection.

It opens --warmup streams first (imports, caches, the SDK client, the relay: all loaded), waits
until the worker's RSS is steady, then opens N more and waits again. It prints the RSS before and
with the N streams, the difference per stream (goal: under 100 KB), the worker's connections to
the upstream and from the streams' clients (from /proc), its threads and the CPU it spends while
the streams are idle (the jobs checkpoint every 3 s). Everything is closed at the end: the
streams, then the upstream (which ends the hung responses, so the jobs end), then the worker.
Every socket read has a deadline. Nothing here is a test.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.fake_upstream import FakeReply, FakeUpstream  # noqa: E402
from bench.long_conversation import exit_on_sigterm, machine_line, uvicorn_worker  # noqa: E402
from bench.stream_bench import bench_account, bench_env, chatter_request, cpu_seconds  # noqa: E402

OPEN_MARK = b": stream open"
READ_DEADLINE = 30.0  # seconds for any one read: the stream's first bytes, or the next keep-alive (15 s)
BATCH = 50  # streams made and opened at once
STEADY_WINDOW = 8.0  # seconds of RSS samples that must agree (more than two checkpoints, 3 s apart)
STEADY_SPREAD_KB = 1024  # how much they may differ
STEADY_DEADLINE = 120.0


@dataclass
class Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    closed: bool = False  # the worker ended it (its reply ended: it should not, while idle)
    ended: bool = False  # an "event: done" came
    silent: int = 0  # reads that met their deadline with nothing (no keep-alive within 30 s)
    drain: asyncio.Task | None = None


@dataclass
class Figures:
    streams: int
    rss_kb: dict = field(default_factory=dict)  # "before", "after": steady VmRSS
    anon_kb: dict = field(default_factory=dict)  # RssAnon at the same moments
    upstream: dict = field(default_factory=dict)  # the worker's connections to the upstream
    clients: dict = field(default_factory=dict)  # the worker's connections from stream clients
    threads: dict = field(default_factory=dict)
    cpu_percent: dict = field(default_factory=dict)  # of one core, over the steady window
    settle_s: dict = field(default_factory=dict)
    open_s: float = 0.0
    opened: int = 0
    failed: int = 0
    closed: int = 0
    ended: int = 0
    silent: int = 0
    upstream_requests: int = 0


def status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def connections(pid: int, *, local_port: int | None = None, remote_port: int | None = None) -> int:
    """The process's established TCP connections (IPv4), by local or remote port."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
        if state != "01" or inode not in inodes:
            continue
        if local_port is not None and int(local.split(":")[1], 16) != local_port:
            continue
        if remote_port is not None and int(remote.split(":")[1], 16) != remote_port:
            continue
        count += 1
    return count


def replies_make(user, model, count: int) -> list[str]:
    """`count` conversations, each a question and its pending reply: the replies' stream paths."""
    from conversations.models import Conversation, Message

    conversations = Conversation.objects.bulk_create(
        [Conversation(user=user, model=model, title="idle") for _ in range(count)]
    )
    questions = Message.objects.bulk_create(
        [Message(conversation=c, role="user", content="Tell me something.", token_count=12) for c in conversations]
    )
    replies = Message.objects.bulk_create(
        [Message(conversation=q.conversation, parent=q, role="assistant", status="pending", model=model) for q in questions]
    )
    return [f"/c/{reply.conversation.public_id}/replies/{reply.pk}/stream/" for reply in replies]


async def stream_open(port: int, path: str, session: str) -> Stream:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), READ_DEADLINE)
    try:
        writer.write(chatter_request(port, path, session))
        await writer.drain()
        buffer = b""
        while OPEN_MARK not in buffer:
            chunk = await asyncio.wait_for(reader.read(65536), READ_DEADLINE)
            if not chunk:
                raise RuntimeError(f"the stream closed before it opened: {buffer[:300]!r}")
            buffer += chunk
        if not buffer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"the stream was refused: {buffer[:300]!r}")
    except BaseException:
        writer.close()
        raise
    stream = Stream(reader, writer, ended=b"event: done" in buffer)
    stream.drain = asyncio.create_task(drained(stream))
    return stream


async def drained(stream: Stream) -> None:
    """Reads what the worker sends (keep-alive comments) so nothing piles up, noting an end."""
    while True:
        try:
            chunk = await asyncio.wait_for(stream.reader.read(65536), READ_DEADLINE)
        except TimeoutError:
            stream.silent += 1
            continue
        except ConnectionError:
            stream.closed = True
            return
        if not chunk:
            stream.closed = True
            return
        stream.ended = stream.ended or b"event: done" in chunk


async def streams_open(count: int, port: int, session: str, make) -> tuple[list[Stream], int]:
    """`count` streams, BATCH at a time, each batch's replies made just before it opens:
    (the streams open, how many failed)."""
    opened, failed = [], 0
    for start in range(0, count, BATCH):
        paths = await asyncio.to_thread(make, min(BATCH, count - start))
        results = await asyncio.gather(*(stream_open(port, path, session) for path in paths), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                failed += 1
                print(f"  a stream did not open: {result!r}", file=sys.stderr)
            else:
                opened.append(result)
    return opened, failed


async def until(condition, deadline: float) -> bool:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.2)
    return True


async def steady(pid: int) -> tuple[int, int, float, float]:
    """Waits until the worker's RSS stays within STEADY_SPREAD_KB for STEADY_WINDOW seconds:
    (RSS, RssAnon, the CPU it used meanwhile in % of one core, seconds waited)."""
    started = time.monotonic()
    samples: list[tuple[float, int, int, float]] = []  # (time, rss, anon, cpu seconds)
    while True:
        now = time.monotonic()
        samples.append((now, status_kb(pid, "VmRSS"), status_kb(pid, "RssAnon"), cpu_seconds(pid)))
        window = [sample for sample in samples if sample[0] >= now - STEADY_WINDOW]
        full = now - samples[0][0] >= STEADY_WINDOW
        if full and max(s[1] for s in window) - min(s[1] for s in window) <= STEADY_SPREAD_KB:
            break
        if now - started > STEADY_DEADLINE:
            print(f"  RSS not steady after {STEADY_DEADLINE:.0f} s; taking the last window", file=sys.stderr)
            break
        await asyncio.sleep(0.5)
    first, last = window[0], window[-1]
    cpu = (last[3] - first[3]) / max(last[0] - first[0], 1e-9) * 100
    return (int(statistics.median(s[1] for s in window)), int(statistics.median(s[2] for s in window)), cpu,
            now - started)


async def measure(count: int, warmup: int, pid: int, port: int, upstream: FakeUpstream, session: str,
                  make, hold: float = 0) -> Figures:
    figures = Figures(count)
    streams: list[Stream] = []

    def note(moment: str) -> None:
        figures.upstream[moment] = connections(pid, remote_port=upstream.port)
        figures.clients[moment] = connections(pid, local_port=port)
        figures.threads[moment] = status_kb(pid, "Threads")

    try:
        opened, failed = await streams_open(warmup, port, session, make)
        streams += opened
        if failed:
            raise RuntimeError(f"{failed} warm-up streams did not open")
        await until(lambda: connections(pid, remote_port=upstream.port) >= warmup, 30)
        figures.rss_kb["before"], figures.anon_kb["before"], figures.cpu_percent["before"], \
            figures.settle_s["before"] = await steady(pid)
        note("before")

        started = time.monotonic()
        opened, figures.failed = await streams_open(count, port, session, make)
        streams += opened
        figures.opened = len(opened)
        figures.open_s = time.monotonic() - started
        if not await until(lambda: connections(pid, remote_port=upstream.port) >= warmup + len(opened), 60):
            print("  not every job reached the upstream within 60 s", file=sys.stderr)
        figures.rss_kb["after"], figures.anon_kb["after"], figures.cpu_percent["after"], \
            figures.settle_s["after"] = await steady(pid)
        note("after")
        if hold:
            print(f"  holding {len(streams)} streams open for {hold:g} s: the worker is pid {pid} "
                  f"(.venv/bin/py-spy dump --pid {pid})", file=sys.stderr)
            await asyncio.sleep(hold)
        figures.upstream_requests = len(upstream.chat_requests)
        figures.closed = sum(stream.closed for stream in streams)
        figures.ended = sum(stream.ended for stream in streams)
        figures.silent = sum(stream.silent for stream in streams)
    finally:
        for stream in streams:
            if stream.drain is not None:
                stream.drain.cancel()
            stream.writer.close()
        await asyncio.gather(*(asyncio.wait_for(stream.writer.wait_closed(), 5) for stream in streams),
                             return_exceptions=True)
    return figures


def run(count: int, args, env: dict[str, str], user, model, session: str) -> Figures:
    """One fresh worker and upstream: the warm-up, then `count` streams; all closed at the end."""
    from aimodels.models import AIModel

    upstream = FakeUpstream().start()
    try:
        upstream.default_reply = FakeReply(hang_after=0)
        AIModel.objects.filter(pk=model.pk).update(api_endpoint=upstream.openai_base_url)
        with open(Path(args.workdir) / f"worker-{count}.log", "w") as log, uvicorn_worker(env, log=log) as (server, port):
            try:
                figures = asyncio.run(measure(count, args.warmup, server.pid, port, upstream, session,
                                              lambda n: replies_make(user, model, n), args.hold))
            finally:  # the streams are closed; then the upstream, which ends the hung responses, then the worker
                upstream_port = upstream.port
                upstream.stop()  # the jobs end (their replies fail) and give their connections back
                deadline = time.monotonic() + 30
                while connections(server.pid, remote_port=upstream_port) and time.monotonic() < deadline:
                    time.sleep(0.2)
        problems = [line for line in Path(log.name).read_text().splitlines() if "Traceback" in line or " ERROR " in line]
        if problems:
            print(f"  the worker logged {len(problems)} errors, the first:", *problems[:5], sep="\n    ", file=sys.stderr)
        return figures
    finally:
        upstream.stop()


def report(args, results: list[Figures], seconds: float) -> None:
    print(f"## Idle reply streams ({machine_line()})\n")
    print(f"One uvicorn worker, DEBUG off, SQLite; every reply hangs at the upstream before its first token. "
          f"RSS before: with {args.warmup} warm-up streams open, steady; with N: {args.warmup} + N streams, steady "
          f"(median over {STEADY_WINDOW:g} s within {STEADY_SPREAD_KB} KB). KB = 1024 bytes.\n")
    print("| streams | RSS before | RSS with N | per stream | RssAnon per stream | upstream conns | stream conns "
          "| threads | CPU idle | opened in | not opened / ended / closed |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for f in results:
        per = (f.rss_kb["after"] - f.rss_kb["before"]) / max(f.opened, 1)
        anon = (f.anon_kb["after"] - f.anon_kb["before"]) / max(f.opened, 1)
        print(f"| {f.streams:,} | {f.rss_kb['before'] / 1024:.1f} MB | {f.rss_kb['after'] / 1024:.1f} MB | "
              f"{per:.1f} KB | {anon:.1f} KB | {f.upstream['before']} → {f.upstream['after']} | "
              f"{f.clients['before']} → {f.clients['after']} | {f.threads['before']} → {f.threads['after']} | "
              f"{f.cpu_percent['before']:.0f}% → {f.cpu_percent['after']:.0f}% | {f.open_s:.1f} s | "
              f"{f.failed} / {f.ended} / {f.closed} |")
    if len(results) > 1:
        low, high = min(results, key=lambda f: f.streams), max(results, key=lambda f: f.streams)
        if high.streams > low.streams and not (high.failed or low.failed):
            slope = (high.rss_kb["after"] - low.rss_kb["after"]) / max(high.opened - low.opened, 1)
            print(f"\nBetween {low.streams:,} and {high.streams:,} streams (two fresh workers, the same warm-up): "
                  f"{slope:.1f} KB per stream more.")
    print("\nGoal: under 100 KB per idle open stream:")
    for f in results:
        per = (f.rss_kb["after"] - f.rss_kb["before"]) / max(f.opened, 1)
        verdict = "met" if per < 100 else "missed"
        if f.failed:
            verdict = f"not measured: {f.failed:,} of {f.streams:,} streams did not open"
        print(f"- {f.streams:,} streams: {per:.1f} KB each: {verdict}")
    print(f"\n(upstream requests: {', '.join(f'{f.upstream_requests:,}' for f in results)}; reads that met their "
          f"{READ_DEADLINE:g} s deadline: {', '.join(str(f.silent) for f in results)}; settled in "
          f"{', '.join(f'{f.settle_s['after']:.0f} s' for f in results)}; the whole run {seconds:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="100,500", help="idle streams to open, each count on a fresh worker")
    parser.add_argument("--warmup", type=int, default=5, help="streams opened first, before the RSS before")
    parser.add_argument("--hold", type=float, default=0, help="seconds to keep the streams open once measured "
                        "(to look at the worker, e.g. with py-spy)")
    args = parser.parse_args()
    counts = [int(count) for count in args.streams.split(",")]
    exit_on_sigterm()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chatter-idle-") as workdir:
        args.workdir = workdir
        env = bench_env(
            DATABASE_URL=f"sqlite:///{Path(workdir) / 'idle.sqlite3'}",
            LLM_READ_TIMEOUT="3600",  # the replies wait for as long as the benchmark does
            LLM_MAX_RETRIES="0",
            GENERATED_TITLES="false",
        )
        with FakeUpstream() as upstream:  # the model's first endpoint; each run has its own upstream
            user, model, session = bench_account(env, upstream)
        try:
            results = [run(count, args, env, user, model, session) for count in counts]
        except KeyboardInterrupt:
            sys.exit("interrupted: the streams, the upstream and the worker are closed")
    report(args, results, time.perf_counter() - started)


if __name__ == "__main__":
    main()
