"""The fake upstream, driven by the real openai SDK over real HTTP."""

import json
import threading
import time

import openai
import pytest

from bench.fake_upstream import FakeError, FakeReply, FakeToolCall, FakeUpstream

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
# Strict, so that the SDK's stream() helper accepts them and parses their arguments.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a timezone.",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string"}},
            "required": ["tz"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]
# A client never waits forever on the fake: a broken test fails instead of hanging. Generous, as
# the fake answers at once: only a test that breaks ever waits this long.
TIMEOUT = openai.Timeout(30, connect=10)


def async_openai(upstream: FakeUpstream, **kwargs) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0, **kwargs)


def async_azure(upstream: FakeUpstream, **kwargs) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(
        azure_endpoint=upstream.azure_endpoint, api_version="2024-10-21", api_key="az-test", max_retries=0, **kwargs
    )


def sync_openai(upstream: FakeUpstream, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0, timeout=TIMEOUT, **kwargs
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

    # Lower bounds only, from before the request: nothing can arrive before the fake sent it, and
    # a slow machine only makes it later. Without the waits, all three would come at once.
    assert arrivals[0] >= 0.2  # the first delay
    assert arrivals[2] >= 0.2 + 0.1 + 0.1  # then a delay before each later chunk


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
    # Short, and that is safe: the fake never answers, so however slow the machine the client
    # times out, no sooner than this.
    client = async_openai(fake_upstream, timeout=openai.Timeout(0.3, connect=10))

    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)

    assert time.perf_counter() - started >= 0.3


@pytest.mark.asyncio
async def test_a_stream_that_hangs_midway_times_out_after_the_first_chunks(fake_upstream):
    fake_upstream.script(FakeReply(text="one two three", hang_after=1))
    # The first chunk must come within the read timeout (it comes in milliseconds; 5 s leaves a
    # busy machine room), and the test then waits that long for the hang to time out.
    client = async_openai(fake_upstream, timeout=openai.Timeout(5, connect=10))
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
    # The client would wait a minute: only the fake's stop can end its call in time.
    client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0, timeout=60)
    outcome = []

    def call() -> None:
        try:
            client.chat.completions.create(model="m", messages=MESSAGES)
        except openai.APIConnectionError as error:
            outcome.append(error)

    waiting = threading.Thread(target=call)
    waiting.start()
    deadline = time.monotonic() + 30
    while not upstream.requests:  # polling for the state "the request arrived", bounded by the deadline
        assert time.monotonic() < deadline, "the request never reached the fake"
        time.sleep(0.01)
    started = time.monotonic()
    upstream.stop()
    waiting.join(30)

    assert time.monotonic() - started < 30  # far less than the minute the client would have waited
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


# Tool calling -----------------------------------------------------------------------------


def tool_call_deltas(chunks) -> list:
    return [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]


@pytest.mark.asyncio
async def test_streams_two_tool_calls_as_openai_does(fake_upstream):
    weather = FakeToolCall("get_weather", {"city": "Paris", "unit": "c"})
    clock = FakeToolCall("get_time", '{"tz": "Europe/Paris"}', id="call_given")
    fake_upstream.script(FakeReply(tool_calls=[weather, clock], argument_chunks=3))

    stream = await async_openai(fake_upstream, timeout=TIMEOUT).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, tool_choice="auto", stream=True
    )
    text, chunks = await collect(stream)

    assert text == ""
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content is None
    deltas = tool_call_deltas(chunks)
    assert [d.index for d in deltas] == [0, 0, 0, 0, 1, 1, 1, 1]  # a header, then 3 fragments
    headers = [d for d in deltas if d.id is not None]
    assert [(h.index, h.id, h.type, h.function.name, h.function.arguments) for h in headers] == [
        (0, weather.id, "function", "get_weather", ""),
        (1, "call_given", "function", "get_time", ""),
    ]
    assert weather.id.startswith("call_") and weather.id != FakeToolCall("get_weather", {}).id
    fragments = [d for d in deltas if d.id is None]
    assert all(d.function.name is None and d.type is None for d in fragments)
    arguments = ["".join(d.function.arguments for d in fragments if d.index == i) for i in (0, 1)]
    assert arguments == [json.dumps({"city": "Paris", "unit": "c"}), '{"tz": "Europe/Paris"}']
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls" and set(finishes[:-1]) == {None}
    body = fake_upstream.last.body
    assert (body["tools"], body["tool_choice"]) == (TOOLS, "auto")


