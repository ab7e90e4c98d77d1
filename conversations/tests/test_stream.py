"""The reply stream, in process, against the fake upstream over real HTTP with the real SDK.

Each test leaves exactly the rows it should: the user's message untouched, the reply complete,
interrupted (partial text kept) or failed (with a readable reason)."""

import asyncio
import html
import logging
import re

import pytest
from asgiref.sync import sync_to_async
from bs4 import BeautifulSoup
from django.db import OperationalError
from django.db.models import QuerySet
from django.urls import reverse

from accounts.tests.factories import UserFactory
from bench.fake_upstream import FakeError, FakeReply
from conversations import models, services, tokens
from conversations.markdown import render_markdown
from conversations.models import Message
from conversations.tests.factories import MessageFactory

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


def parse_events(raw: str) -> list[tuple[str, str]]:
    """Events as a browser's EventSource reads them (lines end with \\r\\n, \\r or \\n)."""
    events, name, data = [], None, []
    for line in re.split(r"\r\n|\r|\n", raw):
        if not line:
            if data:
                events.append((name or "message", "\n".join(data)))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[len("event:") :].removeprefix(" ")
        elif line.startswith("data:"):
            data.append(line[len("data:") :].removeprefix(" "))
    return events


def stream_url(reply: Message) -> str:
    return reverse("conversations:reply_stream", args=[reply.conversation.public_id, reply.pk])


async def open_stream(async_client, reply: Message):
    response = await async_client.get(stream_url(reply))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    return response


async def read_all(async_client, reply: Message) -> list[tuple[str, str]]:
    response = await open_stream(async_client, reply)
    raw = "".join([chunk.decode() async for chunk in response.streaming_content])
    return parse_events(raw)


def deltas(events) -> str:
    return "".join(html.unescape(data) for name, data in events if name == "delta")


def shown(events) -> tuple[str, str]:
    """What the streaming bubble shows after these events, as the page's htmx swaps them in: the
    finished blocks' HTML ('block', appended), and the text after them ('delta' appends to it,
    'tail' replaces it)."""
    blocks, text = "", ""
    for name, data in events:
        if name == "block":
            blocks += data
        elif name == "tail":
            text = html.unescape(data)
        elif name == "delta":
            text += html.unescape(data)
    return blocks, text


@pytest.fixture
def turn(conversation):
    """A committed user message and its pending reply, as message_create leaves them."""
    question = MessageFactory(conversation=conversation, content="Say hello")
    reply = MessageFactory(conversation=conversation, pending=True)
    return question, reply


async def reload(message: Message) -> Message:
    return await Message.objects.select_related("conversation", "model").aget(pk=message.pk)


async def test_complete_reply_streams_then_is_saved(client_in, turn, fake_upstream):
    question, reply = turn
    fake_upstream.script(FakeReply(text="Hello there, **friend**!", prompt_tokens=11, completion_tokens=6))

    events = await read_all(client_in, reply)

    assert [name for name, _ in events] == ["delta"] * 3 + ["done"]
    assert deltas(events) == "Hello there, **friend**!"
    done = BeautifulSoup(events[-1][1], "html.parser")
    assert done.article["id"] == f"message-{reply.pk}"
    assert done.find("strong").text == "friend"
    saved = await reload(reply)
    assert saved.status == Message.Status.COMPLETE
    assert saved.content == "Hello there, **friend**!"
    assert saved.error == ""
    assert saved.usage == {"prompt_tokens": 11, "completion_tokens": 6}
    encoding = tokens.encoding_for("gpt-4o-mini")
    assert saved.token_count == tokens.message_tokens(role="assistant", content=saved.content, encoding=encoding)
    assert (await reload(question)).content == "Say hello"


async def test_the_stream_tells_a_proxy_not_to_buffer_it_and_sends_a_comment_while_quiet(
    client_in, turn, fake_upstream, monkeypatch
):
    from conversations import views

    assert views.KEEPALIVE_SECONDS == 15  # README: a comment line every 15 s on a quiet stream
    monkeypatch.setattr(views, "KEEPALIVE_SECONDS", 0.05)  # the same, sooner
    _, reply = turn
    fake_upstream.script(FakeReply(text="thinking hard", hang_after=0))  # the provider stays silent

    response = await open_stream(client_in, reply)
    chunks = aiter(response.streaming_content)
    assert await asyncio.wait_for(anext(chunks), 60) == b": stream open\n\n"
    quiet = await asyncio.wait_for(anext(chunks), 60)  # nothing came from the provider meanwhile

    assert response["X-Accel-Buffering"] == "no"
    assert quiet.startswith(b":") and quiet.endswith(b"\n\n")  # a comment: no event for the page
    await client_in.post(reverse("conversations:reply_stop", args=[reply.conversation.public_id, reply.pk]))
    rest = parse_events("".join([chunk.decode() async for chunk in chunks]))
    assert [name for name, _ in rest] == ["done"]


