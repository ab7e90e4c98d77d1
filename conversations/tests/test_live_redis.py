"""Two workers sharing the database and Redis (REDIS_URL), each a uvicorn process: a reply written
on one is followed from its start on the other, and stopped from the other. Skipped unless
TEST_REDIS_URL is set (.ci/run starts a Redis)."""

import re
import time

import pytest
import redis

from bench.fake_upstream import FakeReply
from conversations import services
from conversations.models import Message
from conversations.tests.asgi_server import AsgiServer
from conversations.tests.test_live import signed_in_session
from conversations.tests.test_relay import parse, text_shown

WORDS = " ".join(f"w{n}" for n in range(80))


@pytest.fixture
def workers(transactional_db, settings, redis_url):
    """Two uvicorn processes on the test database, with the same REDIS_URL."""
    env = {"REDIS_URL": redis_url}
    with AsgiServer.for_test_database(secret_key=settings.SECRET_KEY, env=env) as first:
        with AsgiServer.for_test_database(secret_key=settings.SECRET_KEY, env=env) as second:
            yield first, second


@pytest.fixture
def session(workers, user):
    """A requests session signed in as `user` (the cookies hold for both workers: same host)."""
    return signed_in_session(workers[0], user)


def wait_for(condition, *, what: str, within: float = 30.0):
    deadline = time.monotonic() + within
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never happened within {within} s: {what}"
        time.sleep(0.02)
    return found


def test_a_reply_written_on_one_worker_is_followed_and_stopped_on_another(
    workers, session, conversation, fake_upstream, redis_url
):
    writer, other = workers
    fake_upstream.script(FakeReply(text=WORDS, hang_after=5))  # five words, then silent until stopped
    sent = session.post(f"{writer.url}/c/{conversation.public_id}/messages/", data={"content": "Talk a lot"})
    assert sent.status_code == 200
    path = re.search(r'sse-connect="([^"]+)"', sent.text).group(1)
    reply = Message.objects.get(conversation=conversation, role=Message.Role.ASSISTANT)
    with redis.Redis.from_url(redis_url) as client:  # the first worker has relayed a few events
        wait_for(lambda: client.xlen(f"chatter:reply:{reply.pk}") >= 3, what="three events in Redis")

    raw, stopped, deadline = "", False, time.monotonic() + 60
    with session.get(f"{other.url}{path}", stream=True, timeout=30) as response:  # 30 s: a deadline per read
        for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
            assert time.monotonic() < deadline, f"the reply never ended: {raw!r}"
            raw += chunk
            if not stopped and "event: tail" in raw:  # the text so far, from the relay
                stop = session.post(f"{other.url}/c/{conversation.public_id}/replies/{reply.pk}/stop/")
                assert stop.status_code == 204
                stopped = True
            if "event: done" in raw:
                break

    events = parse(raw)
    assert [name for name, *_ in events[:2]] == ["snapshot", "tail"]  # from the relay, from the start
    assert events[1][2] >= 3
    # The stop reached the writer on the other worker (that it goes by pub/sub, not the database's
    # flag, is shown in test_relay_redis with the flag never read).
    assert stopped and "event: done" in raw
    reply.refresh_from_db()
    assert (reply.status, reply.error) == (Message.Status.INTERRUPTED, services.STOPPED)
    assert text_shown(events[:-1]) == reply.content  # every word, once, in order
    assert reply.content.startswith("w0 w1 w2") and reply.content != WORDS
    assert len(fake_upstream.chat_requests) == 1
