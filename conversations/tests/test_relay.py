"""Replies that outlive the page: the job writes the reply, the relay carries it to every page
that attaches, from wherever it is, with no gap and no repeat. In process, against the fake
upstream over real HTTP with the real SDK; each test runs on both relays, in-process and Redis
(the Redis run is skipped unless TEST_REDIS_URL is set: see conftest.any_relay)."""

import asyncio
import html
import re

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from bench.fake_upstream import FakeReply
from conversations import relay as relay_module
from conversations import services
from conversations.models import Message
from conversations.tests.factories import MessageFactory
from conversations.tests.test_stream import open_stream, reload, stream_url

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections", "any_relay"),
]

WORDS = " ".join(f"w{n}" for n in range(30))


@pytest.fixture
def turn(conversation):
    MessageFactory(conversation=conversation, content="Talk")
    return MessageFactory(conversation=conversation, pending=True)


def parse(raw: str) -> list[tuple[str, str, int | None]]:
    """(event, data, id) as an EventSource reads them; comments skipped."""
    events, name, data, event_id = [], None, [], None
    for line in re.split(r"\r\n|\r|\n", raw):
        if not line:
            if data:
                events.append((name or "message", "\n".join(data), event_id))
            name, data, event_id = None, [], None
        elif line.startswith("event:"):
            name = line[6:].removeprefix(" ")
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("id:"):
            event_id = int(line[3:]) if line[3:].strip() else None
    return events


def text_shown(events) -> str:
    """The reply's text as the page shows it while it streams: blocks, then the plain rest."""
    blocks, rest = "", ""
    for name, data, _ in events:
        if name in ("block", "snapshot"):
            blocks = data if name == "snapshot" else blocks + data
        elif name == "tail":
            rest = html.unescape(data)
        elif name == "delta":
            rest += html.unescape(data)
    return re.sub(r"<[^>]+>", "", blocks) + rest


async def read(response, *, until: int | None = None) -> tuple[list, object]:
    """Events of a stream; with `until`, only until that many carried an id (the rest unread)."""
    chunks, raw = aiter(response.streaming_content), ""
    async for chunk in chunks:
        raw += chunk.decode()
        if until is not None and sum(1 for *_, i in parse(raw) if i) >= until:
            break
    return parse(raw), chunks


async def test_every_event_carries_its_number_in_order(client_in, turn, fake_upstream):
    fake_upstream.script(FakeReply(text="One.\n\nTwo " + WORDS))

    events, _ = await read(await open_stream(client_in, turn))

    # A block comes with the text after it ("tail"), which carries the pair's number.
    assert "block" in [name for name, *_ in events]
    ids = [event_id for name, _, event_id in events if name in ("delta", "tail")]
    assert None not in ids and ids == sorted(ids) and len(set(ids)) == len(ids)
    assert events[-1][0] == "done"


async def test_a_page_opened_mid_reply_gets_the_text_so_far_then_the_rest(
    client_in, turn, fake_upstream, upstream_gate
):
    fake_upstream.script(FakeReply(text="First paragraph.\n\n" + WORDS, hang_after=10))  # then the gate
    first, first_chunks = await read(await open_stream(client_in, turn), until=8)

    # e.g. a reload, or another tab, while the reply is surely being written
    second, second_chunks = await read(await open_stream(client_in, turn), until=1)
    upstream_gate.set()  # the rest of the reply
    second += parse("".join([chunk.decode() async for chunk in second_chunks]))
    rest_of_first = parse("".join([chunk.decode() async for chunk in first_chunks]))

    assert [name for name, *_ in second[:2]] == ["snapshot", "tail"]  # what was written, at once
    assert second[1][2] >= 8
    assert text_shown(second) == text_shown(first + rest_of_first) == "First paragraph.\n" + WORDS
    assert len(fake_upstream.chat_requests) == 1


