"""The fake upstream, driven by the real openai SDK over real HTTP."""

import threading
import time

import openai
import pytest

from bench.fake_upstream import FakeError, FakeReply, FakeUpstream

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


def async_openai(upstream: FakeUpstream, **kwargs) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0, **kwargs)


def async_azure(upstream: FakeUpstream, **kwargs) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(
        azure_endpoint=upstream.azure_endpoint, api_version="2024-10-21", api_key="az-test", max_retries=0, **kwargs
    )


async def collect(stream) -> tuple[str, list]:
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


@pytest.mark.asyncio
async def test_streams_the_scripted_text_in_the_given_number_of_chunks(fake_upstream):
    fake_upstream.script(FakeReply(text="Hello there, friend", chunks=3))

    stream = await async_openai(fake_upstream).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    text, chunks = await collect(stream)

    assert text == "Hello there, friend"
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(contents) == 3
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.asyncio
async def test_streams_one_chunk_per_word_by_default(fake_upstream):
    fake_upstream.script(FakeReply(text="one two three four"))

    stream = await async_openai(fake_upstream).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    _, chunks = await collect(stream)

    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["one", " two", " three", " four"]


@pytest.mark.asyncio
async def test_waits_before_the_first_chunk_and_between_chunks(fake_upstream):
    fake_upstream.script(FakeReply(text="a b c", chunks=3, first_delay=0.2, delay=0.1))
    client = async_openai(fake_upstream)

    started = time.perf_counter()
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - started)

    assert arrivals[0] >= 0.2
    assert arrivals[2] - arrivals[0] >= 0.15  # two delays of 0.1 s, less the jitter of arrival


@pytest.mark.asyncio
async def test_sends_usage_in_a_last_chunk_without_choices_when_asked(fake_upstream):
    fake_upstream.script(FakeReply(text="a b", prompt_tokens=11, completion_tokens=2))

    stream = await async_openai(fake_upstream).chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    _, chunks = await collect(stream)

    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 2)
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.asyncio
async def test_answers_whole_when_not_streaming(fake_upstream):
    fake_upstream.script(FakeReply(text="All at once.", finish_reason="length"))

    completion = await async_openai(fake_upstream).chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].message.content == "All at once."
    assert completion.choices[0].finish_reason == "length"
    assert completion.model == "gpt-4o"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


@pytest.mark.asyncio
async def test_records_the_request_the_sdk_sent(fake_upstream):
    await async_openai(fake_upstream).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.5, max_tokens=99
    )

    request = fake_upstream.last
    assert (request.method, request.path, request.query) == ("POST", "/v1/chat/completions", {})
    assert request.auth_kind == "bearer"
    assert request.api_key == "sk-test"
    assert request.body == {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.5, "max_tokens": 99}


@pytest.mark.asyncio
async def test_serves_the_azure_deployment_route_like_azure(fake_upstream):
    stream = await async_azure(fake_upstream).chat.completions.create(
        model="my-deployment", messages=MESSAGES, stream=True
    )
    text, chunks = await collect(stream)

    request = fake_upstream.last
    assert request.path == "/openai/deployments/my-deployment/chat/completions"
    assert request.query == {"api-version": "2024-10-21"}
    assert request.auth_kind == "api-key"
    assert request.api_key == "az-test"
    assert chunks[0].choices == []  # Azure's first chunk carries only the prompt filter results
    assert text == FakeReply().text


@pytest.mark.asyncio
async def test_lists_models_on_the_openai_and_azure_paths(fake_upstream):
    fake_upstream.models = ["llama3.2:3b", "qwen2.5:7b"]

    openai_ids = [m.id for m in (await async_openai(fake_upstream).models.list()).data]
    openai_path = fake_upstream.last.path
    azure_ids = [m.id for m in (await async_azure(fake_upstream).models.list()).data]

    assert openai_ids == azure_ids == ["llama3.2:3b", "qwen2.5:7b"]
    assert (openai_path, fake_upstream.last.path) == ("/v1/models", "/openai/models")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "exception", "code"),
    [
        (FakeError.bad_key(), openai.AuthenticationError, "invalid_api_key"),
        (FakeError.permission_denied(), openai.PermissionDeniedError, None),
        (FakeError.model_not_found("nope"), openai.NotFoundError, "model_not_found"),
        (FakeError.rate_limited(retry_after=7), openai.RateLimitError, "rate_limit_exceeded"),
        (FakeError.context_length_exceeded(), openai.BadRequestError, "context_length_exceeded"),
        (FakeError.server_error(), openai.InternalServerError, None),
    ],
)
async def test_scripted_http_errors_reach_the_sdk_with_openais_error_shape(fake_upstream, error, exception, code):
    fake_upstream.script(error)

    with pytest.raises(exception) as raised:
        await async_openai(fake_upstream).chat.completions.create(model="m", messages=MESSAGES, stream=True)

    assert raised.value.status_code == error.status
    assert raised.value.code == code
    assert raised.value.body["message"] == error.message


