"""A reply's web lookups, made by its job: the one the user's message asks for, run before the model
is asked, and those a model that supports tools calls. Against the fake upstream (the real SDK over
HTTP, tool calls streamed as OpenAI streams them) and the local lookup server (lookup_server.py)."""

import asyncio
import html
import json

import pytest
from asgiref.sync import sync_to_async
from bs4 import BeautifulSoup

from bench.fake_upstream import FakeReply, FakeToolCall
from conversations import services, tokens
from conversations.models import STOPPED, Message, Step
from conversations.relay import relay
from conversations.tests.factories import MessageFactory
from conversations.tests.lookup_server import LookupServer
from conversations.tests.test_stream import read_all, reload

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@pytest.fixture
def web(settings):
    """The web, served by the local lookup server: DuckDuckGo's results page for any search and
    wttr.in's answer for any place (from saved samples)."""
    with LookupServer("127.0.0.2") as server:
        settings.SEARCH_URL = server.url("/ddg/results?q={query}")
        settings.WEATHER_URL = server.url("/wttr/{place}?format=j1")
        settings.LOOKUP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
        yield server


async def asked(conversation, text: str, *steps: Step) -> Message:
    """The user's message and its pending reply, as the send leaves them."""
    await sync_to_async(MessageFactory)(conversation=conversation, content=text)
    return await sync_to_async(MessageFactory)(
        conversation=conversation, pending=True, steps=[step.as_json() for step in steps]
    )


def steps_of(events) -> list[BeautifulSoup]:
    return [BeautifulSoup(data, "html.parser") for name, data in events if name == "steps"]


async def tools_on(chat_model) -> None:
    chat_model.supports_tools = True
    await sync_to_async(chat_model.save)()


# The lookup a message asks for -----------------------------------------------------------------
async def test_a_search_goes_to_the_model_as_a_marked_message_with_its_sources(
    client_in, conversation, fake_upstream, web
):
    reply = await asked(conversation, "search for mario golf", Step(kind="search", query="mario golf"))
    fake_upstream.script(FakeReply(text="Mario Golf came out in 1999."))

    events = await read_all(client_in, reply)

    running, finished = steps_of(events)
    assert running.select_one(".step-pending").get_text(strip=True) == "Searching the web for “mario golf”…"
    assert finished.select_one(".step-done summary").get_text() == "Searched the web for “mario golf”"
    assert [name for name, _ in events][:2] == ["steps", "steps"]  # before any of the reply's text
    messages = fake_upstream.last.body["messages"]
    assert messages[-2] == {"role": "user", "content": "search for mario golf"}
    lookup = messages[-1]
    assert lookup["role"] == "system"
    assert lookup["content"].startswith("Results of a web search for “mario golf” (looked up by chatter")
    assert "Mario Golf for Game Boy | VGDb" in lookup["content"]
    assert web.paths()[0].startswith("/ddg/results?q=mario%20golf")
    saved = await reload(reply)
    (step,) = saved.lookup_steps
    assert step.status == "done" and step.via == "message"
    assert 0 < len(step.sources) <= 5
    assert len(step.text) <= 4_000
    assert step.sources[0]["url"] == "https://vgdb.uk/mario-golf/game/48484"
    done = BeautifulSoup(events[-1][1], "html.parser")
    links = done.select("details.sources a")
    assert [link["href"] for link in links] == [source["url"] for source in step.sources]
    assert done.select_one(".content.markdown").get_text(strip=True) == "Mario Golf came out in 1999."
    # Counted with its lookup: the next turn's context takes both from this count.
    encoding = tokens.encoding_for("gpt-4o-mini")
    assert saved.token_count == (
        tokens.message_tokens(role="assistant", content=saved.content, encoding=encoding)
        + tokens.message_tokens(role="system", content=step.context_text(), encoding=encoding)
    )


async def test_the_weather_is_looked_up_for_the_place(client_in, conversation, fake_upstream, web):
    reply = await asked(conversation, "what's the weather in Saint-Étienne?", Step(kind="weather", query="Saint-Étienne"))

    await read_all(client_in, reply)

    assert web.paths()[0].startswith("/wttr/Saint-%C3%89tienne?format=j1")
    lookup = fake_upstream.last.body["messages"][-1]["content"]
    assert lookup.startswith("The weather in Saint-Étienne, looked up just now")
    assert "Overcast" in lookup


