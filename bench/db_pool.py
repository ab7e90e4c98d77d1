"""Benchmark: a crowd of conversations against chatter on PostgreSQL, without and with the pool.

    DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/NAME [REDIS_URL=redis://HOST:PORT/N] \\
        .venv/bin/python -m bench.db_pool [--conversations 200] [--messages 3] [--runs without,with] [--workers 1]

DATABASE_URL names a PostgreSQL server and a database to connect to there; the role needs
CREATEDB. The benchmark builds throwaway databases beside it (dropped at the end), starts the
fake OpenAI-compatible upstream in this process (first token after --first-delay seconds,
--chunks deltas --delay seconds apart) and, for each run, chatter under --workers uvicorn
workers (DEBUG off; with REDIS_URL set they share the Redis relay): "without" uses
bench.settings_no_pool (a connection per thread, as before the pool), "with" chatter's own
settings (the pool, sized by DB_POOL_* from the environment).

Each of --conversations users, all at once, sends --messages messages as the page does (the
form's POST, then the reply's stream read to its end) one after another. It prints, per run,
the turns that completed, the answers by status for the sends and for the streams, the most
client connections PostgreSQL showed for chatter's database at once (pg_stat_activity, sampled
every 20 ms), whether each conversation holds every message once, in order, with its reply
whole, and the log lines the worker wrote; nothing here is a test. Nothing is retried: a
send refused leaves the user with no reply for that turn, and a stream refused leaves its reply
pending, so that conversation's next send is refused too (422) while it is.
"""

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.fake_upstream import FakeReply, FakeUpstream  # noqa: E402
from bench.stream_bench import bench_env, cpu_seconds  # noqa: E402
from conversations.tests.asgi_server import free_port  # noqa: E402

CSRF = "b" * 32  # a CSRF cookie; the same value in X-CSRFToken passes Django's check
STREAM_URL = re.compile(rb'sse-connect="(/c/[0-9a-f-]+/replies/\d+/stream/)"')
SETTINGS = {"without": "bench.settings_no_pool", "with": "chatter.settings"}


@dataclass
class Run:
    name: str
    turns_ok: int = 0
    turns: int = 0
    sends: Counter = field(default_factory=Counter)
    streams: Counter = field(default_factory=Counter)
    max_connections: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    log: Counter = field(default_factory=Counter)
    stored: Counter = field(default_factory=Counter)


def database_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def http(port: int, method: str, path: str, *, cookies: str, body: bytes = b"",
               headers: dict[str, str] | None = None, until: bytes | None = None) -> tuple[int, bytes]:
    """One request on its own connection (Connection: close); the status and the raw response,
    read to its end or, for a stream, until `until` shows up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Cookie: {cookies}", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if body:
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    raw = b""
    try:
        while chunk := await reader.read(65536):
            raw += chunk
            if until and until in raw:
                break
    finally:
        writer.close()
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
    return status, raw


async def conversation(port: int, session: str, model_pk: int, messages: int, run: Run) -> None:
    """One user's conversation: each message sent as the page sends it, then its reply streamed."""
    cookies = f"sessionid={session}; csrftoken={CSRF}"
    headers = {"X-CSRFToken": CSRF, "HX-Request": "true"}
    send_path = "/new/messages/"
    for n in range(messages):
        run.turns += 1
        form = {"content": f"Question {n + 1}: tell me something.", "model": model_pk}
        status, raw = await http(port, "POST", send_path, cookies=cookies, headers=headers,
                                 body=urlencode(form).encode())
        run.sends[status] += 1
        found = STREAM_URL.search(raw)
        if status != 200 or not found:
            continue
        stream_path = found.group(1).decode()
        send_path = stream_path.split("/replies/")[0] + "/messages/"  # the conversation's from now on
        status, raw = await http(port, "GET", stream_path, cookies=cookies,
                                 headers={"Accept": "text/event-stream"}, until=b"event: done")
        run.streams[status if status != 200 or b"event: done" in raw else "200, cut short"] += 1
        run.turns_ok += status == 200 and b"event: done" in raw


