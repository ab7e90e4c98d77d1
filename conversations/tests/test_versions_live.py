"""Regenerated and edited replies are written like any other: a job that asks the provider (the
fake upstream, over HTTP, with the real SDK) with the context of their own branch, streamed to the
page, stoppable, saved."""

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from bench.fake_upstream import FakeReply
from conversations import services
from conversations.models import Message
from conversations.tests.factories import MessageFactory
from conversations.tests.test_stream import parse_events, read_all, reload, shown

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]
HTMX = {"HX-Request": "true"}


@pytest.fixture
def history(conversation):
    """Two finished turns."""
    return [
        MessageFactory(conversation=conversation, content="Name a colour."),
        MessageFactory(conversation=conversation, reply=True, content="Blue."),
        MessageFactory(conversation=conversation, content="Why?"),
        MessageFactory(conversation=conversation, reply=True, content="The sky."),
    ]


async def newest(conversation) -> Message:
    return await Message.objects.filter(conversation=conversation).select_related("conversation", "model").alatest("pk")


async def test_a_regenerated_reply_is_asked_with_its_branch_and_saved_beside_the_old(
    client_in, conversation, history, fake_upstream
):
    fake_upstream.script(FakeReply(text="Green, this time."))
    url = reverse("conversations:reply_regenerate", args=[conversation.public_id, history[1].pk])

    response = await client_in.post(url, {"model": conversation.model.pk}, headers=HTMX)
    assert response.status_code == 200
    version = await newest(conversation)
    events = await read_all(client_in, version)

    # The job started with the send: the page gets what was written before it connected, then the rest.
    assert "Green, this time." in events[-1][1]
    assert fake_upstream.last.body["messages"] == [{"role": "user", "content": "Name a colour."}]
    saved = await reload(version)
    assert (saved.status, saved.content, saved.parent_id) == ("complete", "Green, this time.", history[0].pk)
    assert (await reload(history[1])).content == "Blue."  # the old version is kept
    # The finished bubble shows its place among the versions.
    assert '<span class="version-count">2 / 2</span>' in events[-1][1]


async def test_an_edited_question_is_answered_after_the_messages_before_it_only(
    client_in, conversation, history, fake_upstream
):
    fake_upstream.script(FakeReply(text="Because of the sea."))
    url = reverse("conversations:message_edit", args=[conversation.public_id, history[2].pk])

    response = await client_in.post(url, {"content": "Why not green?"}, headers=HTMX)
    assert response.status_code == 200
    reply = await newest(conversation)
    await read_all(client_in, reply)

    assert fake_upstream.last.body["messages"] == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Why not green?"},
    ]
    assert (await reload(reply)).content == "Because of the sea."


async def test_a_regenerated_reply_can_be_stopped_and_keeps_its_text(client_in, conversation, history, fake_upstream):
    fake_upstream.script(FakeReply(text=" ".join(f"w{n}" for n in range(40)), hang_after=3))
    url = reverse("conversations:reply_regenerate", args=[conversation.public_id, history[3].pk])
    await client_in.post(url, {"model": conversation.model.pk}, headers=HTMX)
    version = await newest(conversation)

    stream = await client_in.get(reverse("conversations:reply_stream", args=[conversation.public_id, version.pk]))
    received, stopped = "", False
    async for chunk in stream.streaming_content:  # ends with the reply's 'done'
        received += chunk.decode()
        # Three words, then the provider goes silent: the stop lands while the reply is written.
        if shown(parse_events(received))[1] == "w0 w1 w2" and not stopped:
            stop = reverse("conversations:reply_stop", args=[conversation.public_id, version.pk])
            assert (await client_in.post(stop)).status_code == 204
            stopped = True

    saved = await reload(version)
    assert (saved.status, saved.error, saved.content) == ("interrupted", services.STOPPED, "w0 w1 w2")
    assert await sync_to_async(lambda: [m.pk for m in conversation.branch().order_by("pk")])() == [
        *(m.pk for m in history[:3]), version.pk
    ]