async def test_a_lookup_that_fails_is_one_line_and_the_model_answers_without_it(
    client_in, conversation, fake_upstream, web, settings, caplog
):
    settings.SEARCH_URL = web.url("/status/500?q={query}")
    reply = await asked(conversation, "search for owls", Step(kind="search", query="owls"))
    fake_upstream.script(FakeReply(text="Owls are birds."))

    events = await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.COMPLETE and saved.content == "Owls are birds."
    (step,) = saved.lookup_steps
    assert step.status == "failed" and step.error and "\n" not in step.error
    told = fake_upstream.last.body["messages"][-1]
    assert told["role"] == "system" and "failed" in told["content"] and "Answer without it." in told["content"]
    line = BeautifulSoup(events[-1][1], "html.parser").select_one(".step-failed").get_text(strip=True)
    assert line.startswith("The web search for “owls” failed: ") and line.endswith("The reply is written without it.")
    (record,) = [r for r in caplog.records if r.getMessage().startswith("Lookup failed")]
    assert "kind=http_status" in record.getMessage() and "owls" not in record.getMessage()


async def test_a_page_on_a_private_address_is_never_fetched(client_in, conversation, fake_upstream, web):
    with LookupServer("127.0.0.1") as private:
        url = private.url("/pages/article.html")
        reply = await asked(conversation, f"summarize {url}", Step(kind="page", query=url))

        await read_all(client_in, reply)

        assert private.hits == []
    (step,) = (await reload(reply)).lookup_steps
    assert step.status == "failed"
    assert fake_upstream.chat_requests  # the model still answered


async def test_a_lookup_made_once_is_cached_for_the_next_reply(client_in, conversation, fake_upstream, web):
    first = await asked(conversation, "search for owls", Step(kind="search", query="owls"))
    await read_all(client_in, first)
    second = await asked(conversation, "Search for owls?", Step(kind="search", query="owls"))
    await read_all(client_in, second)

    assert len(web.hits) == 1
    assert (await reload(second)).lookup_steps[0].status == "done"


async def test_stop_while_a_lookup_runs_ends_the_reply_without_asking_the_model(conversation, fake_upstream, web, settings):
    settings.SEARCH_URL = web.url("/stall-headers?q={query}")
    reply = await asked(conversation, "search for owls", Step(kind="search", query="owls"))
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.STREAMING)
    reply = await reload(reply)
    stopped = await relay.open(reply.pk)
    job = asyncio.create_task(services.reply_write(reply_id=reply.pk, stopped=stopped, reply=reply))

    async with asyncio.timeout(30):
        while not web.hits:  # the lookup has reached the server, which does not answer
            await asyncio.sleep(0.01)
    stopped.set()
    await asyncio.wait_for(job, 30)

    saved = await reload(reply)
    assert saved.status == Message.Status.INTERRUPTED and saved.error == STOPPED
    assert saved.lookup_steps[0].status == "failed" and saved.lookup_steps[0].error == services.STEP_UNFINISHED
    assert fake_upstream.chat_requests == []


async def test_a_later_turn_gets_the_earlier_lookup_before_its_reply(conversation, fake_upstream):
    step = Step(kind="search", query="owls", status="done", text="[1] Owls\nhttps://owls.example/")
    await sync_to_async(MessageFactory)(conversation=conversation, content="search for owls")
    await sync_to_async(MessageFactory)(conversation=conversation, reply=True, content="Owls hunt.", steps=[step.as_json()])
    reply = await asked(conversation, "And when?")

    context = await services.context_build(reply=reply, model=conversation.model)

    assert [m["role"] for m in context.messages] == ["user", "system", "assistant", "user"]
    assert context.messages[1]["content"] == step.context_text()


# Tools, for a model that supports them -------------------------------------------------------------
async def test_a_model_with_tools_looks_up_the_weather_itself(client_in, conversation, chat_model, fake_upstream, web):
    await tools_on(chat_model)
    call = FakeToolCall("weather", {"place": "Oslo"}, id="call_w1")
    fake_upstream.script(
        FakeReply(tool_calls=[call], prompt_tokens=20, completion_tokens=5),
        FakeReply(text="It is overcast in Oslo.", prompt_tokens=90, completion_tokens=7),
    )
    reply = await asked(conversation, "Should I take an umbrella in Oslo?")

    events = await read_all(client_in, reply)

    first, second = fake_upstream.chat_requests
    assert [tool["function"]["name"] for tool in first.body["tools"]] == ["web_search", "weather", "fetch_page"]
    assert first.body["tool_choice"] == "auto"
    assistant, result = second.body["messages"][-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"] == [
        {"id": "call_w1", "type": "function", "function": {"name": "weather", "arguments": json.dumps({"place": "Oslo"})}}
    ]
    assert result["role"] == "tool" and result["tool_call_id"] == "call_w1"
    assert result["content"].startswith("The weather in Oslo, looked up just now") and "Overcast" in result["content"]
    saved = await reload(reply)
    assert saved.status == Message.Status.COMPLETE and saved.content == "It is overcast in Oslo."
    assert [(s.kind, s.query, s.via, s.status, s.call_id) for s in saved.lookup_steps] == [
        ("weather", "Oslo", "tool", "done", "call_w1")
    ]
    assert saved.usage == {"prompt_tokens": 110, "completion_tokens": 12}
    running, finished = steps_of(events)
    assert running.select_one(".step-pending").get_text(strip=True) == "Looking up the weather in Oslo…"
    assert finished.select_one(".step-done summary").get_text() == "Looked up the weather in Oslo"
    done = BeautifulSoup(events[-1][1], "html.parser")
    assert done.select_one(".step-done summary").get_text() == "Looked up the weather in Oslo"


