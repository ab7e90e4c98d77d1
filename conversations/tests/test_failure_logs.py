"""The log line of a reply that did not complete, read through the chat's stream against the fake
upstream (real SDK, real HTTP): one WARNING per reply the provider failed or cut, with the
cause and the ids, never a key nor anyone's text; at most INFO when the user ended it."""

import asyncio
import logging
import socket
from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from bench.fake_upstream import FakeError, FakeReply
from conversations import services
from conversations.models import Message
from conversations.tests.test_titles import background_done
from conversations.tests.factories import MessageFactory

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

KEY_VARIABLE = "CHATTER_FAILURE_LOG_TEST_KEY"
KEY = "sk-failure-log-test-5f3a9c0d17e2"
QUESTION = "My secret plan involves pineapples"  # the user's text: never in the log
ANSWER = "alpha beta gamma delta"  # the model's text: never in the log


@pytest.fixture
def keyed_model(chat_model, monkeypatch):
    """The chat's model, with an API key read from the environment."""
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    chat_model.api_key_env = KEY_VARIABLE
    chat_model.save()
    return chat_model


@pytest.fixture
def reply(conversation, keyed_model):
    MessageFactory(conversation=conversation, content=QUESTION)
    return MessageFactory(conversation=conversation, pending=True)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def stream_url(reply: Message) -> str:
    return reverse("conversations:reply_stream", args=[reply.conversation.public_id, reply.pk])


async def read_all(client, reply: Message) -> str:
    response = await client.get(stream_url(reply))
    assert response.status_code == 200
    return "".join([chunk.decode() async for chunk in response.streaming_content])


def warnings(caplog) -> list[logging.LogRecord]:
    """Records at WARNING or above, from any logger but asyncio's: it reports, at random
    moments, SDK clients of earlier tests' closed event loops being garbage-collected."""
    return [record for record in caplog.records if record.levelno >= logging.WARNING and record.name != "asyncio"]


def reply_lines(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "conversations.services"]


def parsed(record: logging.LogRecord) -> tuple[str, dict[str, str]]:
    """'Reply failed: kind=auth status=401 ...' -> ('failed', {'kind': 'auth', 'status': '401', ...})."""
    head, _, fields = record.getMessage().partition(": ")
    return head.removeprefix("Reply "), dict(field.split("=", 1) for field in fields.split())