@pytest.mark.asyncio
async def test_every_response_carries_its_own_request_id_recorded_with_its_request(fake_upstream):
    client = async_openai(fake_upstream)
    fake_upstream.script(FakeError.server_error())
    with pytest.raises(openai.InternalServerError) as raised:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    async with client.chat.completions.with_streaming_response.create(
        model="m", messages=MESSAGES, stream=True
    ) as streamed:
        await streamed.read()
    listed = await client.models.with_raw_response.list()

    sent = [raised.value.request_id, streamed.request_id, listed.request_id]
    assert sent == [r.request_id for r in fake_upstream.requests]
    assert len(set(sent)) == 3
    assert all(request_id.startswith("req_fake_") for request_id in sent)


@pytest.mark.asyncio
async def test_a_rate_limit_carries_retry_after(fake_upstream):
    fake_upstream.queue_error(status=429, retry_after=7)

    with pytest.raises(openai.RateLimitError) as raised:
        await async_openai(fake_upstream).chat.completions.create(model="m", messages=MESSAGES)

    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == "rate_limit_exceeded"


@pytest.mark.asyncio
async def test_queue_error_builds_any_status_with_the_given_fields(fake_upstream):
    fake_upstream.queue_error(
        status=400, message="Unsupported value: 'temperature'", code="unsupported_value", param="temperature"
    )

    with pytest.raises(openai.BadRequestError) as raised:
        await async_openai(fake_upstream).chat.completions.create(model="m", messages=MESSAGES)

    assert (raised.value.code, raised.value.param) == ("unsupported_value", "temperature")


@pytest.mark.asyncio
async def test_an_error_event_mid_stream_raises_api_error_after_the_text_so_far(fake_upstream):
    fake_upstream.script(FakeReply(text="one two three", error_after=2, error_message="Overloaded"))
    stream = await async_openai(fake_upstream).chat.completions.create(model="m", messages=MESSAGES, stream=True)

    received = []
    with pytest.raises(openai.APIError, match="Overloaded"):
        async for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "one two"


@pytest.mark.asyncio
async def test_a_cut_connection_breaks_a_chunked_stream(fake_upstream):
    fake_upstream.script(FakeReply(text="one two three", cut_after=1))
    stream = await async_openai(fake_upstream).chat.completions.create(model="m", messages=MESSAGES, stream=True)

    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "one"


@pytest.mark.asyncio
async def test_a_cut_close_delimited_stream_ends_silently_without_a_finish_reason(fake_upstream):
    fake_upstream.script(FakeReply(text="one two three", cut_after=2, chunked=False))
    stream = await async_openai(fake_upstream).chat.completions.create(model="m", messages=MESSAGES, stream=True)

    text, chunks = await collect(stream)

    assert text == "one two"
    assert all(c.choices[0].finish_reason is None for c in chunks if c.choices)


@pytest.mark.asyncio
async def test_a_hanging_reply_times_the_client_out(fake_upstream):
    fake_upstream.script(FakeReply(hang_after=0))
    client = async_openai(fake_upstream, timeout=openai.Timeout(0.3, connect=2))

    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)

    assert time.perf_counter() - started >= 0.3


@pytest.mark.asyncio
async def test_a_stream_that_hangs_midway_times_out_after_the_first_chunks(fake_upstream):
    fake_upstream.script(FakeReply(text="one two three", hang_after=1))
    client = async_openai(fake_upstream, timeout=openai.Timeout(0.3, connect=2))
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)

    received = []
    with pytest.raises(openai.APITimeoutError):
        async for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "one"