async def sample_connections(admin_url: str, database: str, run: Run, stop: asyncio.Event) -> None:
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        while not stop.is_set():
            row = await (await admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
                [database],
            )).fetchone()
            run.max_connections = max(run.max_connections, row[0])
            try:
                await asyncio.wait_for(stop.wait(), 0.02)
            except TimeoutError:
                pass


async def crowd(args, port: int, sessions: list[str], model_pk: int, admin_url: str, database: str, run: Run) -> None:
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_connections(admin_url, database, run, stop))
    started = time.perf_counter()
    await asyncio.gather(*(conversation(port, s, model_pk, args.messages, run) for s in sessions))
    run.seconds = time.perf_counter() - started
    stop.set()
    await sampler


def prepare(env: dict[str, str], upstream: FakeUpstream, users: int) -> tuple[list[str], int]:
    """Migrate the template database and create the users (signed in), their sessions and the model."""
    for command in (["migrate"], ["collectstatic", "--no-input"]):  # DEBUG off serves the manifest's files
        subprocess.run([sys.executable, "manage.py", *command, "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connections
    from django.utils import timezone

    from aimodels.models import AIModel

    model = AIModel(
        name="bench", provider="openai_compatible", api_endpoint=upstream.openai_base_url,
        deployment_name="gpt-4o-mini", api_key_env="", context_window=16000, max_completion_tokens=1000,
        is_default=True,
    )
    model.full_clean()
    model.save()
    sessions = []
    for n in range(users):
        user = get_user_model()(username=f"crowd{n}", email=f"crowd{n}@example.com", email_verified_at=timezone.now())
        user.set_unusable_password()
        user.save()
        session = SessionStore()
        session.update({"_auth_user_id": str(user.pk), "_auth_user_hash": user.get_session_auth_hash(),
                        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend"})
        session.create()
        sessions.append(session.session_key)
    connections.close_all()
    connections["default"].close_pool()  # nothing may hold the template open: it is copied next
    return sessions, model.pk


def serve_and_measure(args, name: str, env: dict[str, str], sessions, model_pk, admin_url, database, log: Path) -> Run:
    port = free_port()
    run = Run(name)
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "chatter.asgi:application", "--port", str(port), "--lifespan", "off",
             "--no-access-log", "--log-level", "warning", "--workers", str(args.workers)],
            cwd=BASE_DIR, env={**env, "DJANGO_SETTINGS_MODULE": SETTINGS[name]}, stdout=log_file, stderr=log_file,
        )
        try:
            for _ in range(300):
                try:
                    asyncio.run(asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1))
                    break
                except OSError:
                    time.sleep(0.1)
            cpu_before = tree_cpu_seconds(server.pid)
            asyncio.run(crowd(args, port, sessions, model_pk, admin_url, database, run))
            run.cpu_seconds = tree_cpu_seconds(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(timeout=30)
    run.stored = stored(database_url(admin_url, database), args.messages, args.chunks)
    text = log.read_text()
    run.log.update({
        "WARNING 503 (busy)": len(re.findall(r"WARNING .*refused with 503", text)),
        "ERROR": len(re.findall(r" ERROR ", text)),
        "Traceback": text.count("Traceback (most recent call last)"),
        "connection slots are reserved": text.count("remaining connection slots are reserved"),
    })
    return run


def tree_cpu_seconds(pid: int) -> float:
    """The CPU time of a process and all its descendants (uvicorn's workers), in seconds."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    tree, grown = {pid}, True
    while grown:
        children = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= children
        grown = bool(children)
    total = 0.0
    for member in tree:
        try:
            total += cpu_seconds(member)
        except OSError:
            pass
    return total


def stored(url: str, messages: int, chunks: int) -> Counter:
    """What each user's conversation holds once the crowd is gone, against what was sent: every
    question once and in order, each followed by its reply, complete and whole."""
    expected = []
    for n in range(messages):
        expected += [("user", f"Question {n + 1}: tell me something.", "complete"),
                     ("assistant", " ".join(f"word{k}" for k in range(chunks)), "complete")]
    held: dict[int, list[tuple[str, str, str]]] = {}
    with psycopg.connect(url) as db:
        for user_id, *message in db.execute(
            "SELECT c.user_id, m.role, m.content, m.status FROM conversations_message m "
            "JOIN conversations_conversation c ON c.id = m.conversation_id ORDER BY c.user_id, m.created_at, m.id"
        ):
            held.setdefault(user_id, []).append(tuple(message))
        users = db.execute("SELECT count(*) FROM accounts_user WHERE username LIKE 'crowd%'").fetchone()[0]
    outcome = Counter("as sent" if conversation == expected else "not as sent" for conversation in held.values())
    outcome["nothing stored"] = users - len(held)
    return outcome


def report(args, runs: list[Run], pool: str) -> None:
    workers = f"{args.workers} uvicorn worker{'s' if args.workers > 1 else ''}"
    relay = "Redis relay" if os.environ.get("REDIS_URL") else "in-process relay"
    print(f"chatter database benchmark: {workers} ({relay}), PostgreSQL, {args.conversations} conversations at once, "
          f"{args.messages} messages each; replies of {args.chunks} deltas, first after {args.first_delay:g} s, "
          f"{args.delay:g} s apart; on {os.cpu_count()} cores")
    for run in runs:
        label = "without the pool (a connection per thread)" if run.name == "without" else f"with the pool ({pool})"
        print(f"\n  {label}")
        print(f"    turns completed       : {run.turns_ok} of {run.turns} in {run.seconds:.1f} s")
        print(f"    CPU per turn          : {run.cpu_seconds / max(run.turns, 1) * 1000:.1f} ms "
              f"(chatter's processes, send + stream + job)")
        print(f"    sends, by status      : {dict(sorted(run.sends.items(), key=str))}")
        print(f"    streams, by status    : {dict(sorted(run.streams.items(), key=str))}")
        fives = {s: run.sends[s] + run.streams[s] for s in (500, 503)}
        print(f"    500s / 503s           : {fives[500]} / {fives[503]}")
        print(f"    most connections seen : {run.max_connections} (client backends on chatter's database)")
        print(f"    conversations stored  : {dict(run.stored)} (each message once, in order, replies whole)")
        print(f"    worker's log          : {dict(run.log)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=200, help="users, each with one conversation, at once")
    parser.add_argument("--messages", type=int, default=3, help="messages each conversation sends, one after another")
    parser.add_argument("--chunks", type=int, default=50, help="text deltas per reply")
    parser.add_argument("--first-delay", type=float, default=0.2, help="seconds to a reply's first delta")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between deltas")
    parser.add_argument("--runs", default="without,with", help="which runs, in order: without, with")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (with REDIS_URL set: the Redis relay)")
    parser.add_argument("--log-dir", type=Path, help="keep each run's worker log here (RUN.log)")
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_URL", "")
    if not admin_url.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (the role needs CREATEDB); see the docstring.")

    prefix = f"chatter_bench_{os.getpid()}"
    template = f"{prefix}_template"
    runs: list[Run] = []
    with psycopg.connect(admin_url, autocommit=True) as admin, FakeUpstream() as upstream, \
            tempfile.TemporaryDirectory(prefix="chatter-db-pool-") as tmp:
        created = [template]
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
        try:
            env = bench_env()
            sessions, model_pk = prepare({**env, "DATABASE_URL": database_url(admin_url, template)}, upstream,
                                         args.conversations)
            upstream.default_reply = FakeReply(
                text=" ".join(f"word{n}" for n in range(args.chunks)), first_delay=args.first_delay, delay=args.delay
            )
            from django.conf import settings

            pool = settings.DATABASES["default"]["OPTIONS"].get("pool", {})
            pool_words = f"at most {pool.get('max_size')}, {pool.get('min_size')} kept, {pool.get('timeout'):g} s wait"
            for name in args.runs.split(","):
                database = f"{prefix}_{name}"
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(database), sql.Identifier(template)))
                created.append(database)
                run_env = {**env, "DATABASE_URL": database_url(admin_url, database)}
                log_dir = args.log_dir or Path(tmp)
                log_dir.mkdir(parents=True, exist_ok=True)
                runs.append(serve_and_measure(args, name, run_env, sessions, model_pk, admin_url, database,
                                              log_dir / f"{name}.log"))
        finally:
            for database in reversed(created):
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    report(args, runs, pool_words)


if __name__ == "__main__":
    main()
