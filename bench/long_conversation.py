"""Benchmark of long conversations: opening the page, scrolling up, and the next turn's context.

    .venv/bin/python -m bench.long_conversation [--sizes 10,1000,5000] [--samples 20]
        [--database-url postgres://USER:PASSWORD@HOST:PORT/NAME]

For each size it builds one conversation of that many messages (alternating user and assistant;
the replies a few paragraphs of Markdown with their HTML, token counts, model and usage stored,
as a finished reply has them) on a throwaway SQLite database, and, with --database-url, again on
a throwaway PostgreSQL database made beside the one named (its role needs CREATEDB; dropped at the
end). Each database is measured in a process of its own (Django is set up once per process).
Per size it prints:

- the page (GET /c/<id>/, signed in) over HTTP under uvicorn (one worker, DEBUG off): p50 and
  p95 over --samples requests, one at a time, each on a new connection; the HTML's size in bytes
  (and gzipped, as a compressing proxy would send it);
- the page's queries, counted in-process with Django's test Client (same database), with the
  time the database reported for them, and the view's own time in-process;
- the same for the page of earlier messages the list asks for when scrolled to its top
  (?before=<pk of the oldest message shown>);
- the next turn's context: services.context_read for a new pending reply after a new question,
  in-process: p50 and p95, its queries, and the messages kept and left out, with a 128k window
  and with a 16k one.

p95 is the nearest-rank 95th percentile. The goals are the issue's: the page of a 5,000-message
conversation in under 150 ms, and the next turn's context at 5,000 messages in under 20 ms.
Nothing here is a test.
"""

import argparse
import asyncio
import contextlib
import gzip
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.db_pool import database_url, http  # noqa: E402
from bench.fake_upstream import FakeUpstream  # noqa: E402
from bench.stream_bench import bench_account, bench_env  # noqa: E402
from conversations.tests.asgi_server import free_port  # noqa: E402

GOAL_OPEN_MS = 150.0
GOAL_CONTEXT_MS = 20.0
GOAL_SIZE = 5000
EARLIER_LINK = re.compile(rb'hx-get="([^"]*\?before=\d+)"')

