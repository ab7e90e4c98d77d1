"""The LLM client against the fake upstream, through the real openai SDK over real HTTP."""

import asyncio
import logging
import socket
from urllib.parse import urlsplit

import openai
import pytest

from aimodels import services
from aimodels.models import AIModel
from aimodels.services import (
    FailureKind,
    ProviderError,
    chat_request_kwargs,
    client_get,
    connection_test,
    endpoint_models_list,
    error_describe,
    reply_pieces,
)
from aimodels.tests.conftest import AZURE_KEY, OPENAI_KEY
from aimodels.tests.factories import AIModelFactory
from bench.fake_upstream import FakeError, FakeReply, FakeToolCall, FakeUpstream

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Bye"},
]
DEVELOPER = [{"role": "developer", "content": "You are terse."}, *MESSAGES[1:]]
FOLDED = [{"role": "user", "content": "You are terse.\n\nHi"}, *MESSAGES[2:]]
STREAMING = {"stream": True, "stream_options": {"include_usage": True}}


def served_by(upstream: FakeUpstream, **traits) -> AIModel:
    """An unsaved model config whose endpoint is the fake upstream."""
    ai_model = AIModelFactory.build(**traits)
    ai_model.api_endpoint = upstream.azure_endpoint if ai_model.provider == "azure" else upstream.openai_base_url
    return ai_model


async def reply_text(ai_model: AIModel, messages=MESSAGES) -> str:
    """The reply as the chat reads it: through reply_pieces, raw stream parsing included."""
    return "".join([piece.text async for piece in reply_pieces(model=ai_model, messages=messages)])