async def test_tools_stop_after_three_rounds_and_the_model_must_answer(conversation, chat_model, fake_upstream, web):
    await tools_on(chat_model)
    fake_upstream.script(
        *[FakeReply(tool_calls=[FakeToolCall("web_search", {"query": f"owls {n}"})]) for n in range(3)],
        FakeReply(text="Here is what I found."),
    )
    reply = await asked(conversation, "Tell me everything about owls")

    await read_all_direct(reply)

    requests = fake_upstream.chat_requests
    assert len(requests) == 4
    assert [r.body["tool_choice"] for r in requests] == ["auto", "auto", "auto", "none"]
    saved = await reload(reply)
    assert [s.query for s in saved.lookup_steps] == ["owls 0", "owls 1", "owls 2"]
    assert saved.content == "Here is what I found." and saved.status == Message.Status.COMPLETE


@pytest.mark.parametrize(
    ("call", "told"),
    [
        (FakeToolCall("fetch_page", {"url": "file:///etc/passwd"}), "http"),
        (FakeToolCall("run_shell", {"command": "rm -rf /"}), "No such tool."),
        (FakeToolCall("web_search", "{not json"), "The call had no query."),
        (FakeToolCall("weather", {"place": "x" * 201}), "200 characters"),
    ],
    ids=["not-http", "unknown-tool", "bad-json", "too-long"],
)
async def test_a_tool_call_that_cannot_run_is_answered_with_why(conversation, chat_model, fake_upstream, web, call, told):
    await tools_on(chat_model)
    fake_upstream.script(FakeReply(tool_calls=[call]), FakeReply(text="Sorry."))
    reply = await asked(conversation, "Do something")

    await read_all_direct(reply)

    result = fake_upstream.last.body["messages"][-1]
    assert result["role"] == "tool" and result["tool_call_id"] == call.id
    assert told in result["content"]
    (step,) = (await reload(reply)).lookup_steps
    assert step.status == "failed" and told in step.error
    assert web.hits == []


async def test_a_model_cannot_fetch_a_private_address(conversation, chat_model, fake_upstream, web):
    await tools_on(chat_model)
    with LookupServer("127.0.0.1") as private:
        for url in (private.url("/pages/article.html"), "http://169.254.169.254/latest/meta-data/"):
            fake_upstream.script(FakeReply(tool_calls=[FakeToolCall("fetch_page", {"url": url})]), FakeReply(text="No."))
            reply = await asked(conversation, "Read my intranet")
            await read_all_direct(reply)
            (step,) = (await reload(reply)).lookup_steps
            assert step.status == "failed", url
        assert private.hits == []


async def test_at_most_three_lookups_run_in_one_round(conversation, chat_model, fake_upstream, web):
    await tools_on(chat_model)
    calls = [FakeToolCall("web_search", {"query": f"owls {n}"}) for n in range(4)]
    fake_upstream.script(FakeReply(tool_calls=calls), FakeReply(text="Done."))
    reply = await asked(conversation, "Search a lot")

    await read_all_direct(reply)

    steps = (await reload(reply)).lookup_steps
    assert [s.status for s in steps] == ["done", "done", "done", "failed"]
    assert steps[3].error == "Not run: at most 3 lookups at a time."
    assert len(web.hits) == 3
    assert [m["tool_call_id"] for m in fake_upstream.last.body["messages"] if m["role"] == "tool"] == [c.id for c in calls]


async def test_a_model_without_tools_or_a_conversation_without_lookups_is_offered_none(
    conversation, chat_model, fake_upstream
):
    reply = await asked(conversation, "Hi")
    await read_all_direct(reply)
    await tools_on(chat_model)
    conversation.web_lookups = False
    await sync_to_async(conversation.save)()
    reply = await asked(conversation, "Hi again")
    await read_all_direct(reply)

    assert all("tools" not in r.body for r in fake_upstream.chat_requests)


async def test_text_before_and_after_a_round_of_lookups_is_one_reply(conversation, chat_model, fake_upstream, web):
    await tools_on(chat_model)
    fake_upstream.script(
        FakeReply(text="Let me look.", tool_calls=[FakeToolCall("web_search", {"query": "owls"})]),
        FakeReply(text="Owls hunt at night."),
    )
    reply = await asked(conversation, "Owls?")

    await read_all_direct(reply)

    assert (await reload(reply)).content == "Let me look.\n\nOwls hunt at night."
    assert fake_upstream.last.body["messages"][-2]["content"] == "Let me look."