QUESTIONS = [
    "How do I read a large CSV file in Python without loading it all into memory?",
    "Can you explain what a database index is, and when adding one makes things slower?",
    "What is the difference between a process and a thread? Keep it short.",
    "Rewrite that so a beginner understands it, please.",
    "Why does my SQL query get slower as the table grows, even with a LIMIT?",
    "Give me three ways to test this, and which one you would pick.",
]
REPLIES = [
    """Reading it in pieces keeps memory flat, whatever the file's size. The standard library does it already:

```python
import csv

with open("big.csv", newline="") as f:
    for row in csv.DictReader(f):
        handle(row)
```

`csv.DictReader` reads **one line at a time**, so only the current row is in memory. A few things to watch:

1. Open the file with `newline=""`, or quoted fields with line breaks in them break apart.
2. If you need totals, keep running sums rather than lists of rows.
3. With pandas, pass `chunksize=` to `read_csv` and you get an iterator of data frames instead.

If the file is compressed, `gzip.open(path, "rt")` gives you the same line-by-line reading without unpacking it first.""",
    """An index is a second, sorted copy of one or more columns, with a pointer back to each row. A query that filters or sorts on those columns can then jump to the rows it wants instead of reading the whole table.

It is not free, though:

- every `INSERT`, `UPDATE` of an indexed column and `DELETE` has to change the index too;
- it takes disk space and memory, and a cold index means more reads;
- the planner may ignore it when a query would return most of the table anyway.

So index the columns your frequent queries filter, join and sort on, check with `EXPLAIN ANALYZE` that they are used, and drop the ones nothing uses. A table that is written far more often than it is read is where an extra index hurts most.""",
    """Short version:

| | process | thread |
| --- | --- | --- |
| memory | its own | shared with the others |
| crash | only itself | the whole process |
| cost to start | higher | lower |

Threads share everything, which makes talking to each other cheap and **bugs easy**: two threads changing the same list need a lock. Processes share nothing unless you ask, which is safer and uses more memory.

In Python the global interpreter lock means threads help with waiting (network, disk), while processes are what spreads *computation* over several cores. For many waits at once, `asyncio` is often simpler than either.""",
]


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def machine_line() -> str:
    """The date, the CPUs this process may use (nproc) and the CPU model."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", load %.2f %.2f %.2f" % os.getloadavg()
    return f"{now}, nproc {len(os.sched_getaffinity(0))}, {model}{load}"


async def _probe(port: int) -> None:
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
    writer.close()


@contextlib.contextmanager
def uvicorn_worker(env: dict[str, str], *, log=None) -> Iterator[tuple[subprocess.Popen, int]]:
    """chatter under uvicorn, one worker (the process itself): (the process, its port), once it
    accepts connections. Stopped (terminated, killed if it does not end) when the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "chatter.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {process.returncode}")
            try:
                asyncio.run(_probe(port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start within 60 s") from None
                time.sleep(0.1)
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit (once), so that the finally blocks stop what was started."""

    def stop(*_) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)


def body_of(raw: bytes) -> bytes:
    """The body of a raw HTTP/1.1 response (chunked or not)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if not size:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


# The measuring process (one per database) --------------------------------------------------------
class Texts:
    """The distinct texts of the conversations, each tokenized and rendered once."""

    def __init__(self, deployment_name: str) -> None:
        from conversations import tokens
        from conversations.markdown import render_markdown

        encoding = tokens.encoding_for(deployment_name)
        self.questions = [(text, tokens.message_tokens(role="user", content=text, encoding=encoding))
                          for text in QUESTIONS]
        self.replies = [(text, str(render_markdown(text)),
                         tokens.message_tokens(role="assistant", content=text, encoding=encoding))
                        for text in REPLIES]


def conversation_build(user, model, size: int, texts: Texts):
    """A conversation of `size` messages, alternating user and assistant (bulk_create), the
    newest last, 30 s apart."""
    from django.db.models import OuterRef, Subquery

    from conversations.models import Conversation, Message

    conversation = Conversation.objects.create(user=user, model=model, title=f"{size:,} messages")
    start = datetime.now(timezone.utc) - timedelta(seconds=30 * (size + 10))
    rows, prompt = [], 0
    for n in range(size):
        created = start + timedelta(seconds=30 * n)
        if n % 2 == 0:
            text, count = texts.questions[(n // 2) % len(texts.questions)]
            rows.append(Message(conversation=conversation, role="user", content=text, token_count=count,
                                status="complete", created_at=created))
        else:
            text, html, count = texts.replies[(n // 2) % len(texts.replies)]
            usage = {"prompt_tokens": min(prompt, model.context_window - model.max_completion_tokens),
                     "completion_tokens": count, "total_tokens": 0}
            usage["total_tokens"] = usage["prompt_tokens"] + count
            rows.append(Message(conversation=conversation, role="assistant", content=text, content_html=html,
                                token_count=count, status="complete", model=model, usage=usage, created_at=created))
        prompt += rows[-1].token_count
    Message.objects.bulk_create(rows, batch_size=1000)
    # One branch: each message follows the one before it (as the migration to the tree made them).
    before = Message.objects.filter(conversation=conversation, pk__lt=OuterRef("pk")).order_by("-pk")
    Message.objects.filter(conversation=conversation).update(parent_id=Subquery(before.values("pk")[:1]))
    return conversation


def in_process(client, path: str, samples: int) -> dict:
    """The view in-process (test Client): its queries (one request), and over `samples`
    requests the p50 of the whole request's time and of the time its queries took."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(path)  # warm
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} in-process: {response.status_code}")
    queries = len(captured)  # now: the next request's start clears the log
    spent = []

    def timed(execute, sql, params, many, context):  # CaptureQueriesContext's times are rounded to the ms
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent[-1] += time.perf_counter() - started

    times = []
    with connection.execute_wrapper(timed):
        for _ in range(samples):
            spent.append(0.0)
            started = time.perf_counter()
            client.get(path)
            times.append(time.perf_counter() - started)
    return {
        "queries": queries,
        "sql_ms": statistics.median(spent) * 1000,
        "view_p50_ms": statistics.median(times) * 1000,
    }


async def over_http(port: int, path: str, session: str, samples: int) -> dict:
    """GET `path` over HTTP, one request at a time, each on its own connection: p50 and p95,
    the body's size, and the body."""
    cookies = f"sessionid={session}"
    times, raw = [], b""
    for n in range(samples + 2):  # two to warm
        started = time.perf_counter()
        status, raw = await asyncio.wait_for(http(port, "GET", path, cookies=cookies), 30)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {raw[:300]!r}")
        if n >= 2:
            times.append(elapsed)
    body = body_of(raw)
    return {
        "p50_ms": statistics.median(times) * 1000,
        "p95_ms": percentile(times, 0.95) * 1000,
        "bytes": len(body),
        "gzip_bytes": len(gzip.compress(body, 6)),
        "body": body,
    }


def context_measure(conversation, models, samples: int) -> list[dict]:
    """The next turn's context (a new question and its pending reply at the end), per model."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from conversations.models import Message
    from conversations.services import context_read

    question = Message.objects.create(
        conversation=conversation, parent=conversation.branch_end(), role="user", content="And what would you do next?"
    )
    reply = Message.objects.create(
        conversation=conversation, parent=question, role="assistant", status="pending", model=conversation.model
    )
    reply = Message.objects.select_related("conversation", "model").get(pk=reply.pk)  # as the job loads it
    figures = []
    try:
        for model in models:
            context_read(reply=reply, model=model)  # warm
            with CaptureQueriesContext(connection) as captured:
                context = context_read(reply=reply, model=model)
            queries = len(captured)
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                context_read(reply=reply, model=model)
                times.append(time.perf_counter() - started)
            figures.append({
                "window": model.context_window,
                "kept": len(context.messages),
                "omitted": context.omitted,
                "tokens": context.tokens,
                "queries": queries,
                "p50_ms": statistics.median(times) * 1000,
                "p95_ms": percentile(times, 0.95) * 1000,
            })
    finally:
        Message.objects.filter(pk__in=[question.pk, reply.pk]).delete()
    return figures


def measure(args) -> None:
    """In the process for one database: build, measure, write the figures to --child-json."""
    exit_on_sigterm()
    sizes = [int(size) for size in args.sizes.split(",")]
    env = bench_env(
        DATABASE_URL=args.child_database_url,
        ALLOWED_HOSTS="127.0.0.1,testserver",  # the test Client's host too
        GENERATED_TITLES="false",
        LLM_MAX_RETRIES="0",
    )
    figures = {"label": args.child_label, "sizes": {}}
    with FakeUpstream() as upstream:  # nothing asks it: the models need an endpoint
        user, small, session = bench_account(env, upstream)
        from django.db import connections
        from django.test import Client

        from aimodels.models import AIModel

        large = AIModel(
            name="bench-128k", provider="openai_compatible", api_endpoint=upstream.openai_base_url,
            deployment_name="gpt-4o", api_key_env="", context_window=128_000, max_completion_tokens=16_384,
        )
        large.full_clean()
        large.save()
        texts = Texts(large.deployment_name)
        figures["tokens"] = {"question": statistics.mean(count for _, count in texts.questions),
                             "reply": statistics.mean(count for *_, count in texts.replies)}
        built = {}
        for size in sizes:
            started = time.perf_counter()
            built[size] = conversation_build(user, large, size, texts)
            figures["sizes"][size] = {"build_s": time.perf_counter() - started}

        client = Client()
        client.cookies["sessionid"] = session
        for size, conversation in built.items():
            row = figures["sizes"][size]
            row["page_in_process"] = in_process(client, conversation.get_absolute_url(), args.samples)
        connections.close_all()

        with uvicorn_worker(env) as (_, port):
            for size, conversation in built.items():
                row = figures["sizes"][size]
                page = asyncio.run(over_http(port, conversation.get_absolute_url(), session, args.samples))
                found = EARLIER_LINK.search(page.pop("body"))
                row["page"] = page
                if found:
                    earlier = found.group(1).decode()
                    row["earlier"] = asyncio.run(over_http(port, earlier, session, args.samples))
                    row["earlier"].pop("body")
                    row["earlier_in_process"] = in_process(client, earlier, args.samples)

        for size, conversation in built.items():
            figures["sizes"][size]["context"] = context_measure(conversation, [large, small], args.samples)
        connections.close_all()
    Path(args.child_json).write_text(json.dumps(figures))


# The report ---------------------------------------------------------------------------------------
def report(args, results: list[dict], seconds: float) -> None:
    print(f"## Long conversations ({machine_line()})\n")
    print(f"One uvicorn worker, DEBUG off; {args.samples} requests per figure, one at a time, each on a new "
          "connection (p95: nearest rank). Queries: counted in-process (test Client), with the p50 of the time "
          "they took and of the whole request in-process.\n")
    print("| database | messages | page p50 | page p95 | page HTML (gzip) | queries (SQL ms) | in-process "
          "| earlier p50 | earlier p95 | earlier HTML (gzip) | earlier queries (SQL ms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        for size, row in result["sizes"].items():
            page, local = row["page"], row["page_in_process"]
            cells = [result["label"], f"{int(size):,}", f"{page['p50_ms']:.1f} ms", f"{page['p95_ms']:.1f} ms",
                     f"{page['bytes']:,} B ({page['gzip_bytes']:,})",
                     f"{local['queries']} ({local['sql_ms']:.1f})", f"{local['view_p50_ms']:.1f} ms"]
            if earlier := row.get("earlier"):
                there = row["earlier_in_process"]
                cells += [f"{earlier['p50_ms']:.1f} ms", f"{earlier['p95_ms']:.1f} ms",
                          f"{earlier['bytes']:,} B ({earlier['gzip_bytes']:,})",
                          f"{there['queries']} ({there['sql_ms']:.1f})"]
            else:
                cells += ["—", "—", "— (no earlier messages)", "—"]
            print("| " + " | ".join(cells) + " |")

    tokens = results[0]["tokens"]
    print("\nThe next turn's context: services.context_read for a new pending reply after a new question, "
          f"in-process. A question is {tokens['question']:.0f} tokens, a reply {tokens['reply']:.0f} (means); "
          "the windows: 128,000 with 16,384 for the reply, 16,000 with 1,000.\n")
    print("| database | messages | window | kept | left out | prompt tokens | p50 | p95 | queries |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        for size, row in result["sizes"].items():
            for context in row["context"]:
                print(f"| {result['label']} | {int(size):,} | {context['window']:,} | {context['kept']:,} | "
                      f"{context['omitted']:,} | {context['tokens']:,} | {context['p50_ms']:.2f} ms | "
                      f"{context['p95_ms']:.2f} ms | {context['queries']} |")

    print("\nGoals:")
    for result in results:
        row = result["sizes"].get(str(GOAL_SIZE))
        if row is None:
            continue
        page = row["page"]
        verdict = "met" if page["p95_ms"] < GOAL_OPEN_MS else (
            "met at p50, missed at p95" if page["p50_ms"] < GOAL_OPEN_MS else "missed")
        print(f"- {result['label']}: opening a {GOAL_SIZE:,}-message conversation < {GOAL_OPEN_MS:.0f} ms: "
              f"p50 {page['p50_ms']:.1f} ms, p95 {page['p95_ms']:.1f} ms: {verdict}")
        worst = max(context["p95_ms"] for context in row["context"])
        verdict = "met" if worst < GOAL_CONTEXT_MS else "missed"
        print(f"- {result['label']}: the next turn's context at {GOAL_SIZE:,} messages < {GOAL_CONTEXT_MS:.0f} ms: "
              f"p95 {worst:.2f} ms at most: {verdict}")
    build = ", ".join(f"{result['label']} {int(size):,}: {row['build_s']:.1f} s"
                      for result in results for size, row in result["sizes"].items())
    print(f"\n(building the conversations: {build}; the whole run {seconds:.0f} s)")


def run_child(args, label: str, url: str, out: Path) -> dict:
    command = [sys.executable, "-m", "bench.long_conversation", "--sizes", args.sizes, "--samples", str(args.samples),
               "--child-json", str(out), "--child-database-url", url, "--child-label", label]
    child = subprocess.Popen(command, cwd=BASE_DIR)
    try:
        if child.wait() != 0:
            raise SystemExit(f"the {label} run failed ({child.returncode})")
    finally:
        if child.poll() is None:  # Ctrl-C (which reaches it too), or a SIGTERM here: it stops its uvicorn
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.terminate()
                try:
                    child.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(timeout=10)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,1000,5000", help="messages in each conversation, comma-separated")
    parser.add_argument("--samples", type=int, default=20, help="timed requests (and context builds) per figure")
    parser.add_argument("--database-url", default="", help="also on PostgreSQL: a throwaway database beside this one")
    for hidden in ("--child-json", "--child-database-url", "--child-label"):
        parser.add_argument(hidden, default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_json:
        try:
            measure(args)
        except KeyboardInterrupt:
            sys.exit(130)  # uvicorn is stopped (the finally blocks); the parent says so
        return
    exit_on_sigterm()
    try:
        run_all(args)
    except KeyboardInterrupt:
        sys.exit("interrupted: uvicorn is stopped and the throwaway databases are gone")


def run_all(args) -> None:
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql://")):
        sys.exit("--database-url must be a PostgreSQL URL (postgres://...).")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chatter-long-") as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'long.sqlite3'}"
        # DEBUG off serves the manifest's files: the page names them (as bench/db_pool.py does).
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"], cwd=BASE_DIR,
                       env=bench_env(DATABASE_URL=sqlite_url), check=True)
        results = [run_child(args, "SQLite", sqlite_url, Path(tmp) / "sqlite.json")]
        if args.database_url:
            import psycopg
            from psycopg import sql

            name = f"chatter_bench_long_{os.getpid()}"
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                try:
                    results.append(run_child(args, "PostgreSQL", database_url(args.database_url, name),
                                             Path(tmp) / "postgres.json"))
                finally:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    report(args, results, time.perf_counter() - started)


if __name__ == "__main__":
    main()