@pytest.mark.asyncio
async def test_scripts_are_used_in_order_then_the_default_reply(fake_upstream):
    fake_upstream.script(FakeReply(text="first"), FakeReply(text="second"))
    client = async_openai(fake_upstream)

    replies = []
    for _ in range(3):
        completion = await client.chat.completions.create(model="m", messages=MESSAGES)
        replies.append(completion.choices[0].message.content)

    assert replies == ["first", "second", FakeReply().text]


@pytest.mark.asyncio
async def test_a_queued_reply_waits_for_a_chat_request_while_an_error_answers_any_request(fake_upstream):
    fake_upstream.script(FakeReply(text="for the chat"), FakeError.bad_key())
    client = async_openai(fake_upstream)

    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    completion = await client.chat.completions.create(model="m", messages=MESSAGES)

    assert completion.choices[0].message.content == "for the chat"
    assert fake_upstream.pending_scripts == 0


@pytest.mark.asyncio
async def test_a_required_key_refuses_other_keys_like_the_real_service(fake_upstream):
    fake_upstream.api_key = "sk-right"

    with pytest.raises(openai.AuthenticationError):
        await async_openai(fake_upstream).chat.completions.create(model="m", messages=MESSAGES)
    right = openai.AsyncOpenAI(base_url=fake_upstream.openai_base_url, api_key="sk-right", max_retries=0)
    completion = await right.chat.completions.create(model="m", messages=MESSAGES)

    assert completion.choices[0].message.content == FakeReply().text


def test_the_sync_client_works_too(fake_upstream):
    client = openai.OpenAI(base_url=fake_upstream.openai_base_url, api_key="sk-test", max_retries=0)
    fake_upstream.script(FakeReply(text="sync hello", chunks=2))

    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert text == "sync hello"


def test_keeps_one_connection_for_many_requests(fake_upstream):
    client = openai.OpenAI(base_url=fake_upstream.openai_base_url, api_key="sk-test", max_retries=0)

    for _ in range(3):
        client.chat.completions.create(model="m", messages=MESSAGES)

    assert len(fake_upstream.chat_requests) == 3
    assert all(r.headers["connection"] == "keep-alive" for r in fake_upstream.chat_requests)


def test_answers_404_for_unknown_paths(fake_upstream):
    client = openai.OpenAI(base_url=fake_upstream.url + "/wrong", api_key="sk-test", max_retries=0)

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_stop_returns_promptly_with_a_client_still_waiting():
    upstream = FakeUpstream().start()
    upstream.script(FakeReply(hang_after=0))
    client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0, timeout=5)
    outcome = []

    def call() -> None:
        try:
            client.chat.completions.create(model="m", messages=MESSAGES)
        except openai.APIConnectionError as error:
            outcome.append(error)

    waiting = threading.Thread(target=call)
    waiting.start()
    while not upstream.requests:
        time.sleep(0.01)
    started = time.perf_counter()
    upstream.stop()
    waiting.join(5)

    assert time.perf_counter() - started < 2
    assert not waiting.is_alive()
    assert len(outcome) == 1 and not isinstance(outcome[0], openai.APITimeoutError)
    assert upstream.port is None


@pytest.mark.asyncio
async def test_works_as_an_async_context_manager():
    async with FakeUpstream(models=["only-one"]) as upstream:
        page = await async_openai(upstream).models.list()

    assert [m.id for m in page.data] == ["only-one"]
    with pytest.raises(RuntimeError):
        _ = upstream.url


def test_queue_error_gives_the_real_body_for_common_statuses(fake_upstream):
    client = openai.OpenAI(base_url=fake_upstream.openai_base_url, api_key="sk-test", max_retries=0)
    fake_upstream.queue_error(status=401)
    fake_upstream.queue_error(status=404)

    with pytest.raises(openai.AuthenticationError) as bad_key:
        client.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="m", messages=MESSAGES)

    assert (bad_key.value.code, not_found.value.code) == ("invalid_api_key", "model_not_found")


def test_reset_forgets_requests_and_pending_scripts(fake_upstream):
    client = openai.OpenAI(base_url=fake_upstream.openai_base_url, api_key="sk-test", max_retries=0)
    client.models.list()
    fake_upstream.script(FakeReply(text="never used"))

    fake_upstream.reset()

    assert (fake_upstream.requests, fake_upstream.pending_scripts) == ([], 0)
    completion = client.chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == FakeReply().text
