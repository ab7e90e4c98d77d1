"""Benchmark of the reply stream: what chatter adds to the first token, and replies per second.

    .venv/bin/python -m bench.stream_bench [--replies 300] [--concurrency 20] [--chunks 50]

It builds a throwaway SQLite database, starts the fake OpenAI-compatible upstream (in this
process) and chatter under uvicorn (one worker, DEBUG off), then measures:

1. first token, added: the median time to the first text of a reply through chatter, minus the
   median time to the first text asked of the upstream directly (same reply, same client code);
2. throughput: replies streamed to completion per second with N at once, and the CPU time the
   chatter process spent per reply (from /proc, so it counts the server only).

It prints the figures; nothing here is a test.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.fake_upstream import FakeReply, FakeUpstream  # noqa: E402


async def http_stream(port: int, request: bytes, marker: bytes, end: bytes) -> tuple[float, float]:
    """Send a raw HTTP request; return (seconds to the first `marker`, seconds to `end`)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    buffer, first = b"", None
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        buffer += chunk
        if first is None and marker in buffer:
            first = time.perf_counter() - started
        if end in buffer:
            break
    writer.close()
    if first is None or end not in buffer:
        raise RuntimeError(f"stream ended early: {buffer[-300:]!r}")
    return first, time.perf_counter() - started


def upstream_request(port: int) -> bytes:
    body = json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def chatter_request(port: int, path: str, session: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: sessionid={session}\r\n"
        "Accept: text/event-stream\r\nConnection: close\r\n\r\n"
    ).encode()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_env(**overrides: str) -> dict[str, str]:
    """The environment chatter runs with in a benchmark: DEBUG off, plain HTTP on 127.0.0.1."""
    env = {
        **os.environ,
        "CHATTER_ENV_FILE": os.devnull,
        "SECRET_KEY": "bench-" + "x" * 50,
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "chatter.settings",
        **overrides,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


def bench_account(env: dict[str, str], upstream: FakeUpstream):
    """Migrate the throwaway database; then a verified user, a model served by `upstream`, and a
    signed-in session: (user, model, session key)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from aimodels.models import AIModel

    user = get_user_model().objects.create_user("bench", "bench@example.com", "Bench-Password-1")
    user.email_verified_at = timezone.now()
    user.save()
    model = AIModel(
        name="bench", provider="openai_compatible", api_endpoint=upstream.openai_base_url,
        deployment_name="gpt-4o-mini", api_key_env="", context_window=16000, max_completion_tokens=1000,
    )
    model.full_clean()
    model.save()
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return user, model, session.session_key


def prepare(env: dict[str, str], upstream: FakeUpstream, replies: int) -> tuple[str, list[str]]:
    """The user, the model and `replies` pending replies: (session key, the replies' stream paths)."""
    user, model, session = bench_account(env, upstream)
    from conversations.models import Conversation, Message

    paths = []
    for n in range(replies):
        conversation = Conversation.objects.create(user=user, model=model, title=f"bench {n}")
        question = Message.objects.create(conversation=conversation, role="user", content="Tell me something.")
        reply = Message.objects.create(
            conversation=conversation, parent=question, role="assistant", status="pending", model=model
        )
        paths.append(f"/c/{conversation.public_id}/replies/{reply.pk}/stream/")
    return session, paths


async def measure(args, upstream: FakeUpstream, port: int, session: str, paths: list[str], pid: int) -> dict:
    text = " ".join(f"word{n}" for n in range(args.chunks))
    upstream.default_reply = FakeReply(text=text)
    paths = iter(paths)

    direct, through = [], []
    for _ in range(args.latency_samples):
        first, _ = await http_stream(upstream.port, upstream_request(upstream.port), b'"content"', b"[DONE]")
        direct.append(first)
        first, _ = await http_stream(port, chatter_request(port, next(paths), session), b"event: delta", b"event: done")
        through.append(first)

    batch = [next(paths) for _ in range(args.replies)]
    limit = asyncio.Semaphore(args.concurrency)

    async def one(path: str) -> None:
        async with limit:
            await http_stream(port, chatter_request(port, path, session), b"event: delta", b"event: done")

    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(one(path) for path in batch))
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
    return {
        "first_token_direct_ms": statistics.median(direct) * 1000,
        "first_token_chatter_ms": statistics.median(through) * 1000,
        "first_token_added_ms": (statistics.median(through) - statistics.median(direct)) * 1000,
        "replies_per_second": len(batch) / elapsed,
        "cpu_ms_per_reply": cpu / len(batch) * 1000,
        "replies_per_cpu_second": len(batch) / cpu if cpu else float("inf"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=300, help="replies in the throughput run")
    parser.add_argument("--concurrency", type=int, default=20, help="replies streaming at once")
    parser.add_argument("--chunks", type=int, default=50, help="text deltas per reply")
    parser.add_argument("--latency-samples", type=int, default=30, help="sequential replies timed for latency")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="chatter-bench-"))
    port = 18000 + os.getpid() % 1000
    with FakeUpstream() as upstream:
        env = bench_env(DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}")
        session, paths = prepare(env, upstream, args.latency_samples + args.replies)
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "chatter.asgi:application", "--port", str(port),
             "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
            cwd=BASE_DIR, env=env,
        )
        try:
            for _ in range(100):
                try:
                    asyncio.run(asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1))
                    break
                except OSError:
                    time.sleep(0.1)
            figures = asyncio.run(measure(args, upstream, port, session, paths, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=10)

    print(f"chatter stream benchmark: 1 uvicorn worker, SQLite, {args.chunks} deltas per reply, "
          f"{args.replies} replies, {args.concurrency} at once, on {os.cpu_count()} cores")
    print(f"  first token, upstream direct : {figures['first_token_direct_ms']:7.2f} ms (median)")
    print(f"  first token, through chatter : {figures['first_token_chatter_ms']:7.2f} ms (median)")
    print(f"  added by chatter             : {figures['first_token_added_ms']:7.2f} ms")
    print(f"  throughput                   : {figures['replies_per_second']:7.1f} replies/s")
    print(f"  server CPU per reply         : {figures['cpu_ms_per_reply']:7.2f} ms "
          f"({figures['replies_per_cpu_second']:.0f} replies per CPU second)")


if __name__ == "__main__":
    main()