@pytest.mark.asyncio
async def test_a_tool_call_reply_streams_its_text_first_when_it_has_some(fake_upstream):
    call = FakeToolCall("get_weather", {"city": "Oslo", "unit": "c"})
    fake_upstream.script(FakeReply(text="Let me check.", tool_calls=[call], argument_chunks=2))

    stream = await async_openai(fake_upstream, timeout=TIMEOUT).chat.completions.create(
        model="m", messages=MESSAGES, tools=TOOLS, stream=True, stream_options={"include_usage": True}
    )
    text, chunks = await collect(stream)

    deltas = [c.choices[0].delta for c in chunks[1:] if c.choices and c.choices[0].finish_reason is None]
    assert [d.content for d in deltas] == ["Let", " me", " check.", None, None, None]
    assert [len(d.tool_calls or []) for d in deltas] == [0, 0, 0, 1, 1, 1]
    assert text == "Let me check."
    assert chunks[0].choices[0].delta.content == ""
    assert chunks[-1].usage.completion_tokens == 6  # one per delta, as for text


def test_the_sdks_stream_helper_accumulates_the_tool_calls(fake_upstream):
    weather = FakeToolCall("get_weather", {"city": "Paris", "unit": "c"})
    clock = FakeToolCall("get_time", {"tz": "UTC"})
    fake_upstream.script(FakeReply(tool_calls=[weather, clock], argument_chunks=4))

    with sync_openai(fake_upstream).chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert [(c.id, c.function.name) for c in calls] == [(weather.id, "get_weather"), (clock.id, "get_time")]
    assert calls[0].function.arguments == json.dumps({"city": "Paris", "unit": "c"})
    assert [c.function.parsed_arguments for c in calls] == [{"city": "Paris", "unit": "c"}, {"tz": "UTC"}]
    assert [(e.index, e.name, e.parsed_arguments) for e in done] == [
        (0, "get_weather", {"city": "Paris", "unit": "c"}),
        (1, "get_time", {"tz": "UTC"}),
    ]


@pytest.mark.asyncio
async def test_answers_tool_calls_whole_when_not_streaming(fake_upstream):
    call = FakeToolCall("get_weather", {"city": "Rome", "unit": "f"}, id="call_abc")
    fake_upstream.script(FakeReply(tool_calls=[call]), FakeReply(text="Checking.", tool_calls=[call]))
    client = async_openai(fake_upstream, timeout=TIMEOUT)

    bare = await client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    with_text = await client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)

    message = bare.choices[0].message
    assert bare.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_abc", "function", "get_weather", json.dumps({"city": "Rome", "unit": "f"}))
    ]
    assert with_text.choices[0].message.content == "Checking."
    assert with_text.choices[0].message.tool_calls[0].id == "call_abc"
    assert FakeReply().tool_calls == [] and FakeReply().finish_reason == "stop"