async def test_request_carries_the_conversation(client_in, conversation, fake_upstream):
    conversation.system_prompt = "You are terse."
    await conversation.asave()
    await sync_to_async(MessageFactory)(conversation=conversation, content="First question")
    await sync_to_async(MessageFactory)(conversation=conversation, reply=True, content="First answer")
    await sync_to_async(MessageFactory)(conversation=conversation, reply=True, status="failed", content="", error="x")
    await sync_to_async(MessageFactory)(conversation=conversation, content="Second question")
    reply = await sync_to_async(MessageFactory)(conversation=conversation, pending=True)

    await read_all(client_in, reply)

    body = fake_upstream.last.body
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second question"},
    ]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == "gpt-4o-mini"


async def test_old_messages_left_out_are_counted_and_shown(client_in, conversation, chat_model, fake_upstream):
    chat_model.context_window = 1_600
    chat_model.max_completion_tokens = 500
    await sync_to_async(chat_model.save)()
    for n in range(30):
        await sync_to_async(MessageFactory)(conversation=conversation, content=f"Question {n} " + "word " * 60)
    reply = await sync_to_async(MessageFactory)(conversation=conversation, pending=True)

    events = await read_all(client_in, reply)

    sent = fake_upstream.last.body["messages"]
    saved = await reload(reply)
    assert 0 < len(sent) < 30
    assert saved.context_omitted == 30 - len(sent)
    assert sent[-1]["content"].startswith("Question 29 ")
    assert f"{saved.context_omitted} earlier messages were left out" in events[-1][1]


@pytest.mark.parametrize(
    "error, expected",
    [
        (FakeError.rate_limited(retry_after=7), "Try again in 7 seconds"),
        (FakeError.server_error(), "internal error"),
        (FakeError.bad_key(), "rejected the API key"),
        (FakeError.model_not_found(), "has no model named"),
        (FakeError.context_length_exceeded(), "too long for fake-gpt"),
    ],
)
async def test_provider_error_before_any_text_fails_the_reply(client_in, turn, fake_upstream, error, expected):
    question, reply = turn
    fake_upstream.script(error)

    events = await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.FAILED
    assert saved.content == ""
    assert expected in saved.error
    assert "Traceback" not in events[-1][1]
    done = BeautifulSoup(events[-1][1], "html.parser")
    assert expected in done.find(class_="problem").text
    assert done.find("button", class_="retry")
    assert (await reload(question)).content == "Say hello"


@pytest.mark.parametrize(
    "script",
    [
        FakeReply(text="one two three four five", error_after=2),
        FakeReply(text="one two three four five", cut_after=2),
    ],
    ids=["error-event", "connection-cut"],
)
async def test_break_mid_stream_keeps_the_partial_reply(client_in, turn, fake_upstream, script):
    _, reply = turn
    fake_upstream.script(script)

    events = await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.INTERRUPTED
    assert saved.content == "one two"
    assert deltas(events) == "one two"
    assert saved.error
    assert saved.token_count is not None
    assert "one two" in events[-1][1]


async def test_timeout_before_the_first_token_fails_with_a_clear_reason(client_in, turn, fake_upstream, settings):
    settings.LLM_READ_TIMEOUT = 0.5
    _, reply = turn
    fake_upstream.script(FakeReply(hang_after=0))

    await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.FAILED
    assert "did not answer within 0.5 seconds" in saved.error


async def test_timeout_mid_stream_keeps_what_arrived(client_in, turn, fake_upstream, settings):
    # The first word must come within the read timeout (in milliseconds; 5 s leaves a busy machine
    # room), and then the test waits that long for the silence to time out.
    settings.LLM_READ_TIMEOUT = 5
    _, reply = turn
    fake_upstream.script(FakeReply(text="alpha beta gamma", hang_after=1))

    await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.INTERRUPTED
    assert saved.content == "alpha"