async def test_a_reconnect_resumes_after_the_last_event_it_had(client_in, turn, fake_upstream):
    fake_upstream.script(FakeReply(text="Para one.\n\n" + WORDS, delay=0.03))
    had, _ = await read(await open_stream(client_in, turn), until=5)
    last_id = [event_id for *_, event_id in had if event_id][-1]

    resumed, _ = await read(await client_in.get(stream_url(turn), headers={"Last-Event-ID": str(last_id)}))

    ids = [event_id for *_, event_id in resumed if event_id]
    assert ids == list(range(last_id + 1, last_id + 1 + len(ids)))  # no gap, no repeat
    assert text_shown(had + resumed) == "Para one.\n" + WORDS
    assert len(fake_upstream.chat_requests) == 1


@pytest.mark.parametrize("header", ["abc", "-1", "99999999999999", "1e3"])
async def test_a_last_event_id_that_is_not_ours_starts_from_the_beginning(client_in, turn, fake_upstream, header):
    fake_upstream.script(FakeReply(text=WORDS))

    events, _ = await read(await client_in.get(stream_url(turn), headers={"Last-Event-ID": header}))

    assert text_shown(events) == WORDS


async def test_stop_reaches_the_job_through_the_relay_at_once(client_in, turn, fake_upstream, monkeypatch):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 3600)  # the database's flag is never looked at
    fake_upstream.script(FakeReply(text=WORDS, hang_after=5))  # five words, then silent until stopped
    response = await open_stream(client_in, turn)
    chunks, raw = aiter(response.streaming_content), ""
    async for chunk in chunks:
        raw += chunk.decode()
        if raw.count("event: delta") >= 3:
            break

    stop = await client_in.post(reverse("conversations:reply_stop", args=[turn.conversation.public_id, turn.pk]))
    raw += "".join([chunk.decode() async for chunk in chunks])

    assert stop.status_code == 204
    saved = await reload(turn)
    assert (saved.status, saved.error) == (Message.Status.INTERRUPTED, services.STOPPED)
    assert saved.content.startswith("w0 w1 w2") and saved.content != WORDS
    assert parse(raw)[-1][0] == "done"


async def test_a_stop_only_the_database_knows_ends_the_replies_it_names(
    client_in, turn, fake_upstream, monkeypatch, upstream_gate
):
    # Stop pressed on a worker this relay does not reach: only the database's flag says so. One
    # look at the flags serves every reply written here.
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    other = await sync_to_async(MessageFactory)(conversation=turn.conversation, pending=True)
    # Both pause after five words until the gate opens: the stop lands while both are written.
    fake_upstream.script(*(FakeReply(text=WORDS, hang_after=5) for _ in range(2)))
    streams = [aiter((await open_stream(client_in, reply)).streaming_content) for reply in (turn, other)]
    for chunks in streams:
        raw = ""
        async for chunk in chunks:
            raw += chunk.decode()
            if raw.count("event: delta") >= 2:
                break

    await Message.objects.filter(pk=turn.pk).aupdate(stop_requested=True)  # as the other worker's stop view
    rest = "".join([chunk.decode() async for chunk in streams[0]])
    upstream_gate.set()  # the other reply goes on to its end

    assert parse(rest)[-1][0] == "done"
    saved = await reload(turn)
    assert (saved.status, saved.error) == (Message.Status.INTERRUPTED, services.STOPPED)
    assert saved.content.startswith("w0 w1") and saved.content != WORDS
    "".join([chunk.decode() async for chunk in streams[1]])
    assert (await reload(other)).content == WORDS  # not stopped: its flag was not set


async def test_the_relay_forgets_a_reply_a_while_after_it_ends(any_relay, monkeypatch):
    monkeypatch.setattr(relay_module, "KEEP_SECONDS", 0.05)
    assert await any_relay.open(7) is not None
    assert await any_relay.open(7) is None  # one writer at a time
    await any_relay.publish(7, "delta", text="hi")
    assert await any_relay.knows(7)

    await any_relay.publish(7, "end")
    deadline = asyncio.get_running_loop().time() + 30
    while await any_relay.knows(7):
        assert asyncio.get_running_loop().time() < deadline, "the relay still knows the reply"
        await asyncio.sleep(0.01)

    assert await any_relay.stop(7) is False