def ids(reply: Message) -> dict[str, str]:
    return {
        "model": str(reply.model.pk),
        "model_name": reply.model.name,
        "host": urlsplit(reply.model.api_endpoint).netloc,  # for the log's reader; users never see it
        "conversation": str(reply.conversation.public_id),
        "reply": str(reply.pk),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Each failure, its line ---------------------------------------------------------------------
# script, endpoint (None: the fake upstream), the saved status, the cause, whether the line
# holds the request id of the (last) response.
FAILURES = {
    "401 bad key": (
        FakeError.bad_key(),
        None,
        "failed",
        {"kind": "auth", "status": "401", "code": "invalid_api_key", "error": "AuthenticationError"},
        True,
    ),
    "403 access refused": (
        FakeError.permission_denied(),
        None,
        "failed",
        {"kind": "permission", "status": "403", "error": "PermissionDeniedError"},
        True,
    ),
    "429 rate limit": (
        FakeError.rate_limited(retry_after=7),
        None,
        "failed",
        {"kind": "rate_limit", "status": "429", "code": "rate_limit_exceeded", "error": "RateLimitError"},
        True,
    ),
    "503 server error": (
        FakeError.server_error(status=503),
        None,
        "failed",
        {"kind": "server", "status": "503", "error": "InternalServerError"},
        True,
    ),
    "error event mid-stream": (
        FakeReply(text=ANSWER, error_after=2),
        None,
        "interrupted",
        {"kind": "stream_error", "error": "APIError"},
        True,
    ),
    "connection cut mid-stream": (
        FakeReply(text=ANSWER, cut_after=2),
        None,
        "interrupted",
        {"kind": "connection_cut", "error": "APIConnectionError"},
        True,
    ),
    "stream ended without a finish reason": (
        FakeReply(text=ANSWER, cut_after=2, chunked=False),
        None,
        "interrupted",
        {"kind": "cut_short"},
        True,
    ),
    "timeout before the response": (
        FakeReply(hang_after=0),
        None,
        "failed",
        {"kind": "timeout", "error": "APITimeoutError"},
        False,
    ),
    "timeout mid-stream": (
        FakeReply(text=ANSWER, hang_after=2),
        None,
        "interrupted",
        {"kind": "timeout", "error": "APITimeoutError"},
        True,
    ),
    "refused connection": (
        None,
        lambda: f"http://127.0.0.1:{free_port()}/v1",
        "failed",
        {"kind": "connection_refused", "error": "APIConnectionError"},
        False,
    ),
    "unknown host": (
        None,
        lambda: "http://nonexistent.invalid:9/v1",  # .invalid never resolves (RFC 2606)
        "failed",
        {"kind": "unknown_host", "error": "APIConnectionError"},
        False,
    ),
}


@pytest.mark.parametrize(
    ("script", "endpoint", "status", "cause", "has_request_id"), FAILURES.values(), ids=FAILURES.keys()
)
async def test_a_provider_failure_is_one_warning_with_its_cause_and_ids(
    client_in, reply, fake_upstream, settings, logs, script, endpoint, status, cause, has_request_id
):
    if getattr(script, "hang_after", None) == 0:
        settings.LLM_READ_TIMEOUT = 0.5  # nothing ever comes: the timeout fires however slow the machine
    elif getattr(script, "hang_after", None) is not None:
        settings.LLM_READ_TIMEOUT = 5  # the first words must come in time (milliseconds); then it fires
    if script is not None:
        fake_upstream.script(script)
    if endpoint is not None:
        reply.model.api_endpoint = endpoint()
        await sync_to_async(reply.model.save)()

    await read_all(client_in, reply)

    [line] = warnings(logs)
    assert line.levelno == logging.WARNING
    assert line.name == "conversations.services"
    request_id = {"request_id": fake_upstream.last.request_id} if has_request_id else {}
    assert parsed(line) == (status, {**cause, **request_id, **ids(reply)})
    assert (await Message.objects.aget(pk=reply.pk)).status == status


@pytest.mark.parametrize(
    "script",
    [
        FakeError(status=400, message=f"Cannot use '{QUESTION}' with key {KEY}"),
        FakeReply(text=ANSWER, error_after=2, error_message=f"Cannot use '{QUESTION}' with key {KEY}"),
    ],
    ids=["http error", "error event mid-stream"],
)
async def test_the_log_holds_neither_the_key_nor_anyones_text_even_when_the_provider_echoes_them(
    client_in, reply, fake_upstream, logs, script
):
    fake_upstream.script(script)

    await read_all(client_in, reply)

    saved = await Message.objects.aget(pk=reply.pk)
    assert QUESTION in saved.error  # the user is shown what the provider said (its key masked)...
    assert len(warnings(logs)) == 1  # ...the log gets one line without it
    assert fake_upstream.last.api_key == KEY
    for secret in (KEY, QUESTION, "Cannot use", "alpha beta"):
        assert secret not in logs.text


async def test_a_key_missing_on_the_server_is_one_warning(client_in, reply, fake_upstream, logs, monkeypatch):
    monkeypatch.delenv(KEY_VARIABLE)

    await read_all(client_in, reply)

    [line] = warnings(logs)
    assert parsed(line) == ("failed", {"kind": "missing_key", **ids(reply)})
    assert fake_upstream.chat_requests == []


# Not the provider's doing: INFO at most ------------------------------------------------------
async def test_stop_pressed_by_the_user_is_info_not_a_warning(client_in, reply, fake_upstream, logs):
    fake_upstream.script(FakeReply(text=" ".join(f"w{n}" for n in range(40)), hang_after=5))  # then silent
    response = await client_in.get(stream_url(reply))
    deltas, stopped = 0, None
    async for chunk in response.streaming_content:
        deltas += chunk.count(b"event: delta")
        if deltas >= 2 and not stopped:
            stopped = await client_in.post(
                reverse("conversations:reply_stop", args=[reply.conversation.public_id, reply.pk])
            )

    assert stopped.status_code == 204
    assert warnings(logs) == []
    [line] = reply_lines(logs)
    assert line.levelno == logging.INFO
    assert parsed(line) == ("interrupted", {"kind": "stopped", **ids(reply)})


async def test_a_closed_tab_is_no_failure_the_reply_goes_on(client_in, reply, fake_upstream, logs):
    words = " ".join(f"w{n}" for n in range(40))
    fake_upstream.script(FakeReply(text=words, delay=0.02))
    response = await client_in.get(stream_url(reply))
    first_delta = asyncio.Event()

    async def browser() -> None:
        async for chunk in response.streaming_content:
            if b"event: delta" in chunk:
                first_delta.set()

    tab = asyncio.create_task(browser())
    await first_delta.wait()
    tab.cancel()  # what the server sees when the browser goes away
    with pytest.raises(asyncio.CancelledError):
        await tab
    await background_done()  # the reply's job, which the tab did not own

    saved = await Message.objects.aget(pk=reply.pk)
    assert (saved.status, saved.content) == (Message.Status.COMPLETE, words)
    assert reply_lines(logs) == []


async def test_a_server_stopping_mid_reply_is_a_warning_and_keeps_the_text(client_in, reply, fake_upstream, logs):
    fake_upstream.script(FakeReply(text=" ".join(f"w{n}" for n in range(40)), hang_after=5))  # then silent
    response = await client_in.get(stream_url(reply))
    async for chunk in response.streaming_content:
        if b"event: delta" in chunk:
            break
    [job] = [task for task in services.BACKGROUND if task.get_name() == "reply_write" and not task.done()]

    job.cancel()  # what a worker shutting down does to its tasks
    with pytest.raises(asyncio.CancelledError):
        await job

    [line] = warnings(logs)
    assert parsed(line) == ("interrupted", {"kind": "server_stopped", **ids(reply)})
    saved = await Message.objects.aget(pk=reply.pk)
    assert saved.error == services.SERVER_STOPPED
    assert saved.content.startswith("w0")


async def test_a_deactivated_model_is_info_not_a_warning(
    client_in, conversation, keyed_model, fake_upstream, logs
):
    # The admin's choice, told to the user: the provider is never asked, nothing needs fixing.
    keyed_model.is_default = keyed_model.is_active = False
    await sync_to_async(keyed_model.save)()
    await sync_to_async(MessageFactory)(conversation=conversation, content=QUESTION)
    reply = await sync_to_async(MessageFactory)(conversation=conversation, pending=True)

    await read_all(client_in, reply)

    assert warnings(logs) == []
    [line] = reply_lines(logs)
    assert line.levelno == logging.INFO
    assert parsed(line) == ("failed", {"kind": "model_inactive", **ids(reply)})
    assert fake_upstream.chat_requests == []


async def test_a_message_too_long_for_the_model_is_info_not_a_warning(
    client_in, conversation, keyed_model, fake_upstream, logs
):
    await sync_to_async(MessageFactory)(conversation=conversation, content=QUESTION, token_count=1_000_000)
    reply = await sync_to_async(MessageFactory)(conversation=conversation, pending=True)

    await read_all(client_in, reply)

    assert warnings(logs) == []
    [line] = reply_lines(logs)
    assert line.levelno == logging.INFO
    assert parsed(line) == ("failed", {"kind": "context_too_long", **ids(reply)})
    assert fake_upstream.chat_requests == []


async def test_a_completed_reply_logs_nothing_of_its_own(client_in, reply, fake_upstream, logs):
    await read_all(client_in, reply)

    assert reply_lines(logs) == []
    assert warnings(logs) == []


# Our own failures ----------------------------------------------------------------------------
async def test_an_unexpected_error_keeps_its_traceback_and_adds_no_warning(client_in, reply, logs, monkeypatch):
    async def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "context_build", broken)

    await read_all(client_in, reply)

    [line] = warnings(logs)
    assert line.levelno == logging.ERROR
    assert line.exc_info and line.exc_info[0] is RuntimeError
    assert parsed(line) == ("failed on our side", {"error": "RuntimeError", **ids(reply)})
