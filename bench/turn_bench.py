"""Benchmark of one turn as the browser makes it: the HTMX send, then the reply's stream.

    .venv/bin/python -m bench.turn_bench [--samples 30] [--redis-url redis://127.0.0.1:6379/9]

One uvicorn worker on a throwaway SQLite database, and the fake OpenAI-compatible upstream in
this process (first token after --first-delay s, then --chunks tokens --gap s apart). From one
run it prints, as medians and 95th percentiles over --samples turns, one at a time:

- upstream direct: the time to the upstream's first token, asked directly (the baseline);
- send, then stream (job started by the send): from the send to the first text in the stream;
- stream starts the reply (how it was before replies became jobs): the send's own time plus
  the time from opening the stream of a pending reply to its first text, i.e. the provider
  is asked only once the browser's stream has connected;
- with --redis-url, the first again with the relay on Redis (REDIS_URL) and the cache kept in
  the worker (CACHE_URL=locmemcache://), then with both on Redis (what REDIS_URL alone does:
  the send's rate limit counts in Redis).

Each "added" figure is chatter's time minus the baseline. Nothing here is a test.
"""

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.fake_upstream import FakeReply, FakeUpstream
from bench.stream_bench import bench_account, bench_env, chatter_request, http_stream, upstream_request

BASE_DIR = Path(__file__).resolve().parent.parent


def setup(env: dict[str, str], upstream: FakeUpstream, conversations: int) -> tuple[str, list]:
    """The user, the model and `conversations` empty conversations to send to: (session key, the
    paths to send to)."""
    user, model, session = bench_account(env, upstream)
    from conversations.models import Conversation

    targets = [
        f"/c/{Conversation.objects.create(user=user, model=model, title=f'send {n}').public_id}/messages/"
        for n in range(conversations)
    ]
    return session, targets


def pending_reply() -> str:
    """A new turn whose reply is pending and unstarted (as a send left it before replies were
    jobs): the path of its stream. Made just before use: a reply pending for 15 s is abandoned."""
    from conversations.models import Conversation, Message

    conversation = Conversation.objects.filter(title__startswith="send").first()
    conversation = Conversation.objects.create(user=conversation.user, model=conversation.model, title="stream")
    question = Message.objects.create(conversation=conversation, role="user", content="Tell me something.")
    reply = Message.objects.create(
        conversation=conversation, parent=question, role="assistant", status="pending", model=conversation.model
    )
    return f"/c/{conversation.public_id}/replies/{reply.pk}/stream/"


class Server:
    """chatter under uvicorn, one worker."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "chatter.asgi:application", "--port", str(port),
             "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
            cwd=BASE_DIR, env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=2)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.1)

    def csrf(self, session: str) -> tuple[str, str]:
        """The CSRF cookie and the token a page gives htmx."""
        page = requests.get(f"http://127.0.0.1:{self.port}/new/", cookies={"sessionid": session}, timeout=10)
        return page.cookies["csrftoken"], re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def post(port: int, path: str, body: bytes, headers: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode() + body
    )
    response = await reader.read()
    writer.close()
    return time.perf_counter() - started, response


async def turns(server: Server, session: str, targets: list[str]) -> tuple[list[float], list[float]]:
    """Send, then stream, one turn at a time: (send to first text, the send alone), in seconds."""
    cookie, token = server.csrf(session)
    headers = f"Cookie: sessionid={session}; csrftoken={cookie}\r\nX-CSRFToken: {token}\r\nHX-Request: true\r\n"
    firsts, sends = [], []
    for path in targets:
        started = time.perf_counter()
        send, response = await post(server.port, path, b"content=Tell+me+something.", headers)
        stream = re.search(rb'sse-connect="([^"]+)"', response)
        if stream is None:
            raise RuntimeError(f"the send failed: {response[:300]!r}")
        opened = time.perf_counter()
        first, _ = await http_stream(server.port, chatter_request(server.port, stream.group(1).decode(), session),
                                     b"data: ", b"event: done")
        firsts.append(opened - started + first)
        sends.append(send)
    return firsts, sends


def streams_only(server: Server, session: str, samples: int) -> list[float]:
    """From opening the stream of a pending reply (which the stream then starts) to its first text."""
    return [
        asyncio.run(http_stream(server.port, chatter_request(server.port, pending_reply(), session), b"data: ", b"event: done"))[0]
        for _ in range(samples)
    ]


async def direct(upstream: FakeUpstream, samples: int) -> list[float]:
    return [
        (await http_stream(upstream.port, upstream_request(upstream.port), b'"content"', b"[DONE]"))[0]
        for _ in range(samples)
    ]


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30, help="turns timed in each way")
    parser.add_argument("--chunks", type=int, default=50, help="tokens per reply")
    parser.add_argument("--first-delay", type=float, default=0.2, help="seconds to the upstream's first token")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between the upstream's tokens")
    parser.add_argument("--redis-url", default="", help="also measure with the relay on this Redis")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="chatter-bench-"))
    port = 19000 + os.getpid() % 1000
    with FakeUpstream() as upstream:
        upstream.default_reply = FakeReply(
            text=" ".join(f"word{n}" for n in range(args.chunks)), first_delay=args.first_delay, delay=args.gap
        )
        env = bench_env(
            DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
            GENERATED_TITLES="false",
            SEND_RATE_PER_USER="100000/m",
            REDIS_URL="",
        )
        runs = 3 if args.redis_url else 1
        session, targets = setup(env, upstream, args.samples * runs)
        baseline = asyncio.run(direct(upstream, args.samples))
        server = Server(env, port)
        try:
            now, sends = asyncio.run(turns(server, session, targets[: args.samples]))
            before = [send + first for send, first in zip(sends, streams_only(server, session, args.samples))]
        finally:
            server.stop()
        redis_rows = []
        if args.redis_url:
            # The relay alone (the cache kept in each worker), then the cache on Redis too (as REDIS_URL does).
            for n, (label, cache) in enumerate([("relay on Redis", {"CACHE_URL": "locmemcache://"}),
                                                ("relay and cache on Redis", {"CACHE_URL": ""})], start=1):
                server = Server({**env, "REDIS_URL": args.redis_url, **cache}, port + n)
                try:
                    relayed, _ = asyncio.run(turns(server, session, targets[args.samples * n : args.samples * (n + 1)]))
                finally:
                    server.stop()
                redis_rows.append((f"send, then stream, {label}", relayed))

    base = statistics.median(baseline)
    print(f"chatter turn benchmark: send then stream, 1 uvicorn worker, SQLite, {args.samples} turns each, "
          f"upstream first token after {args.first_delay * 1000:.0f} ms then {args.chunks} tokens, on {os.cpu_count()} cores")
    print(f"  {'upstream direct, first token':<57}: {base * 1000:7.1f} ms (median)")
    rows = [("send, then stream (job at send)", now), ("stream starts the reply (before)", before), *redis_rows]
    for label, values in rows:
        print(f"  added, {label:<50}: {(statistics.median(values) - base) * 1000:7.1f} ms median, "
              f"{p(values, 95) - base * 1000:7.1f} ms p95")
    print(f"  {'the send alone':<57}: {statistics.median(sends) * 1000:7.1f} ms (median)")


if __name__ == "__main__":
    main()
