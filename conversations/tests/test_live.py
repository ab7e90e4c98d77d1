"""The whole turn through uvicorn, as a browser's requests would make it."""

import re
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client

from bench.fake_upstream import FakeReply
from conversations import services
from conversations.models import Message


@pytest.fixture
def session(asgi_server, user):
    """A requests session signed in as `user`, with the CSRF token htmx would send."""
    client = Client()
    client.force_login(user)
    http = requests.Session()
    http.cookies.set("sessionid", client.cookies["sessionid"].value)
    page = http.get(f"{asgi_server.url}/new/")
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    http.headers.update({"X-CSRFToken": token, "HX-Request": "true"})
    return http


def send(asgi_server, session, conversation, text: str) -> str:
    response = session.post(f"{asgi_server.url}/c/{conversation.public_id}/messages/", data={"content": text})
    assert response.status_code == 200
    return asgi_server.url + re.search(r'sse-connect="([^"]+)"', response.text).group(1)


def test_first_delta_reaches_the_browser_before_the_upstream_finishes(asgi_server, session, conversation, fake_upstream):
    fake_upstream.script(FakeReply(text="one two three four five six", delay=0.3))
    stream_url = send(asgi_server, session, conversation, "count for me")

    started = time.monotonic()
    first_delta = done = None
    with session.get(stream_url, stream=True, timeout=30) as response:
        for line in response.iter_lines(decode_unicode=True):
            if line == "event: delta" and first_delta is None:
                first_delta = time.monotonic() - started
            if line == "event: done":
                done = time.monotonic() - started
                break

    # The upstream takes 5 x 0.3 s after its first word: the first word must arrive long before.
    assert first_delta is not None and done is not None
    assert done - first_delta >= 1.2
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.status == Message.Status.COMPLETE
    assert reply.content == "one two three four five six"


def test_closing_the_tab_does_not_end_the_reply(asgi_server, session, conversation, fake_upstream):
    words = " ".join(f"w{n}" for n in range(60))
    fake_upstream.script(FakeReply(text=words, delay=0.02))
    stream_url = send(asgi_server, session, conversation, "talk a lot")

    path = urlsplit(stream_url).path
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    with socket.create_connection(("127.0.0.1", asgi_server.port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
        received = b""
        while received.count(b"event: delta") < 3:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the stream"
            received += chunk
    # The socket is closed here: the browser went away mid-reply. The reply's job goes on.

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
    fake_upstream.script(FakeReply(text=" ".join(f"w{n}" for n in range(60)), delay=0.1))
    stream_url = send(asgi_server, session, conversation, "go on")
    reply = Message.objects.get(conversation=conversation, role="assistant")
    client.force_login(user)

    seen = 0
    with session.get(stream_url, stream=True, timeout=30) as response:
        for line in response.iter_lines(decode_unicode=True):
            seen += line == "event: delta"
            if seen == 2:
                assert client.post(f"/c/{conversation.public_id}/replies/{reply.pk}/stop/").status_code == 204
            if line == "event: done":
                break

    reply.refresh_from_db()
    assert reply.status == Message.Status.INTERRUPTED
    assert reply.error == services.STOPPED
    assert 2 <= len(reply.content.split()) < 60
