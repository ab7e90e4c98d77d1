"""Database connections on PostgreSQL are pooled and bounded; a request that cannot get one in
time is answered 503 with Retry-After (a page that needs no database), never a 500.

- the settings build the pool from DB_POOL_MAX_SIZE, DB_POOL_MIN_SIZE and DB_POOL_TIMEOUT, and
  refuse a CONN_MAX_AGE the pool cannot work with (no database needed);
- the 500 handler answers the pool's timeout, and only it, with the busy page (any database);
- on PostgreSQL, with a pool of one connection held by another thread, a page, an HTMX request
  and the reply stream each get the 503 and one WARNING line, and succeed once it is free;
- an error page rendered under ASGI (in a thread that is not the request's) gives back the
  connection it took, so no worker thread keeps one of the pool's connections.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import environ
import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connections
from django.test import AsyncClient, Client, RequestFactory
from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from psycopg_pool import PoolClosed, PoolTimeout

from accounts.tests.factories import UserFactory
from aimodels.tests.factories import AIModelFactory
from chatter import settings as chatter_settings
from chatter import views
from conversations.tests.factories import ConversationFactory, MessageFactory

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
only_postgresql = pytest.mark.skipif(not ON_POSTGRESQL, reason="the connection pool is PostgreSQL's (SQLite has none)")
POOL_VARIABLES = ("DB_POOL_MAX_SIZE", "DB_POOL_MIN_SIZE", "DB_POOL_TIMEOUT", "CONN_MAX_AGE")
BUSY = "chatter is busy"
TRY_AGAIN = "Try again in a moment"
POOL_TIMEOUT = 0.5  # seconds a request waits for the one connection in these tests


# (1) Settings, from the environment -------------------------------------------------------------
@pytest.fixture
def environment(monkeypatch):
    """database(**variables): DATABASES["default"] as the settings build it from these variables
    (and none of the pool's from the process or a .env file)."""

    def database(**variables: str) -> dict:
        for name in POOL_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return chatter_settings.database_from_env(environ.Env())

    return database


def test_postgresql_gets_a_pool_sized_from_the_environment(environment):
    database = environment(
        DATABASE_URL="postgres://chatter:secret@db.example:5432/chatter?sslmode=require",
        DB_POOL_MAX_SIZE="7", DB_POOL_MIN_SIZE="3", DB_POOL_TIMEOUT="1.5",
    )

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["OPTIONS"] == {"sslmode": "require", "pool": {"min_size": 3, "max_size": 7, "timeout": 1.5}}
    assert database["CONN_MAX_AGE"] == 0
    assert database["DISABLE_SERVER_SIDE_CURSORS"] is True  # .iterator() in one round trip


def test_the_pool_defaults_to_20_connections_2_kept_and_5_seconds(environment):
    database = environment(DATABASE_URL="postgres://chatter:secret@db.example/chatter")

    assert database["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 20, "timeout": 5.0}
    assert database["CONN_MAX_AGE"] == 0


def test_sqlite_has_no_pool_and_keeps_conn_max_age(environment, tmp_path):
    database = environment(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", CONN_MAX_AGE="60",
                           DB_POOL_MAX_SIZE="7")

    assert "pool" not in database["OPTIONS"]
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert database["CONN_MAX_AGE"] == 60


def test_conn_max_age_is_refused_with_the_pool_by_name(environment):
    with pytest.raises(ImproperlyConfigured, match=r"CONN_MAX_AGE=60 cannot be used with PostgreSQL"):
        environment(DATABASE_URL="postgres://chatter:secret@db.example/chatter", CONN_MAX_AGE="60")


@pytest.mark.parametrize(
    "variables",
    [
        {"DB_POOL_MAX_SIZE": "0", "DB_POOL_MIN_SIZE": "0"},
        {"DB_POOL_MAX_SIZE": "2", "DB_POOL_MIN_SIZE": "3"},
        {"DB_POOL_MIN_SIZE": "-1"},
        {"DB_POOL_TIMEOUT": "0"},
    ],
    ids=["no connections", "more kept than allowed", "negative", "no wait"],
)
def test_a_pool_that_cannot_work_is_refused_at_startup(environment, variables):
    with pytest.raises(ImproperlyConfigured, match="The database pool needs"):
        environment(DATABASE_URL="postgres://chatter:secret@db.example/chatter", **variables)


# (2) The 500 handler: the pool's timeout, and only it, is a 503 -------------------------------
def handled(request, error: Exception):
    """What the 500 handler answers while Django handles `error` (it reads sys.exc_info())."""
    try:
        raise error
    except Exception:
        return views.server_error(request)


def as_django_raises(cause: Exception) -> OperationalError:
    """A driver's error as Django re-raises it (wrap_database_errors)."""
    error = OperationalError(*cause.args)
    error.__cause__ = cause
    return error


def pool_timeout() -> OperationalError:
    """The pool's timeout as a view sees it: Django's OperationalError from psycopg_pool's PoolTimeout."""
    return as_django_raises(PoolTimeout("couldn't get a connection after 5.00 sec"))


def assert_one_busy_line(caplog, *secrets: str) -> None:
    # Only the loggers this can write to (others may log leftovers of earlier tests at any time).
    records = [r for r in caplog.records if r.name.startswith(("chatter.", "django.request", "psycopg"))]
    lines = [r for r in records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    line = lines[0]
    assert line.levelno == logging.WARNING and line.name == "chatter.views" and not line.exc_info
    message = line.getMessage()
    assert "503" in message and "no database connection free" in message, message
    for secret in secrets:
        assert secret not in message


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_the_busy_answer_needs_no_database(htmx, caplog):
    # No django_db mark: any query here (the signed-in user, the session) would fail the test.
    headers = {"HX-Request": "true"} if htmx else {}
    request = RequestFactory().post("/c/new/?q=private-words", headers=headers)
    request.session = SessionStore(session_key="k" * 32)
    request.user = SimpleLazyObject(lambda: get_user(request))

    with caplog.at_level(logging.INFO):
        response = handled(request, pool_timeout())

    assert response.status_code == 503
    assert response["Retry-After"] == str(views.BUSY_RETRY_AFTER_SECONDS)
    body = response.content.decode()
    assert BUSY in body and TRY_AGAIN in body
    assert "Traceback" not in body and "couldn't get a connection" not in body
    if htmx:
        assert response["HX-Retarget"] == "#error-banner"
        assert "<html" not in body
    else:
        assert 'class="brand"' in body
    assert_one_busy_line(caplog, "private-words")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    [
        OperationalError("server closed the connection unexpectedly"),
        as_django_raises(psycopg.OperationalError("connection refused")),
        as_django_raises(PoolClosed("the pool is closed")),
    ],
    ids=["django's own", "psycopg's", "the pool closed"],
)
def test_any_other_operational_error_is_still_a_500(error, user):
    request = RequestFactory().get("/x/")
    request.user = user

    response = handled(request, error)

    assert response.status_code == 500
    assert "Retry-After" not in response
    assert "Something went wrong" in response.content.decode()


@pytest.mark.django_db
def test_a_pool_timeout_in_a_request_is_a_503_and_one_warning_line(client, user, caplog, monkeypatch, settings):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    client.raise_request_exception = False
    client.force_login(user)

    def fail(*args, **kwargs):
        raise pool_timeout()

    monkeypatch.setattr("conversations.views.render", fail)

    response = client.get(reverse("conversations:new"), {"q": "private-words"})

    assert response.status_code == 503
    assert response["Retry-After"] == str(views.BUSY_RETRY_AFTER_SECONDS)
    assert_one_busy_line(caplog, "private-words", user.username)


@pytest.mark.django_db
def test_an_operational_error_in_a_view_is_still_a_500_with_its_traceback(client, user, caplog, monkeypatch, settings):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    client.raise_request_exception = False
    client.force_login(user)

    def fail(*args, **kwargs):
        raise as_django_raises(psycopg.OperationalError("could not serialize access"))

    monkeypatch.setattr("conversations.views.render", fail)

    response = client.get(reverse("conversations:new"))

    assert response.status_code == 500
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "django.request"]
    assert len(errors) == 1 and errors[0].exc_info[0] is OperationalError


# (3) On PostgreSQL: one connection, held elsewhere -----------------------------------------------
@pytest.fixture
def one_connection_pool(transactional_db):
    """The pool, for this test, of one connection (kept open) and a short wait; the usual one after."""
    connection = connections["default"]
    usual = connection.settings_dict["OPTIONS"]["pool"]
    connection.close()  # this thread's connection back to the usual pool
    connection.close_pool()
    connection.settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": POOL_TIMEOUT}
    yield connection.pool
    connection.close()
    connection.close_pool()
    connection.settings_dict["OPTIONS"]["pool"] = usual


@contextmanager
def the_only_connection_held_elsewhere() -> Iterator[None]:
    """Another thread takes the pool's one connection and holds it until the block ends."""
    held, release = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def hold() -> None:
        try:
            connections["default"].ensure_connection()
        except BaseException as error:
            failed.append(error)
            return
        finally:
            held.set()
        release.wait()
        connections["default"].close()  # back to the pool

    thread = threading.Thread(target=hold, name="holds-the-connection")
    thread.start()
    try:
        assert held.wait(timeout=30), "the holding thread never got going"
        assert not failed, failed
        yield
    finally:
        release.set()
        thread.join(timeout=30)


@pytest.fixture
def signed_in(one_connection_pool, transactional_db):
    """A verified user signed in on a client that shows what the handlers answer; this thread's
    connection then goes back to the pool, leaving it one free connection."""
    user = UserFactory(username="pool-user", email="pool-user@example.com")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    connections["default"].close()
    return client


@only_postgresql
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_request_waiting_past_the_pool_timeout_is_a_503_then_succeeds_once_free(
    signed_in, htmx, caplog, settings
):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    headers = {"HX-Request": "true"} if htmx else {}
    url = reverse("conversations:new") + "?q=private-words"

    with the_only_connection_held_elsewhere(), caplog.at_level(logging.INFO):
        response = signed_in.get(url, headers=headers)

    assert response.status_code == 503
    assert response["Retry-After"] == str(views.BUSY_RETRY_AFTER_SECONDS)
    body = response.content.decode()
    assert BUSY in body and TRY_AGAIN in body
    if htmx:
        assert response["HX-Retarget"] == "#error-banner"
    else:
        assert 'class="brand"' in body  # the page, not the plain-text fallback
    assert_one_busy_line(caplog, "private-words", "pool-user")

    response = signed_in.get(url, headers=headers)

    assert response.status_code == 200
    assert BUSY not in response.content.decode()


@pytest.fixture
def pending_reply(one_connection_pool, transactional_db, fake_upstream):
    user = UserFactory()
    model = AIModelFactory(
        provider="openai_compatible", api_endpoint=fake_upstream.openai_base_url, deployment_name="gpt-4o-mini",
        api_key_env="", context_window=16_000, max_completion_tokens=1_000,
    )
    conversation = ConversationFactory(user=user, model=model, system_prompt="")
    MessageFactory(conversation=conversation, content="Say hello")
    reply = MessageFactory(conversation=conversation, pending=True)
    client = AsyncClient(raise_request_exception=False)
    client.force_login(user)
    connections["default"].close()  # the pool's one connection is free again
    return client, reverse("conversations:reply_stream", args=[conversation.public_id, reply.pk])


@only_postgresql
@pytest.mark.asyncio
@pytest.mark.usefixtures("close_thread_connections")
async def test_the_reply_stream_is_a_503_before_it_starts_then_streams_once_free(pending_reply, caplog, settings):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    client, url = pending_reply

    with the_only_connection_held_elsewhere(), caplog.at_level(logging.INFO):
        response = await client.get(url)

    assert response.status_code == 503
    assert response["Retry-After"] == str(views.BUSY_RETRY_AFTER_SECONDS)
    assert not response.streaming
    assert_one_busy_line(caplog)

    response = await client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = "".join([chunk.decode() async for chunk in response.streaming_content])
    assert "event: done" in events


@pytest.fixture
def someone_elses_reply(transactional_db):
    reply = MessageFactory(pending=True)
    client = AsyncClient()
    client.force_login(UserFactory())
    connections["default"].close()  # back to the pool: it now lends none
    return client, reverse("conversations:reply_stream", args=[reply.conversation.public_id, reply.pk])


def lent(pool) -> int:
    stats = pool.get_stats()
    return stats.get("pool_size", 0) - stats.get("pool_available", 0)


@only_postgresql
@pytest.mark.asyncio
async def test_an_error_page_under_asgi_gives_its_connection_back_to_the_pool(someone_elses_reply):
    # Django renders it in a worker thread that is not the request's, where nothing else would.
    client, url = someone_elses_reply
    pool = connections["default"].pool

    response = await client.get(url)

    assert response.status_code == 404
    await sync_to_async(connections.close_all)()  # the request's own thread gives its connection back
    assert lent(pool) == 0
