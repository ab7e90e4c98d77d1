"""The reply job (conversations/services.py) under mutation testing (make mutants, docs/mutants.md,
docs/mutants-services.md): each test here fails on a mutant that the rest of the suite let survive.
Against the real thing: the openai SDK over HTTP to the fake upstream, a real database."""

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations import models, services
from conversations.models import Message
from conversations.tests.factories import MessageFactory
from conversations.tests.test_stream import reload

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@pytest.fixture
def turn(conversation):
    """A committed user message and its pending reply, as message_create leaves them."""
    question = MessageFactory(conversation=conversation, content="Say hello")
    reply = MessageFactory(conversation=conversation, pending=True)
    return question, reply


# reply_settled: a reply written by another worker, read from its checkpoints ---------------------
async def test_waiting_on_another_workers_reply_ends_with_its_end_and_keeps_its_loaded_relations(turn, monkeypatch):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0)
    monkeypatch.setattr(models, "STALE_STREAM", timedelta(hours=1))  # never abandoned, however slow the machine
    _, reply = turn
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.STREAMING, updated_at=timezone.now())
    loaded = await reload(reply)
    conversation, model = loaded.conversation, loaded.model
    looks = aiter(services.reply_settled(reply=loaded))
    await anext(looks)  # still being written

    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.COMPLETE, content="Done.")

    with pytest.raises(StopAsyncIteration):
        await anext(looks)
    assert (loaded.status, loaded.content) == (Message.Status.COMPLETE, "Done.")
    # Only the reply's state is read again: the page renders its bubble with what it had loaded.
    assert loaded.conversation is conversation and loaded.model is model
