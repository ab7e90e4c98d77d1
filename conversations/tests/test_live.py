"""The whole turn through uvicorn, as a browser's requests would make it."""

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings as django_settings
from django.test import Client

from bench.fake_upstream import FakeReply
from conversations import services
from conversations.models import Message
from conversations.tests.factories import ConversationFactory


def signed_in_session(server, user) -> requests.Session:
    """A requests session signed in as `user` on `server`, with the CSRF token htmx would send."""
    client = Client()
    client.force_login(user)
    http = requests.Session()
    http.cookies.set("sessionid", client.cookies["sessionid"].value)
    page = http.get(f"{server.url}/new/")
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    http.headers.update({"X-CSRFToken": token, "HX-Request": "true"})
    return http


@pytest.fixture
def session(asgi_server, user):
    return signed_in_session(asgi_server, user)


def send(asgi_server, session, conversation, text: str) -> str:
    response = session.post(f"{asgi_server.url}/c/{conversation.public_id}/messages/", data={"content": text})
    assert response.status_code == 200
    return asgi_server.url + re.search(r'sse-connect="([^"]+)"', response.text).group(1)


def test_first_delta_reaches_the_browser_before_the_upstream_finishes(
    asgi_server, session, conversation, fake_upstream, upstream_gate
):
    # The upstream sends its first word, then waits until the test opens the gate: the word
    # must reach the browser while the upstream is still waiting (nothing is buffered till the end).
    fake_upstream.script(FakeReply(text="one two three four five six", hang_after=1))
    stream_url = send(asgi_server, session, conversation, "count for me")

    text_before_the_gate_opened = False
    with session.get(stream_url, stream=True, timeout=30) as response:  # 30 s: a deadline per read
        for line in response.iter_lines(decode_unicode=True):
            # The first word: as a delta, or as the text so far when the page came after it.
            if line in ("event: delta", "event: tail") and not upstream_gate.is_set():
                text_before_the_gate_opened = True
                upstream_gate.set()  # it came while the upstream still held the rest: now the rest
            if line == "event: done":
                break

    assert text_before_the_gate_opened
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.status == Message.Status.COMPLETE
    assert reply.content == "one two three four five six"