# The exact requests ----------------------------------------------------------------------
REQUESTS = {
    "openai plain": (
        {},
        ("/v1/chat/completions", {}, "bearer", OPENAI_KEY),
        {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 4096, "temperature": 0.7, **STREAMING},
    ),
    "openai reasoning": (
        {"reasoning": True},
        ("/v1/chat/completions", {}, "bearer", OPENAI_KEY),
        {"model": "o1", "messages": DEVELOPER, "max_completion_tokens": 100_000, **STREAMING},
    ),
    "azure plain": (
        {"azure": True},
        ("/openai/deployments/gpt-4o-mini-prod/chat/completions", {"api-version": "2024-10-21"}, "api-key", AZURE_KEY),
        {"model": "gpt-4o-mini-prod", "messages": MESSAGES, "max_tokens": 4096, "temperature": 0.7, **STREAMING},
    ),
    "azure reasoning": (
        {"azure": True, "reasoning": True, "deployment_name": "o1-prod"},
        ("/openai/deployments/o1-prod/chat/completions", {"api-version": "2024-10-21"}, "api-key", AZURE_KEY),
        {"model": "o1-prod", "messages": DEVELOPER, "max_completion_tokens": 100_000, **STREAMING},
    ),
    "compatible plain": (
        {"compatible": True},
        ("/v1/chat/completions", {}, None, None),
        {"model": "llama3.2:3b", "messages": MESSAGES, "max_tokens": 4096, "temperature": 0.7, **STREAMING},
    ),
    "compatible reasoning folding the system prompt": (
        {
            "compatible": True,
            "reasoning": True,
            "deployment_name": "deepseek-r1:7b",
            "context_window": 32_768,
            "max_completion_tokens": 8192,
            "system_prompt_handling": "fold",
        },
        ("/v1/chat/completions", {}, None, None),
        {"model": "deepseek-r1:7b", "messages": FOLDED, "max_completion_tokens": 8192, **STREAMING},
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize(("traits", "where", "body"), REQUESTS.values(), ids=REQUESTS.keys())
async def test_the_provider_receives_exactly_these_arguments(fake_upstream, api_keys, traits, where, body):
    fake_upstream.script(FakeReply(text="Bye then."))
    ai_model = served_by(fake_upstream, **traits)

    text = await reply_text(ai_model)

    request = fake_upstream.last
    assert (request.method, request.path, request.query, request.auth_kind, request.api_key) == ("POST", *where)
    assert request.body == body
    assert text == "Bye then."


@pytest.mark.asyncio
async def test_a_model_without_streaming_asks_for_the_whole_reply(fake_upstream, api_keys):
    fake_upstream.script(FakeReply(text="All in one go."))
    ai_model = served_by(fake_upstream, supports_streaming=False)

    text = await reply_text(ai_model)

    assert text == "All in one go."
    assert fake_upstream.last.body["stream"] is False
    assert "stream_options" not in fake_upstream.last.body


@pytest.mark.parametrize(
    ("messages", "folded"),
    [
        ([{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Hi"}]),
        ([{"role": "system", "content": "Be kind."}], [{"role": "user", "content": "Be kind."}]),
        (
            [
                {"role": "system", "content": "A."},
                {"role": "system", "content": "B."},
                {"role": "user", "content": "Q"},
            ],
            [{"role": "user", "content": "A.\n\nB.\n\nQ"}],
        ),
        (
            [
                {"role": "system", "content": "A."},
                {"role": "user", "content": "Q"},
                {"role": "system", "content": "Lookup results."},
            ],
            [{"role": "user", "content": "A.\n\nQ"}, {"role": "user", "content": "Lookup results."}],
        ),
    ],
    ids=["no system prompt", "only a system prompt", "two system messages", "a lookup within the conversation"],
)
def test_folding_the_system_prompt(messages, folded):
    ai_model = AIModelFactory.build(reasoning=True, system_prompt_handling="fold")

    assert chat_request_kwargs(model=ai_model, messages=messages)["messages"] == folded


def test_request_arguments_leave_the_callers_messages_alone():
    ai_model = AIModelFactory.build(reasoning=True, system_prompt_handling="fold")
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]

    chat_request_kwargs(model=ai_model, messages=messages)

    assert messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


def test_max_tokens_lowers_but_never_raises_the_reply_limit():
    ai_model = AIModelFactory.build(max_completion_tokens=100)

    lowered = chat_request_kwargs(model=ai_model, messages=MESSAGES, max_tokens=16)["max_tokens"]
    capped = chat_request_kwargs(model=ai_model, messages=MESSAGES, max_tokens=1000)["max_tokens"]

    assert (lowered, capped) == (16, 100)


# Tools ---------------------------------------------------------------------------------------
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]


@pytest.mark.asyncio
@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "whole"])
async def test_the_tools_a_model_calls_come_with_the_replys_end(fake_upstream, api_keys, streaming):
    calls = [FakeToolCall("weather", {"place": "Oslo"}, id="call_1"), FakeToolCall("web_search", '{"query": "a"}')]
    fake_upstream.script(FakeReply(text="Looking.", tool_calls=calls, argument_chunks=4))
    ai_model = served_by(fake_upstream, supports_streaming=streaming)

    pieces = [piece async for piece in reply_pieces(model=ai_model, messages=MESSAGES, tools=TOOLS)]

    assert "".join(piece.text for piece in pieces) == "Looking."
    (last,) = [piece for piece in pieces if piece.tool_calls]
    assert last.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in last.tool_calls] == [
        ("call_1", "weather", '{"place": "Oslo"}'), (calls[1].id, "web_search", '{"query": "a"}')
    ]
    assert fake_upstream.last.body["tools"] == TOOLS
    assert fake_upstream.last.body["tool_choice"] == "auto"


def test_no_tools_sends_no_tool_parameters():
    kwargs = chat_request_kwargs(model=AIModelFactory.build(), messages=MESSAGES, tools=None, tool_choice="none")

    assert "tools" not in kwargs and "tool_choice" not in kwargs


# The client --------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_the_client_is_reused_for_a_connection_and_has_the_configured_timeouts(fake_upstream, api_keys, settings):
    settings.LLM_CONNECT_TIMEOUT = 3.0
    settings.LLM_READ_TIMEOUT = 45.0
    ai_model = served_by(fake_upstream)
    same_connection = served_by(fake_upstream, deployment_name="gpt-4o")
    other_connection = served_by(fake_upstream, compatible=True)

    client = client_get(model=ai_model)

    assert client_get(model=ai_model) is client
    assert client_get(model=same_connection) is client
    assert client_get(model=other_connection) is not client
    assert isinstance(client_get(model=served_by(fake_upstream, azure=True)), openai.AsyncAzureOpenAI)
    assert (client.timeout.connect, client.timeout.read, client.max_retries) == (3.0, 45.0, 0)