async def test_stop_button_ends_the_stream_and_keeps_the_text(client_in, turn, fake_upstream):
    _, reply = turn
    # Five words, then the provider goes silent (it never ends on its own): the stop surely lands
    # while the reply is being written, however slow the machine.
    fake_upstream.script(FakeReply(text=" ".join(f"w{n}" for n in range(40)), hang_after=5))
    response = await open_stream(client_in, reply)
    received = ""
    stopped = False
    async for chunk in response.streaming_content:  # ends with the reply's 'done'
        received += chunk.decode()
        if received.count("event: delta") == 5 and not stopped:  # the words so far may come in one chunk
            stop = await client_in.post(
                reverse("conversations:reply_stop", args=[reply.conversation.public_id, reply.pk])
            )
            assert stop.status_code == 204
            stopped = True

    saved = await reload(reply)
    assert saved.status == Message.Status.INTERRUPTED
    assert saved.error == services.STOPPED
    assert saved.content == "w0 w1 w2 w3 w4"
    assert deltas(parse_events(received)) == saved.content


async def reloaded_when(message: Message, condition, *, within: float = 60.0) -> Message:
    """The message as saved, once `condition(saved)` holds: polls the row, fails after `within` s."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition(saved := await reload(message)):
        assert asyncio.get_running_loop().time() < deadline, f"reply {message.pk} never reached the state"
        await asyncio.sleep(0.02)
    return saved


async def test_a_silent_provider_does_not_make_a_live_reply_look_abandoned(client_in, turn, fake_upstream, monkeypatch):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.05)
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 0.2)
    _, reply = turn
    fake_upstream.script(FakeReply(text="never reached", first_delay=120))  # silent for the whole test
    reading = asyncio.create_task(read_all(client_in, reply))
    claimed = await reloaded_when(reply, lambda saved: saved.status == Message.Status.STREAMING)

    heartbeat = await reloaded_when(reply, lambda saved: saved.updated_at > claimed.updated_at)

    assert heartbeat.status == Message.Status.STREAMING
    assert heartbeat.content == ""  # nothing came from the provider: the write was a heartbeat
    await client_in.post(reverse("conversations:reply_stop", args=[reply.conversation.public_id, reply.pk]))
    await reading
    assert (await reload(reply)).error == services.STOPPED


async def test_a_checkpoint_saves_the_text_written_so_far(client_in, turn, fake_upstream, monkeypatch):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.05)
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 0.2)
    _, reply = turn
    fake_upstream.script(FakeReply(text="one two three four five", hang_after=3))  # then silent
    reading = asyncio.create_task(read_all(client_in, reply))

    checkpointed = await reloaded_when(reply, lambda saved: saved.content == "one two three")

    assert checkpointed.status == Message.Status.STREAMING  # a checkpoint, not the end
    await client_in.post(reverse("conversations:reply_stop", args=[reply.conversation.public_id, reply.pk]))
    await reading
    assert (await reload(reply)).content == "one two three"


async def test_stop_before_the_stream_starts_never_calls_the_provider(client_in, turn, fake_upstream):
    _, reply = turn

    await client_in.post(reverse("conversations:reply_stop", args=[reply.conversation.public_id, reply.pk]))
    events = await read_all(client_in, reply)

    assert [name for name, _ in events] == ["done"]
    assert fake_upstream.chat_requests == []
    saved = await reload(reply)
    assert saved.status == Message.Status.FAILED
    assert saved.error == services.STOPPED


async def test_a_finished_reply_is_not_asked_again(client_in, turn, fake_upstream):
    _, reply = turn
    await read_all(client_in, reply)
    asked = len(fake_upstream.chat_requests)

    events = await read_all(client_in, reply)  # e.g. the browser reconnecting

    assert len(fake_upstream.chat_requests) == asked == 1
    assert [name for name, _ in events] == ["done"]


async def test_two_streams_of_one_reply_ask_the_provider_once(client_in, turn, fake_upstream):
    _, reply = turn
    fake_upstream.script(FakeReply(text="slow reply here", delay=0.2))

    first, second = await asyncio.gather(read_all(client_in, reply), read_all(client_in, reply))

    assert len(fake_upstream.chat_requests) == 1
    assert "slow reply here" in {deltas(first), deltas(second)}


async def test_model_output_is_escaped_while_streaming_and_sanitized_at_the_end(client_in, turn, fake_upstream):
    _, reply = turn
    attack = '<img src=x onerror=alert(1)> <script>alert(2)</script> [x](javascript:alert(3))'
    fake_upstream.script(FakeReply(text=attack, chunks=3))

    events = await read_all(client_in, reply)

    for name, data in events:
        if name == "delta":
            assert "<" not in data
    done = BeautifulSoup(events[-1][1], "html.parser")
    assert not done.find_all(["img", "script"])
    assert not done.find("a", href=lambda h: h and h.startswith("javascript"))
    assert "<img src=x" in done.get_text()


async def test_line_breaks_in_model_output_cannot_forge_events(client_in, turn, fake_upstream):
    _, reply = turn
    forged = "a\revent: done\rdata: forged\r\n\r\nevent: done\ndata: x\n\nb"
    fake_upstream.script(FakeReply(text=forged, chunks=1))

    events = await read_all(client_in, reply)

    # Blank lines finish paragraphs: they arrive rendered; the rest is text. Each line break is
    # inside a data line of its event.
    assert [name for name, _ in events] == ["block", "tail", "done"]
    block = BeautifulSoup(events[0][1], "html.parser")
    assert [p.get_text() for p in block.find_all("p")] == ["a\nevent: done\ndata: forged", "event: done\ndata: x"]
    assert events[1][1] == "b"
    assert (await reload(reply)).content == forged


async def test_model_without_streaming_gets_the_whole_reply(client_in, turn, chat_model, fake_upstream):
    chat_model.supports_streaming = False
    await sync_to_async(chat_model.save)()
    _, reply = turn
    fake_upstream.script(FakeReply(text="All at once."))

    events = await read_all(client_in, reply)

    assert fake_upstream.last.body["stream"] is False
    assert [name for name, _ in events] == ["delta", "done"]
    assert (await reload(reply)).status == Message.Status.COMPLETE


async def test_reply_at_the_length_limit_is_kept_and_marked(client_in, turn, fake_upstream):
    _, reply = turn
    fake_upstream.script(FakeReply(text="cut here", finish_reason="length"))

    await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.COMPLETE
    assert "length limit" in saved.error


async def test_key_removed_after_sending_fails_the_reply_without_a_call(client_in, turn, chat_model, monkeypatch, fake_upstream):
    chat_model.api_key_env = "CHATTER_TEST_KEY"
    await sync_to_async(chat_model.save)()
    monkeypatch.delenv("CHATTER_TEST_KEY", raising=False)
    _, reply = turn

    await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.FAILED
    assert "its API key is not configured" in saved.error
    assert fake_upstream.chat_requests == []


async def test_model_deactivated_after_sending_fails_the_reply_without_a_call(client_in, turn, chat_model, fake_upstream):
    chat_model.is_default = False
    chat_model.is_active = False
    await sync_to_async(chat_model.save)()
    _, reply = turn

    await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.FAILED
    assert "fake-gpt is no longer available" in saved.error
    assert fake_upstream.chat_requests == []


async def test_another_users_reply_stream_is_404(async_client, turn):
    await async_client.aforce_login(await sync_to_async(UserFactory)())
    _, reply = turn

    response = await async_client.get(stream_url(reply))

    assert response.status_code == 404
    assert (await reload(reply)).status == Message.Status.PENDING


async def test_anonymous_stream_is_redirected_to_login(async_client, turn):
    _, reply = turn

    response = await async_client.get(stream_url(reply))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


async def test_a_reply_whose_conversation_is_deleted_meanwhile_ends_quietly(
    client_in, turn, fake_upstream, caplog, upstream_gate
):
    _, reply = turn
    fake_upstream.script(FakeReply(text=" ".join(f"w{n}" for n in range(20)), hang_after=3))  # then the gate
    reading = asyncio.create_task(read_all(client_in, reply))
    await reloaded_when(reply, lambda saved: saved.status == Message.Status.STREAMING)

    await reply.conversation.adelete()  # while the reply is surely being written
    upstream_gate.set()  # the rest of it
    await reading

    assert not await Message.objects.filter(pk=reply.pk).aexists()
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.name.startswith(("conversations", "django"))]


async def test_a_reply_whose_conversation_goes_before_its_context_is_read_ends_quietly(turn, fake_upstream, caplog):
    _, reply = turn
    loaded = await Message.objects.select_related("conversation", "model").aget(pk=reply.pk)
    await reply.conversation.adelete()

    events = [event async for event in services.reply_stream(reply=loaded, stopped=asyncio.Event())]

    assert events == []
    assert fake_upstream.chat_requests == []  # the provider is not asked for a conversation that is gone
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("conversations")]
    assert "ended after its conversation was deleted" in caplog.text


async def test_a_reply_another_worker_writes_is_shown_from_its_checkpoints(client_in, turn, monkeypatch):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    _, reply = turn
    # Being written, but not by a job this process's relay carries: another worker's.
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.STREAMING, content="Half <b>")
    response = await open_stream(client_in, reply)
    chunks = aiter(response.streaming_content)
    assert (await anext(chunks)).startswith(b": stream open")
    assert parse_events((await anext(chunks)).decode()) == [("tail", "Half &lt;b&gt;")]  # the text so far

    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.COMPLETE, content="Half and **whole**.")
    events = parse_events("".join([chunk.decode() async for chunk in chunks]))

    [(name, bubble)] = [event for event in events if event[0] != "message"]
    assert name == "done"
    assert "<strong>whole</strong>" in bubble


# Markdown as it streams ---------------------------------------------------------------------------
TABLE_AND_CODE = "Here:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('<b>')\n```\n\nDone."


async def test_finished_blocks_arrive_rendered_once_and_the_reply_keeps_their_html(
    client_in, turn, fake_upstream, monkeypatch
):
    _, reply = turn
    fake_upstream.script(FakeReply(text=TABLE_AND_CODE, chunks=15))
    renders = []
    monkeypatch.setattr(services, "render_markdown", lambda text: renders.append(text) or render_markdown(text))
    monkeypatch.setattr(models, "render_markdown", lambda text: pytest.fail("rendered again"))

    events = await read_all(client_in, reply)

    assert events[-1][0] == "done" and "block" in dict(events)
    blocks, rest = shown(events[:-1])
    page = BeautifulSoup(blocks, "html.parser")
    assert page.find("table").find("td").text == "1"
    assert page.find("div", class_="code-lang").text == "python"
    assert page.find("pre").get_text() == "print('<b>')\n"
    assert rest == "Done."
    saved = await reload(reply)
    assert saved.content == TABLE_AND_CODE
    assert saved.content_html == blocks + render_markdown("Done.") == render_markdown(TABLE_AND_CODE)
    assert "".join(renders) == TABLE_AND_CODE  # every part of the reply rendered, and only once
    assert saved.content_html in events[-1][1]  # the finished bubble: the same HTML, nothing moves


async def test_a_reply_cut_short_keeps_the_html_of_what_was_written(client_in, turn, fake_upstream):
    _, reply = turn
    fake_upstream.script(FakeReply(text="First.\n\n```js\nlet a = 1;\nlet b = 2;\n", chunks=6, cut_after=4))

    events = await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.INTERRUPTED
    assert saved.content and saved.content_html == render_markdown(saved.content)
    assert saved.content_html in events[-1][1]


async def test_blocks_are_sanitized_and_the_text_after_them_escaped(client_in, turn, fake_upstream):
    _, reply = turn
    attack = "<img src=x onerror=alert(1)>\n\n[x](javascript:alert(3))\n\n<script>alert(2)</script>\n\n<b>end</b>"
    fake_upstream.script(FakeReply(text=attack))

    events = await read_all(client_in, reply)

    for name, data in events[:-1]:
        if name == "block":
            page = BeautifulSoup(data, "html.parser")
            assert not page.find_all(["img", "script"])
            assert not page.find("a", href=lambda href: href and "javascript" in href)
        else:
            assert "<" not in data
    blocks, rest = shown(events[:-1])
    text = BeautifulSoup(blocks, "html.parser").get_text()
    assert text == "<img src=x onerror=alert(1)>\n[x](javascript:alert(3))\n<script>alert(2)</script>\n"
    assert rest == "<b>end</b>"


def first_claim_fails(monkeypatch) -> list[dict]:
    """The first claim of a reply (its UPDATE to streaming) finds no database connection free; the
    next ones go through. The claims tried, in a list that fills as they come."""
    claims, real_aupdate = [], QuerySet.aupdate

    async def busy_once(rows, **changes):
        if changes.get("status") == Message.Status.STREAMING:
            claims.append(changes)
            if len(claims) == 1:
                raise OperationalError("couldn't get a connection after 5.00 sec")
        return await real_aupdate(rows, **changes)

    monkeypatch.setattr(QuerySet, "aupdate", busy_once)
    return claims


async def test_a_reply_whose_start_failed_is_started_again_by_its_page(client_in, turn, fake_upstream, monkeypatch, caplog):
    _, reply = turn
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    claims = first_claim_fails(monkeypatch)
    fake_upstream.script(FakeReply(text="Second time lucky."))

    events = await read_all(client_in, reply)

    saved = await reload(reply)
    assert (saved.status, saved.content) == (Message.Status.COMPLETE, "Second time lucky.")
    assert len(claims) == 2 and events[-1][0] == "done"
    assert [r.getMessage() for r in caplog.records if r.name == "conversations.services"] == [
        f"Reply not started: error=OperationalError reply={reply.pk}"
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
