"""A new conversation's title: its first words at once, then a few words its model writes after
the first reply, off the reply's path; a title the user chose is never overwritten."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from aimodels.services import title_clean
from bench.fake_upstream import FakeReply
from conversations import services
from conversations.models import Conversation
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
def client_in(async_client, user):
    async_client.force_login(user)
    return async_client


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
    """Waits for the state: every piece of background work a reply started has ended."""
    await asyncio.gather(*services.BACKGROUND)


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