def test_closing_the_tab_does_not_end_the_reply(asgi_server, session, conversation, fake_upstream, upstream_gate):
    words = " ".join(f"w{n}" for n in range(60))
    fake_upstream.script(FakeReply(text=words, hang_after=3))  # three words, then it waits for the gate
    stream_url = send(asgi_server, session, conversation, "talk a lot")

    path = urlsplit(stream_url).path
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    with socket.create_connection(("127.0.0.1", asgi_server.port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
        received = b""
        deadline = time.monotonic() + 30  # each recv waits at most 30 s too (the socket's timeout)
        while b"event: delta" not in received and b"event: tail" not in received:  # the first text
            assert time.monotonic() < deadline, f"no text came: {received!r}"
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the stream: {received!r}"
            received += chunk
    # The socket is closed here: the browser went away mid-reply. The reply's job goes on.
    upstream_gate.set()  # the rest of the reply, with no page watching

    reply = Message.objects.get(conversation=conversation, role="assistant")
    deadline = time.monotonic() + 30
    while reply.status in Message.IN_PROGRESS and time.monotonic() < deadline:
        time.sleep(0.05)
        reply.refresh_from_db()
    assert (reply.status, reply.content) == (Message.Status.COMPLETE, words)
    assert len(fake_upstream.chat_requests) == 1


def test_stop_lands_on_another_worker(asgi_server, session, conversation, fake_upstream, client, user):
    # The stop request goes to this test process's Django (another process than uvicorn's):
    # the flag travels through the database.
    fake_upstream.script(FakeReply(text=" ".join(f"w{n}" for n in range(60)), hang_after=5))  # then silent
    stream_url = send(asgi_server, session, conversation, "go on")
    reply = Message.objects.get(conversation=conversation, role="assistant")
    client.force_login(user)

    stopped = False
    with session.get(stream_url, stream=True, timeout=30) as response:  # 30 s: a deadline per read
        for line in response.iter_lines(decode_unicode=True):
            # The first text: a delta, or the text so far when the page comes after it was written.
            if line in ("event: delta", "event: tail") and not stopped:
                assert client.post(f"/c/{conversation.public_id}/replies/{reply.pk}/stop/").status_code == 204
                stopped = True
            if line == "event: done":
                break

    reply.refresh_from_db()
    assert reply.status == Message.Status.INTERRUPTED
    assert reply.error == services.STOPPED
    assert reply.content and "w0 w1 w2 w3 w4".startswith(reply.content)


def wait_for_reply(conversation, condition, *, within: float = 60.0) -> Message:
    """The reply as saved once `condition(reply)` holds (polling the row, bounded by `within`)."""
    deadline = time.monotonic() + within
    while True:
        reply = Message.objects.get(conversation=conversation, role="assistant")
        if condition(reply):
            return reply
        assert time.monotonic() < deadline, f"the reply never got there: {reply.status}"
        time.sleep(0.05)


def test_the_reply_is_written_from_the_send_without_any_page_watching(asgi_server, session, conversation, fake_upstream):
    fake_upstream.script(FakeReply(text="Written while nobody watched."))

    send(asgi_server, session, conversation, "write it")  # the stream is never opened

    reply = wait_for_reply(conversation, lambda reply: reply.status not in Message.IN_PROGRESS)
    assert (reply.status, reply.content) == (Message.Status.COMPLETE, "Written while nobody watched.")


def test_a_worker_killed_mid_reply_leaves_it_interrupted_and_retryable(
    asgi_server, session, conversation, fake_upstream, settings
):
    from conversations.tests.asgi_server import AsgiServer

    fake_upstream.script(FakeReply(text="one two three four", hang_after=2), FakeReply(text="Again, whole."))
    stream_url = send(asgi_server, session, conversation, "go")
    wait_for_reply(conversation, lambda reply: reply.status == Message.Status.STREAMING)
    deadline = time.monotonic() + 30
    while not fake_upstream.chat_requests:  # the provider was asked (its first script taken)
        assert time.monotonic() < deadline, "the provider was never asked"
        time.sleep(0.05)

    asgi_server.process.kill()  # SIGKILL: no save, no goodbye
    asgi_server.process.wait()

    with AsgiServer.for_test_database(secret_key=settings.SECRET_KEY) as other:
        path = urlsplit(stream_url).path
        with session.get(other.url + path, stream=True, timeout=60) as response:
            done, in_done = [], False
            for line in response.iter_lines(decode_unicode=True):
                if in_done and not line:
                    break
                in_done = in_done or line == "event: done"
                if in_done and line.startswith("data: "):
                    done.append(line.removeprefix("data: "))
            done = "\n".join(done)
        # Within the staleness window (15 s without a checkpoint) the page is told it broke off.
        assert "The reply broke off before it was finished." in done
        assert 'class="retry"' in done
        retry = re.search(r'hx-post="([^"]+/retry/)"', done).group(1)
        assert session.post(other.url + retry).status_code == 200
        reply = wait_for_reply(conversation, lambda reply: reply.status == Message.Status.COMPLETE)
        assert reply.content == "Again, whole."


@pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="the connection pool is PostgreSQL's (SQLite has none)",
)
def test_pages_following_replies_hold_no_database_connection(transactional_db, settings, user, conversation, fake_upstream):
    # Two connections in the pool (the jobs' thread takes one while it works) and a short wait: a
    # stream that kept its connection while following a reply longer than the wait would leave
    # the other streams waiting for one until they were refused.
    from conversations.tests.asgi_server import AsgiServer

    server = AsgiServer.for_test_database(secret_key=settings.SECRET_KEY)
    server.env.update(DB_POOL_MAX_SIZE="2", DB_POOL_MIN_SIZE="1", DB_POOL_TIMEOUT="2", REPLIES_AT_ONCE_PER_USER="3")
    others = [ConversationFactory(user=user, model=conversation.model, system_prompt="") for _ in range(2)]
    fake_upstream.script(*(FakeReply(text=" ".join(f"w{n}" for n in range(40)), delay=0.1) for _ in range(3)))
    with server:
        http = signed_in_session(server, user)
        urls = [send(server, http, each, "talk") for each in [conversation, *others]]
        with ThreadPoolExecutor(3) as pool:
            bodies = list(pool.map(lambda url: http.get(url, timeout=60).text, urls))

    assert all("event: done" in body and "status-complete" in body for body in bodies)
    assert Message.objects.filter(role="assistant", status=Message.Status.COMPLETE).count() == 3


def test_open_streams_share_a_few_threads(asgi_server, user, conversation, fake_upstream):
    # Django gives each request a thread of its own for its synchronous work, for as long as it is
    # open: a waiting stream would keep one (about 100 KB each). chatter.threads shares a few.
    from conversations.tests.factories import MessageFactory

    fake_upstream.default_reply = FakeReply(hang_after=0)  # every reply waits for its first token
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    port = urlsplit(asgi_server.url).port

    def open_stream() -> socket.socket:
        talk = ConversationFactory(user=user, model=conversation.model, system_prompt="")
        MessageFactory(conversation=talk, content="wait with me")
        reply = MessageFactory(conversation=talk, pending=True)
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        path = f"/c/{talk.public_id}/replies/{reply.pk}/stream/"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid={cookie}\r\n\r\n".encode())
        received, deadline = b"", time.monotonic() + 30  # and each recv waits at most 30 s
        while b": stream open" not in received:
            assert time.monotonic() < deadline, f"the stream never opened: {received!r}"
            chunk = sock.recv(4096)
            assert chunk, f"the server closed the stream: {received!r}"
            received += chunk
        return sock

    def threads() -> int:
        with open(f"/proc/{asgi_server.process.pid}/status") as status:
            return int(next(line for line in status if line.startswith("Threads:")).split()[1])

    def asked(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(fake_upstream.chat_requests) < count:
            assert time.monotonic() < deadline, "the replies' jobs never asked the upstream"
            time.sleep(0.05)  # polling for the state "every job has asked", bounded by the deadline

    warm = [open_stream() for _ in range(2)]  # the jobs' thread, the SDK's client, the resolver
    asked(2)
    before = threads()
    opened = [open_stream() for _ in range(30)]
    asked(32)
    grown = threads() - before
    for sock in warm + opened:
        sock.close()

    # A thread per stream would be 30 more; the shared ones, and the event loop's own few
    # (resolving the upstream's address for its new connections), are fewer.
    assert grown <= django_settings.SYNC_VIEWS_AT_ONCE + 6, grown
