"""A new conversation's title: its first words at once, then a few words its model writes after
the first reply, off the reply's path; a title the user chose is never overwritten."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from bs4 import BeautifulSoup
from django.db import OperationalError
from django.urls import reverse

from accounts.tests.factories import UserFactory
from aimodels.services import title_clean
from bench.fake_upstream import FakeReply
from conversations import services, views
from conversations.models import Conversation, ConversationQuerySet, Message
from conversations.tests.factories import ConversationFactory, MessageFactory

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

QUESTION = "What should I see in Paris in three days, and where should I eat?"


@pytest.fixture(autouse=True)
def _titles_on(settings):
    settings.GENERATED_TITLES = True


@pytest.fixture
def first_turn(user, chat_model):
    conversation = ConversationFactory(user=user, model=chat_model, system_prompt="")
    conversation.title = conversation.title_from(QUESTION)
    conversation.save()
    MessageFactory(conversation=conversation, content=QUESTION)
    return conversation, MessageFactory(conversation=conversation, pending=True)


async def stream(client, reply) -> None:
    response = await client.get(reverse("conversations:reply_stream", args=[reply.conversation.public_id, reply.pk]))
    [_ async for _ in response.streaming_content]


async def background_done() -> None:
    """Waits for the state: every piece of background work a reply started has ended (and what
    that work started in turn)."""
    loop = asyncio.get_running_loop()  # not tasks an earlier test left on a loop now gone
    # Only unfinished ones: awaiting finished tasks never yields to the loop, so the callbacks
    # that take them out of BACKGROUND would never run.
    while mine := [task for task in services.BACKGROUND if task.get_loop() is loop and not task.done()]:
        await asyncio.gather(*mine)


async def title_of(conversation) -> str:
    return (await Conversation.objects.aget(pk=conversation.pk)).title


async def test_after_the_first_reply_the_model_titles_the_conversation(client_in, first_turn, fake_upstream):
    conversation, reply = first_turn
    fake_upstream.script(FakeReply(text="Here is a plan."), FakeReply(text='"Three Days in Paris."'))

    await stream(client_in, reply)
    await background_done()

    assert await title_of(conversation) == "Three Days in Paris"
    title_request = fake_upstream.chat_requests[1].body
    assert title_request["stream"] is False
    assert title_request["messages"][-1] == {"role": "user", "content": QUESTION}
    assert title_request["max_tokens"] <= 24


async def test_a_conversation_with_a_system_prompt_is_titled_after_its_first_reply_too(client_in, first_turn, fake_upstream):
    conversation, reply = first_turn
    await Conversation.objects.filter(pk=conversation.pk).aupdate(system_prompt="Answer briefly.")
    fake_upstream.script(FakeReply(text="Here is a plan."), FakeReply(text="Three Days in Paris"))

    await stream(client_in, reply)
    await background_done()

    assert fake_upstream.chat_requests[0].body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert await title_of(conversation) == "Three Days in Paris"  # the system prompt is not a question asked


async def test_the_reply_ends_before_the_title_is_asked(client_in, first_turn, fake_upstream):
    conversation, reply = first_turn
    fake_upstream.script(FakeReply(text="Here is a plan."), FakeReply(text="Slow Title", first_delay=30))

    await stream(client_in, reply)  # returns while the title request is still waiting

    assert await title_of(conversation) == conversation.title_from(QUESTION)
    for task in list(services.BACKGROUND):
        task.cancel()


async def test_a_failed_title_request_leaves_the_first_words(client_in, first_turn, fake_upstream):
    conversation, reply = first_turn
    fake_upstream.script(FakeReply(text="Here is a plan."))
    fake_upstream.queue_error(status=500)

    await stream(client_in, reply)
    await background_done()

    assert await title_of(conversation) == conversation.title_from(QUESTION)


async def test_a_title_the_user_chose_meanwhile_is_kept(client_in, first_turn, fake_upstream):
    conversation, reply = first_turn
    fake_upstream.script(FakeReply(text="Here is a plan."), FakeReply(text="Generated Title"))
    await sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(title="My Paris notes")

    await stream(client_in, reply)
    await background_done()

    assert await title_of(conversation) == "My Paris notes"
    assert len(fake_upstream.chat_requests) == 2  # asked, and then not used


async def test_later_replies_ask_for_no_title(client_in, first_turn, fake_upstream):
    conversation, reply = first_turn
    fake_upstream.script(FakeReply(text="Here is a plan."), FakeReply(text="A Title"), FakeReply(text="More."))
    await stream(client_in, reply)
    await background_done()
    await sync_to_async(MessageFactory)(conversation=conversation, content="And in Lyon?")
    second = await sync_to_async(MessageFactory)(conversation=conversation, pending=True)

    await stream(client_in, second)
    await background_done()

    assert len(fake_upstream.chat_requests) == 3


async def test_titles_can_be_turned_off(client_in, first_turn, fake_upstream, settings):
    settings.GENERATED_TITLES = False
    conversation, reply = first_turn
    fake_upstream.script(FakeReply(text="Here is a plan."))

    await stream(client_in, reply)
    await background_done()

    assert len(fake_upstream.chat_requests) == 1


# The open page shows the new title: the watcher the first turn leaves in it ----------------------
HTMX = {"HX-Request": "true"}
GENERATED = "Three Days in Paris"


def watch_url(conversation) -> str:
    return reverse("conversations:title_watch", args=[conversation.public_id])


def watcher(response):
    return BeautifulSoup(response.content, "html.parser").find(id="title-watch")


@pytest.fixture
def watch_looks(monkeypatch):
    """What the watch view reads each time it looks at the conversation, as it reads it:
    `await watch_looks.get()`; `watch_looks.then`, if set, runs (async) before the view goes on."""
    looks: asyncio.Queue = asyncio.Queue()
    looks.then = None
    aget = ConversationQuerySet.aget

    async def looking(rows, *args, **kwargs):
        found = await aget(rows, *args, **kwargs)
        if "reply_in_progress" in rows.query.annotations:  # the view's look, not the test's
            await looks.put(found)
            if looks.then:
                await looks.then(found)
        return found

    monkeypatch.setattr(ConversationQuerySet, "aget", looking)
    monkeypatch.setattr(views, "TITLE_POLL_SECONDS", 0.01)
    return looks


async def send(client, to=None, **data):
    """A message from the composer: to the conversation `to`, or starting a new one."""
    url = reverse("conversations:message_create", args=[to.public_id]) if to else reverse("conversations:start")
    response = await client.post(url, data, headers=HTMX)
    await background_done()  # the reply the send started: written before the test ends
    return response


async def test_the_first_turn_leaves_a_watcher_that_asks_once_shown(client_in, chat_model, monkeypatch):
    monkeypatch.setattr(services, "reply_start_soon", lambda reply: None)  # the reply stays pending
    question = "Lisbon & Porto / in 5 days? #trip " + "A long question, " * 6
    response = await send(client_in, content=question, model=chat_model.pk)

    assert (await Conversation.objects.aget()).title.endswith("…")
    element = watcher(response)
    assert element.has_attr("hidden")
    assert (element["hx-trigger"], element["hx-swap"]) == ("load", "outerHTML")
    # The URL it asks carries the first words whole: the view knows them for the first words
    # (its reply is pending, so it answers the watcher again rather than a title).
    monkeypatch.setattr(views, "TITLE_WAIT_SECONDS", 0)
    answer = await client_in.get(element["hx-get"], headers=HTMX)
    assert watcher(answer)["hx-get"] == element["hx-get"]


async def test_later_turns_leave_no_watcher(client_in, conversation):
    response = await send(client_in, to=conversation, content="And then?")

    assert response.status_code == 200
    assert watcher(response) is None


async def test_no_watcher_when_titles_are_not_generated(client_in, chat_model, settings):
    settings.GENERATED_TITLES = False

    response = await send(client_in, content=QUESTION, model=chat_model.pk)

    assert response.status_code == 200
    assert watcher(response) is None


async def test_the_watch_answers_the_new_title_as_soon_as_it_is_written(client_in, first_turn, watch_looks):
    conversation, _ = first_turn
    watch = asyncio.create_task(client_in.get(watch_url(conversation), {"fallback": conversation.title}, headers=HTMX))
    assert (await watch_looks.get()).title == conversation.title  # it saw the first words and waits

    await Conversation.objects.filter(pk=conversation.pk).aupdate(title=GENERATED)
    response = await watch

    assert response.status_code == 200
    assert (response["HX-Retarget"], response["HX-Reswap"]) == ("#chat-title", "outerHTML")
    header = BeautifulSoup(response.content, "html.parser").find("header", id="chat-title")
    assert header.h1.get_text() == GENERATED
    assert not header.has_attr("hx-swap-oob")
    assert header.find("button", class_="title-rename")  # the header as a rename leaves it
    # The page's script puts it in the sidebar's row and the tab's title.
    assert response["HX-Trigger"] == (
        f'{{"conversationRenamed": {{"id": "{conversation.public_id}", "title": "{GENERATED}"}}}}'
    )


async def test_a_title_the_user_chose_meanwhile_is_answered_at_once(client_in, first_turn):
    conversation, _ = first_turn
    fallback = conversation.title
    await Conversation.objects.filter(pk=conversation.pk).aupdate(title="My Paris notes")

    response = await client_in.get(watch_url(conversation), {"fallback": fallback}, headers=HTMX)

    assert BeautifulSoup(response.content, "html.parser").h1.get_text() == "My Paris notes"


async def test_the_watch_asks_again_while_the_reply_is_being_written(client_in, first_turn, watch_looks, monkeypatch):
    conversation, _ = first_turn  # its reply is pending
    monkeypatch.setattr(views, "TITLE_WAIT_SECONDS", 0)

    response = await client_in.get(watch_url(conversation), {"fallback": conversation.title}, headers=HTMX)

    assert response.status_code == 200
    element = watcher(response)
    assert element["hx-trigger"] == "load"
    assert element["hx-get"].startswith(f"{watch_url(conversation)}?fallback=")
    assert await title_of(conversation) == conversation.title


async def test_a_reply_that_ends_during_the_wait_gets_another_wait_for_its_title(
    client_in, first_turn, watch_looks, monkeypatch
):
    conversation, reply = first_turn
    monkeypatch.setattr(views, "TITLE_WAIT_SECONDS", 0.5)

    async def reply_ends(seen):
        watch_looks.then = None
        await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.COMPLETE, content="Here is a plan.")

    watch_looks.then = reply_ends  # at its first look the reply is pending; then it has ended

    response = await client_in.get(watch_url(conversation), {"fallback": conversation.title}, headers=HTMX)

    assert watch_looks.qsize() > 1  # it looked after the reply had ended
    assert watcher(response) is not None  # the title is asked for only now: the watch goes on


async def test_the_watch_stops_when_the_reply_ended_and_no_title_came(client_in, first_turn, monkeypatch):
    conversation, reply = first_turn
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.FAILED, error="Broke.")
    monkeypatch.setattr(views, "TITLE_WAIT_SECONDS", 0)

    response = await client_in.get(watch_url(conversation), {"fallback": conversation.title}, headers=HTMX)

    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize("query", [{}, {"fallback": ""}, {"fallback": "x" * 201}])
async def test_the_watch_refuses_a_title_that_is_not_one(client_in, first_turn, query):
    conversation, _ = first_turn

    response = await client_in.get(watch_url(conversation), query, headers=HTMX)

    assert response.status_code == 400


async def test_another_users_conversation_is_404_to_the_watch(async_client, first_turn):
    conversation, _ = first_turn
    await async_client.aforce_login(await sync_to_async(UserFactory)())

    response = await async_client.get(watch_url(conversation), {"fallback": conversation.title}, headers=HTMX)

    assert response.status_code == 404


async def test_the_watch_sends_anonymous_visitors_to_login(async_client, first_turn):
    conversation, _ = first_turn

    response = await async_client.get(watch_url(conversation), {"fallback": conversation.title})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


async def test_a_watch_opened_with_the_first_turn_shows_the_models_title(client_in, first_turn, fake_upstream):
    conversation, reply = first_turn
    fake_upstream.script(FakeReply(text="Here is a plan.", delay=0.05), FakeReply(text='"Three Days in Paris."'))
    watch = asyncio.create_task(client_in.get(watch_url(conversation), {"fallback": conversation.title}, headers=HTMX))

    await stream(client_in, reply)
    response = await watch

    assert BeautifulSoup(response.content, "html.parser").h1.get_text() == GENERATED
    await background_done()


@pytest.mark.parametrize(
    "answer, title",
    [
        ('"Three Days in Paris."', "Three Days in Paris"),
        ("Title: **Paris Trip**", "Paris Trip"),
        ("\n  Paris   trip  \nsecond line", "Paris trip"),
        ("“Paris”", "Paris"),
        ("", ""),
        ("x" * 200, "x" * 79 + "…"),
    ],
)
async def test_the_answer_becomes_a_clean_title(answer, title):
    assert title_clean(answer) == title


async def test_a_title_the_database_cannot_take_leaves_the_first_words_and_one_line(
    first_turn, fake_upstream, monkeypatch, caplog
):
    conversation, _ = first_turn
    fake_upstream.script(FakeReply(text='"Three Days in Paris."'))

    async def busy(rows, **changes):
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(ConversationQuerySet, "aupdate", busy)

    await services.conversation_title_generate(conversation=conversation, model=conversation.model, text=QUESTION)

    assert [r.getMessage() for r in caplog.records if r.name == "conversations.services"] == [
        f"Title not saved: error=OperationalError conversation={conversation.public_id}"
    ]
    assert (await Conversation.objects.aget(pk=conversation.pk)).title == conversation.title
