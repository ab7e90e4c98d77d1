"""Under ASGI, at most SYNC_VIEWS_AT_ONCE requests for synchronous views run at once; the rest
wait their turn holding nothing (no thread, no database connection), and one that waited
SYNC_VIEWS_WAIT seconds is answered 503 with the busy page. Async views (a reply's stream)
never wait for a turn. WSGI is left to its server's threads.

The views here run in their worker thread until the test lets them go, so the order of what
runs is seen, not timed."""

import asyncio
import threading

import environ
import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.urls import path, reverse

from chatter import settings as chatter_settings
from chatter import urls as site_urls
from chatter.tests.test_hardening import call_asgi, session_cookie
from conversations.tests.factories import MessageFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]


class Held:
    """A synchronous view, open to anyone, that runs until released (`entered` is set once it
    runs), then answers, or fails when `fail` is set."""

    login_required = False

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def __call__(self, request):
        self.entered.set()
        assert self.release.wait(60), "never released"
        if self.fail:
            raise RuntimeError("the view failed")
        return HttpResponse("held")


held = Held()
urlpatterns = [path("held/", held), *site_urls.urlpatterns]
handler500 = site_urls.handler500


@pytest.fixture(autouse=True)
def _held_view(settings):
    held.__init__()
    settings.ROOT_URLCONF = __name__
    settings.SYNC_VIEWS_AT_ONCE = 1
    yield
    held.release.set()


@pytest_asyncio.fixture
async def turn_taken(settings):
    """The only turn, taken by a held request (a request waiting for it gives up after 0.2 s):
    that request's response, once released."""
    settings.SYNC_VIEWS_WAIT = 0.2
    first = asyncio.ensure_future(call_asgi("GET", "/held/"))
    assert await sync_to_async(held.entered.wait, thread_sensitive=False)(60), "the view never ran"
    return first


@pytest.mark.asyncio
async def test_a_request_waiting_longer_than_the_wait_is_a_503_and_one_warning_line(turn_taken, caplog):
    refused = await call_asgi("GET", reverse("login"))  # while the first holds the only turn

    assert refused.status == 503
    assert refused.headers["retry-after"]
    assert "chatter is busy" in refused.text
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "refused with 503 (1 requests ahead for 0.2 s)" in line
    held.release.set()
    assert (await turn_taken).status == 200


@pytest.mark.asyncio
async def test_an_htmx_request_waiting_too_long_gets_the_error_banner(turn_taken):
    refused = await call_asgi("GET", reverse("login"), headers={"hx-request": "true"})

    assert refused.status == 503
    assert refused.headers["hx-retarget"] == "#error-banner"
    assert "chatter is busy" in refused.text and "<html" not in refused.text
    held.release.set()
    assert (await turn_taken).status == 200


@pytest.mark.asyncio
async def test_a_turn_is_given_back_after_a_refusal_an_error_and_an_answer(turn_taken):
    assert (await call_asgi("GET", reverse("login"))).status == 503
    held.release.set()
    assert (await turn_taken).status == 200

    held.fail = True
    assert (await call_asgi("GET", "/held/")).status == 500
    held.fail = False
    assert (await call_asgi("GET", "/held/")).status == 200  # one turn, and it is free each time
    assert (await call_asgi("GET", reverse("login"))).status == 200


@pytest.mark.asyncio
async def test_async_views_do_not_wait_for_a_turn(user, turn_taken):
    reply = await sync_to_async(MessageFactory)(conversation__user=user, reply=True)  # complete: its stream ends at once
    cookie = await sync_to_async(session_cookie)(user)

    stream = await call_asgi(
        "GET", reverse("conversations:reply_stream", args=[reply.conversation.public_id, reply.pk]),
        headers={"cookie": f"sessionid={cookie}"},
    )

    assert stream.status == 200 and "event: done" in stream.text
    assert not turn_taken.done()  # still holding the only turn
    held.release.set()
    assert (await turn_taken).status == 200


def test_wsgi_requests_do_not_wait_for_a_turn(client, settings):
    # The sync test client is WSGI's path: its server's threads are the limit, not this one.
    settings.SYNC_VIEWS_WAIT = 0.01
    held.release.set()
    assert client.get("/held/").status_code == 200
    assert client.get(reverse("login")).status_code == 200


def test_the_defaults_are_16_at_once_and_45_seconds(monkeypatch):
    for name in ("SYNC_VIEWS_AT_ONCE", "SYNC_VIEWS_WAIT"):
        monkeypatch.delenv(name, raising=False)
    assert chatter_settings.sync_views_from_env(environ.Env()) == (16, 45.0)


@pytest.mark.parametrize("at_once, wait", [("0", "30"), ("4", "0"), ("4", "-1")])
def test_a_limit_that_cannot_work_is_refused_at_startup(monkeypatch, at_once, wait):
    monkeypatch.setenv("SYNC_VIEWS_AT_ONCE", at_once)
    monkeypatch.setenv("SYNC_VIEWS_WAIT", wait)
    with pytest.raises(ImproperlyConfigured, match="SYNC_VIEWS_AT_ONCE must be 1 or more"):
        chatter_settings.sync_views_from_env(environ.Env())