@pytest.mark.asyncio
async def test_the_key_is_read_from_the_environment_when_each_request_is_sent(fake_upstream, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-first")
    ai_model = served_by(fake_upstream)
    await reply_text(ai_model)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-rotated")

    await reply_text(ai_model)

    assert [r.api_key for r in fake_upstream.chat_requests] == ["sk-first", "sk-rotated"]


@pytest.mark.asyncio
async def test_an_unset_key_variable_is_named_in_a_clear_error(fake_upstream, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(ProviderError) as raised:
        client_get(model=served_by(fake_upstream))

    assert raised.value.kind == FailureKind.MISSING_KEY
    assert "OPENAI_API_KEY is not set" in raised.value.message
    assert not fake_upstream.requests


@pytest.mark.asyncio
async def test_a_key_unset_after_the_client_was_made_fails_clearly_before_sending(fake_upstream, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-here")
    ai_model = served_by(fake_upstream)
    client = client_get(model=ai_model)
    monkeypatch.delenv("OPENAI_API_KEY")

    with pytest.raises(ProviderError, match="OPENAI_API_KEY is not set"):
        await client.chat.completions.create(**chat_request_kwargs(model=ai_model, messages=MESSAGES))

    assert not fake_upstream.requests


@pytest.mark.asyncio
async def test_a_keyless_local_server_gets_no_authorization_header_even_with_openai_key_set(fake_upstream, api_keys):
    await reply_text(served_by(fake_upstream, compatible=True))

    assert "authorization" not in fake_upstream.last.headers
    assert OPENAI_KEY not in str(fake_upstream.last.headers)


# Failures in words -------------------------------------------------------------------------
async def failure_of(ai_model: AIModel) -> ProviderError:
    with pytest.raises(Exception) as raised:
        await reply_text(ai_model)
    return error_describe(error=raised.value, model=ai_model)


FAILURES = {
    "bad key": (
        FakeError.bad_key(),
        FailureKind.AUTH,
        "OpenAI rejected the API key for chat-model (from OPENAI_API_KEY). Check that the key is valid and may use "
        "this model.",
    ),
    "access refused (403)": (
        FakeError.permission_denied(),
        FailureKind.PERMISSION,
        "OpenAI refused access to chat-model: the API key (from OPENAI_API_KEY) was accepted, but it is not allowed "
        "to use the model “gpt-4o-mini”. The provider said: You are not allowed to sample from this model",
    ),
    "rate limit with Retry-After": (
        FakeError.rate_limited(retry_after=7),
        FailureKind.RATE_LIMIT,
        "OpenAI is limiting how fast chat-model can be used. Try again in 7 seconds.",
    ),
    "rate limit without Retry-After": (
        FakeError.rate_limited(retry_after=None),
        FailureKind.RATE_LIMIT,
        "OpenAI is limiting how fast chat-model can be used. Try again in a moment.",
    ),
    "quota exhausted": (
        FakeError.rate_limited(code="insufficient_quota", message="You exceeded your current quota."),
        FailureKind.QUOTA,
        "The OpenAI account behind chat-model has run out of credit or quota.",
    ),
    "context too long": (
        FakeError.context_length_exceeded(),
        FailureKind.CONTEXT_LENGTH,
        "The conversation is too long for chat-model. Start a new conversation or send a shorter message.",
    ),
    "model not found": (
        FakeError.model_not_found("gpt-4o-mini"),
        FailureKind.NOT_FOUND,
        "OpenAI has no model named “gpt-4o-mini” (used by chat-model), or the endpoint URL is wrong.",
    ),
    "bad request": (
        FakeError(status=400, type="invalid_request_error", message="Invalid value for 'temperature'."),
        FailureKind.BAD_REQUEST,
        "OpenAI refused the request for chat-model: Invalid value for 'temperature'.",
    ),
    "server error": (
        FakeError.server_error(status=503),
        FailureKind.SERVER,
        "OpenAI had an internal error (HTTP 503). Try again in a moment.",
    ),
    "error event mid-stream": (
        FakeReply(text="a b c", error_after=1, error_message="The model is overloaded."),
        FailureKind.STREAM,
        "OpenAI reported an error during the reply: The model is overloaded.",
    ),
    "connection cut mid-stream": (
        FakeReply(text="a b c", cut_after=1),
        FailureKind.CONNECTION_CUT,
        "The connection to OpenAI broke off before the reply was complete. Try again.",
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize(("script", "kind", "message"), FAILURES.values(), ids=FAILURES.keys())
async def test_provider_failures_become_messages_a_user_understands(fake_upstream, api_keys, script, kind, message):
    fake_upstream.script(script)

    failure = await failure_of(served_by(fake_upstream, name="chat-model"))

    assert (failure.kind, failure.message) == (kind, message)
    assert OPENAI_KEY not in failure.message


@pytest.mark.asyncio
async def test_a_rate_limit_says_when_to_retry(fake_upstream, api_keys):
    fake_upstream.script(FakeError.rate_limited(retry_after=2.5))

    failure = await failure_of(served_by(fake_upstream))

    assert failure.retry_after == 3


@pytest.mark.asyncio
async def test_an_azure_deployment_not_found_names_the_deployment(fake_upstream, api_keys):
    fake_upstream.script(FakeError(status=404, code="DeploymentNotFound", message="The API deployment does not exist."))

    failure = await failure_of(served_by(fake_upstream, azure=True, name="az"))

    assert failure.message == (
        "Azure OpenAI has no deployment named “gpt-4o-mini-prod” (used by az), or the endpoint URL is wrong."
    )


@pytest.mark.asyncio
async def test_a_local_server_is_named_by_the_model_it_serves_not_by_its_address(fake_upstream):
    fake_upstream.script(FakeError.server_error())

    failure = await failure_of(served_by(fake_upstream, compatible=True, name="local"))

    assert failure.message == "The server behind local had an internal error (HTTP 500). Try again in a moment."


@pytest.mark.asyncio
async def test_a_provider_that_does_not_answer_in_time(fake_upstream, api_keys, settings):
    settings.LLM_READ_TIMEOUT = 0.3
    fake_upstream.script(FakeReply(hang_after=0))

    failure = await failure_of(served_by(fake_upstream, name="slow"))

    assert failure.kind == FailureKind.TIMEOUT
    assert failure.message == "OpenAI did not answer within 0.3 seconds. Try again later."


def free_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.asyncio
async def test_a_refused_connection(api_keys):
    port = free_port()
    ai_model = AIModelFactory.build(name="offline", api_endpoint=f"http://127.0.0.1:{port}/v1")

    failure = await failure_of(ai_model)

    assert failure.kind == FailureKind.CONNECTION_REFUSED
    assert failure.message == (
        "Could not connect to OpenAI for offline: the server refused the connection or is not running."
    )


@pytest.mark.asyncio
async def test_an_unknown_host_is_named_as_not_found_not_as_refusing(api_keys):
    # .invalid is reserved (RFC 2606): it never resolves, online or off.
    ai_model = AIModelFactory.build(name="nowhere", api_endpoint="http://nonexistent.invalid:9/v1")

    failure = await failure_of(ai_model)

    assert failure.kind == FailureKind.UNKNOWN_HOST
    assert failure.message == (
        "Could not connect to OpenAI for nowhere: the endpoint's host name could not be found (the DNS lookup failed)."
    )


@pytest.mark.asyncio
async def test_https_to_a_server_without_tls_says_the_secure_connection_failed(api_keys):
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the TLS hello, answered in plain HTTP
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        failure = await failure_of(AIModelFactory.build(name="tls", api_endpoint=f"https://127.0.0.1:{port}/v1"))

    assert failure.kind == FailureKind.CONNECTION
    assert failure.message == "Could not connect to OpenAI for tls: a secure (TLS) connection could not be set up."


def unreachable(kind: str) -> str:
    """An endpoint where nothing answers: a free local port, or a host name that never resolves."""
    return f"http://127.0.0.1:{free_port()}/v1" if kind == "refused" else "http://nonexistent.invalid:9/v1"


@pytest.mark.asyncio
@pytest.mark.parametrize("script", [script for script, _, _ in FAILURES.values()], ids=FAILURES.keys())
async def test_a_users_message_about_a_local_server_names_the_model_never_the_address(fake_upstream, script):
    fake_upstream.script(script)

    failure = await failure_of(served_by(fake_upstream, compatible=True, name="local"))

    assert "local" in failure.message
    assert "127.0.0.1" not in failure.message
    assert str(fake_upstream.port) not in failure.message


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["refused", "unknown host"])
@pytest.mark.parametrize("traits", [{"compatible": True}, {}, {"azure": True}], ids=["compatible", "openai", "azure"])
async def test_a_users_message_about_a_failed_connection_never_names_the_address(api_keys, traits, where):
    ai_model = AIModelFactory.build(name="remote", **traits)
    ai_model.api_endpoint = unreachable(where)
    host = urlsplit(ai_model.api_endpoint)

    failure = await failure_of(ai_model)

    assert failure.kind in (FailureKind.CONNECTION_REFUSED, FailureKind.UNKNOWN_HOST)
    assert "remote" in failure.message
    assert host.hostname not in failure.message
    assert str(host.port) not in failure.message


def test_a_failed_connection_test_tells_staff_the_endpoint(api_keys):
    endpoint = unreachable("refused")
    ai_model = AIModelFactory.build(name="local", compatible=True, api_endpoint=endpoint)

    with pytest.raises(ProviderError) as raised:
        connection_test(model=ai_model)

    assert raised.value.message == (
        "Could not connect to the server behind local: the server refused the connection or is not running. "
        f"(Endpoint: {endpoint})"
    )


@pytest.mark.asyncio
async def test_access_refused_by_a_keyless_server_does_not_blame_a_key(fake_upstream):
    fake_upstream.script(FakeError.permission_denied(message="Model is restricted."))

    failure = await failure_of(served_by(fake_upstream, compatible=True, name="local"))

    assert failure.kind == FailureKind.PERMISSION
    assert failure.message == (
        "The server behind local refused access to the model “llama3.2:3b” used by local. "
        "The provider said: Model is restricted."
    )


@pytest.mark.asyncio
async def test_access_refused_by_azure_names_the_deployment(fake_upstream, api_keys):
    fake_upstream.script(FakeError(status=403, code="PermissionDenied", message="Principal does not have access."))

    failure = await failure_of(served_by(fake_upstream, azure=True, name="az"))

    assert failure.message == (
        "Azure OpenAI refused access to az: the API key (from AZURE_OPENAI_API_KEY) was accepted, but it is not "
        "allowed to use the deployment “gpt-4o-mini-prod”. The provider said: Principal does not have access."
    )


# What a log line may say about a failure -------------------------------------------------
@pytest.mark.asyncio
async def test_an_http_error_carries_its_status_code_and_request_id(fake_upstream, api_keys):
    fake_upstream.script(FakeError.rate_limited())

    failure = await failure_of(served_by(fake_upstream))

    assert (failure.status, failure.code, failure.request_id) == (
        429,
        "rate_limit_exceeded",
        fake_upstream.last.request_id,
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("script", "kind"),
    [
        (FakeReply(text="a b c", error_after=1), FailureKind.STREAM),
        (FakeReply(text="a b c", cut_after=1), FailureKind.CONNECTION_CUT),
        (FakeReply(text="a b c", hang_after=1), FailureKind.TIMEOUT),
    ],
    ids=["error event", "connection cut", "timeout"],
)
async def test_a_failure_mid_stream_carries_the_request_id_of_the_stream(
    fake_upstream, api_keys, settings, script, kind
):
    # The stream must start within the read timeout for its request id to be known (it starts in
    # milliseconds; 5 s leaves a busy machine room); only the timeout case waits that long.
    settings.LLM_READ_TIMEOUT = 5
    fake_upstream.script(script)

    failure = await failure_of(served_by(fake_upstream))

    assert (failure.kind, failure.status, failure.request_id) == (kind, None, fake_upstream.last.request_id)


@pytest.mark.asyncio
async def test_a_failure_before_any_response_has_no_request_id(api_keys):
    failure = await failure_of(AIModelFactory.build(api_endpoint=f"http://127.0.0.1:{free_port()}/v1"))

    assert (failure.status, failure.code, failure.request_id) == (None, None, None)


@pytest.mark.asyncio
@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "whole"])
async def test_the_first_piece_of_a_reply_carries_its_request_id(fake_upstream, api_keys, streaming):
    ai_model = served_by(fake_upstream, supports_streaming=streaming)

    pieces = [piece async for piece in reply_pieces(model=ai_model, messages=MESSAGES)]

    assert pieces[0].request_id == fake_upstream.last.request_id
    assert fake_upstream.last.request_id.startswith("req_fake_")


@pytest.mark.asyncio
async def test_an_error_code_is_made_safe_for_one_log_line(fake_upstream, api_keys):
    fake_upstream.script(FakeError(status=400, code=f"bad\nFAKE LOG LINE {OPENAI_KEY}"))

    failure = await failure_of(served_by(fake_upstream))

    assert failure.code == "bad?FAKE?LOG?LINE??key?"


@pytest.mark.asyncio
async def test_a_key_echoed_by_the_provider_is_masked(fake_upstream, api_keys):
    fake_upstream.script(FakeError(status=400, message=f"Malformed header value {OPENAI_KEY}"))

    failure = await failure_of(served_by(fake_upstream))

    assert OPENAI_KEY not in failure.message
    assert failure.message.endswith("Malformed header value [key]")


def test_an_unexpected_error_gets_a_general_message():
    failure = error_describe(error=RuntimeError("boom"), model=AIModelFactory.build(name="m1"))

    assert (failure.kind, failure.message) == (FailureKind.OTHER, "Something went wrong talking to OpenAI for m1.")


def test_describing_a_failure_logs_nothing_so_the_caller_logs_it_once(caplog):
    caplog.set_level(logging.DEBUG, logger="aimodels")

    error_describe(error=RuntimeError("boom"), model=AIModelFactory.build())

    assert caplog.records == []


def test_an_unexpected_error_in_an_admin_check_is_logged(api_keys, monkeypatch, caplog):
    def broken(model):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "_sync_client", broken)
    ai_model = AIModelFactory.build(pk=7)

    with pytest.raises(ProviderError):
        connection_test(model=ai_model)

    [line] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert line.getMessage() == "Unexpected RuntimeError from the provider of AI model 7"


# The admin's helpers (sync) ----------------------------------------------------------------
def test_connection_test_sends_a_minimal_request_and_times_it(fake_upstream, api_keys):
    fake_upstream.script(FakeReply(text="OK", first_delay=0.05))
    ai_model = served_by(fake_upstream, reasoning=True)

    check = connection_test(model=ai_model)

    assert check.reply == "OK"
    assert check.latency_ms >= 50
    body = fake_upstream.last.body
    assert body["stream"] is False
    assert body["max_completion_tokens"] == 16
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_connection_test_raises_the_described_failure(fake_upstream, api_keys):
    fake_upstream.script(FakeError.bad_key())

    with pytest.raises(ProviderError) as raised:
        connection_test(model=served_by(fake_upstream))

    assert raised.value.kind == FailureKind.AUTH


def test_endpoint_models_list_reads_get_models(fake_upstream):
    fake_upstream.models = ["llama3.2:3b", "qwen2.5:7b"]

    ids = endpoint_models_list(model=served_by(fake_upstream, compatible=True))

    assert ids == ["llama3.2:3b", "qwen2.5:7b"]
    assert (fake_upstream.last.method, fake_upstream.last.path) == ("GET", "/v1/models")
    assert fake_upstream.last.auth_kind is None