def test_a_tool_round_trip_sends_the_results_back_in_the_next_request(fake_upstream):
    weather = FakeToolCall("get_weather", {"city": "Paris", "unit": "c"})
    clock = FakeToolCall("get_time", {"tz": "Europe/Paris"})
    fake_upstream.script(
        FakeReply(tool_calls=[weather, clock]), FakeReply(text="Sunny, 21 C, and it is noon.", chunks=2)
    )
    client = sync_openai(fake_upstream)

    with client.chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS, tool_choice="required") as stream:
        first = stream.get_final_completion().choices[0].message
    results = {"get_weather": {"temp": 21, "sky": "sunny"}, "get_time": {"time": "12:00"}}
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": first.content,
            "tool_calls": [
                {"id": c.id, "type": "function", "function": c.function.model_dump(include={"name", "arguments"})}
                for c in first.tool_calls
            ],
        },
        *(
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps(results[call.function.name])}
            for call in first.tool_calls
        ),
    ]
    with client.chat.completions.create(model="m", messages=messages, tools=TOOLS, stream=True) as second:
        answer = "".join(c.choices[0].delta.content or "" for c in second if c.choices)

    assert answer == "Sunny, 21 C, and it is noon."
    asked, told = fake_upstream.chat_requests
    assert asked.body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in asked.body["tools"]] == ["get_weather", "get_time"]
    sent_back = told.body["messages"]
    assert sent_back[:2] == MESSAGES
    assert sent_back[2]["role"] == "assistant"
    assert [c["id"] for c in sent_back[2]["tool_calls"]] == [weather.id, clock.id]
    assert sent_back[2]["tool_calls"][0]["function"] == {
        "name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "c"})
    }
    assert sent_back[3:] == [
        {"role": "tool", "tool_call_id": weather.id, "content": json.dumps(results["get_weather"])},
        {"role": "tool", "tool_call_id": clock.id, "content": json.dumps(results["get_time"])},
    ]


@pytest.mark.asyncio
async def test_a_cut_in_the_middle_of_a_tool_calls_arguments_breaks_the_stream(fake_upstream):
    call = FakeToolCall("get_weather", {"city": "Paris", "unit": "c"})
    fake_upstream.script(FakeReply(tool_calls=[call], argument_chunks=3, cut_after=2))  # header + 1 fragment
    stream = await async_openai(fake_upstream, timeout=TIMEOUT).chat.completions.create(
        model="m", messages=MESSAGES, tools=TOOLS, stream=True
    )

    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)

    deltas = tool_call_deltas(received)
    assert [d.id for d in deltas] == [call.id, None]
    partial = "".join(d.function.arguments for d in deltas)
    assert partial and json.dumps(call.arguments).startswith(partial) and partial != json.dumps(call.arguments)
    assert all(c.choices[0].finish_reason is None for c in received if c.choices)


def test_a_cut_close_delimited_tool_call_stream_ends_without_a_finish_reason(fake_upstream):
    call = FakeToolCall("get_weather", {"city": "Paris", "unit": "c"})
    fake_upstream.script(FakeReply(tool_calls=[call], argument_chunks=3, cut_after=3, chunked=False))

    with sync_openai(fake_upstream).chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS) as stream:
        snapshot = stream.until_done().current_completion_snapshot

    choice = snapshot.choices[0]
    assert choice.finish_reason is None
    assert choice.message.tool_calls[0].id == call.id
    arguments = choice.message.tool_calls[0].function.arguments
    whole = json.dumps(call.arguments)
    assert arguments == whole[: len(arguments)] and len(arguments) < len(whole)


@pytest.mark.asyncio
async def test_an_error_event_in_the_middle_of_a_tool_call_raises(fake_upstream):
    calls = [FakeToolCall("get_weather", {"city": "Paris", "unit": "c"}), FakeToolCall("get_time", {"tz": "UTC"})]
    fake_upstream.script(FakeReply(tool_calls=calls, argument_chunks=2, error_after=4, error_message="Overloaded"))
    stream = await async_openai(fake_upstream, timeout=TIMEOUT).chat.completions.create(
        model="m", messages=MESSAGES, tools=TOOLS, stream=True
    )

    received = []
    with pytest.raises(openai.APIError, match="Overloaded"):
        async for chunk in stream:
            received.append(chunk)

    got = [(d.index, d.id) for d in tool_call_deltas(received)]
    assert got == [(0, calls[0].id), (0, None), (0, None), (1, calls[1].id)]  # broken after the second header