async def read_all_direct(reply: Message) -> None:
    """Runs the reply's job here, to its end (what a page would follow on the relay)."""
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.STREAMING)
    stopped = await relay.open(reply.pk)
    await services.reply_write(reply_id=reply.pk, stopped=stopped)


# What the page is sent --------------------------------------------------------------------------------
async def test_a_fresh_page_gets_the_steps_as_they_are_now_before_the_text():
    from conversations.relay import Event
    from conversations.views import _relayed

    events = [
        Event(1, "steps", {"html": "<p>running</p>"}),
        Event(2, "steps", {"html": "<p>done &amp; dusted</p>"}),
        Event(3, "delta", {"text": "Owls <3"}),
    ]

    frames = _relayed(events, fresh=True)

    assert frames.startswith("event: steps\ndata: <p>done &amp; dusted</p>\n\n")
    assert html.escape("Owls <3", quote=False) in frames
    assert "running" not in frames
    assert _relayed(events[:1], fresh=False) == "event: steps\ndata: <p>running</p>\nid: 1\n\n"


# Room in the model's window ----------------------------------------------------------------------
async def small_window(chat_model) -> None:
    chat_model.context_window, chat_model.max_completion_tokens = 3_000, 500
    await sync_to_async(chat_model.save)()


async def test_older_messages_make_room_for_the_lookup_a_message_asks_for(conversation, chat_model):
    await small_window(chat_model)
    for n in range(12):
        await sync_to_async(MessageFactory)(conversation=conversation, content=f"Old {n} " + "word " * 150)
    plain = await asked(conversation, "And now?")
    looking = await asked(conversation, "search for owls", Step(kind="search", query="owls"))

    without = await services.context_build(reply=plain, model=chat_model)
    with_room = await services.context_build(reply=looking, model=chat_model)

    assert with_room.omitted > without.omitted
    budget = 3_000 - 500 - services.DEFAULT_MARGIN - tokens.REPLY_PRIMING
    assert with_room.tokens + services.LOOKUP_RESERVE_TOKENS <= budget < without.tokens + services.LOOKUP_RESERVE_TOKENS


async def test_a_message_too_long_for_the_room_of_a_lookup_is_still_sent(conversation, chat_model):
    await small_window(chat_model)
    long = "word " * 1_500  # fits the window alone, not beside LOOKUP_RESERVE_TOKENS
    reply = await asked(conversation, long, Step(kind="search", query="owls"))

    context = await services.context_build(reply=reply, model=chat_model)

    assert context.messages[-1]["content"] == long


async def test_a_lookup_is_cut_to_the_room_left_or_fails_when_there_is_none(chat_model):
    await small_window(chat_model)
    budget = 3_000 - 500 - services.DEFAULT_MARGIN
    text = "Owls hunt at night. " * 300  # about 1,500 tokens
    roomy, tight, full = (services._Room(model=chat_model, used=used) for used in (0, budget - 300, budget - 5))
    steps = [Step(kind="search", query="owls", status="done", text=text, sources=[{"title": "O", "url": "https://o.example/"}])
             for _ in range(3)]

    for room, step in zip((roomy, tight, full), steps, strict=True):
        room.fit(step)

    encoding = tokens.encoding_for(chat_model.deployment_name)
    assert steps[0].text == text
    assert steps[1].status == "done" and steps[1].text.endswith("…") and len(steps[1].text) < len(text)
    assert tight.used <= budget
    assert tokens.message_tokens(role="system", content=steps[1].context_text(), encoding=encoding) <= 300
    assert steps[2].status == "failed" and steps[2].error == services.NO_ROOM and steps[2].sources == []


async def test_a_lookup_that_breaks_on_our_side_fails_alone_and_the_model_still_answers(
    client_in, conversation, fake_upstream, monkeypatch, caplog
):
    def broken(*, request):
        raise RuntimeError("a parser's bug")

    monkeypatch.setattr(services.lookups, "lookup_run", broken)
    reply = await asked(conversation, "search for owls", Step(kind="search", query="owls"))
    fake_upstream.script(FakeReply(text="Owls are birds."))

    await read_all(client_in, reply)

    saved = await reload(reply)
    assert saved.status == Message.Status.COMPLETE and saved.content == "Owls are birds."
    assert [(s.status, s.error) for s in saved.lookup_steps] == [("failed", "The lookup failed on our side.")]
    assert any(r.getMessage().startswith("Lookup failed on our side: error=RuntimeError") for r in caplog.records)
