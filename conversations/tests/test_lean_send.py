"""A send does the least it can: the usable models are read once (for the check of what was
sent, the default and the fresh picker in the answer), both "replies at once" rules are one
query, and the rest is the session, the user, the conversation and the save."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from aimodels.tests.factories import AIModelFactory

HTMX = {"HX-Request": "true"}


def reads_of(queries, table: str) -> int:
    return sum(1 for q in queries if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"])


@pytest.fixture
def more_models(chat_model):
    return [
        AIModelFactory(name="beta", api_key_env="", description="Second model."),
        AIModelFactory(name="gamma", api_key_env="", description="Third model."),
    ]


@pytest.mark.django_db
def test_a_send_reads_the_models_once_and_the_replies_being_written_once(signed_in, conversation, more_models):
    url = reverse("conversations:message_create", args=[conversation.public_id])

    with CaptureQueriesContext(connection) as queries:
        response = signed_in.post(url, {"content": "Hello there", "model": more_models[0].pk}, headers=HTMX)

    assert response.status_code == 200
    assert reads_of(queries, "aimodels_aimodel") == 1
    assert reads_of(queries, "conversations_message") == 1
    # session, user, conversation, models, replies being written; the save: conversation, question, reply
    assert [q["sql"].split()[0] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))] == [
        "SELECT", "SELECT", "SELECT", "SELECT", "SELECT", "UPDATE", "INSERT", "INSERT"
    ]
    # The fresh picker offers every usable model, the one just used chosen, with its description.
    picker = re.search(r'<select name="model".*?</select>', response.content.decode(), re.S).group(0)
    assert re.findall(r">([^<]+)</option>", picker) == ["fake-gpt", "beta", "gamma"]
    assert re.search(r'<option value="%d"[^>]*selected' % more_models[0].pk, picker)
    assert 'title="Second model."' in picker


@pytest.mark.django_db
def test_a_model_not_on_offer_is_refused_without_a_query_for_it(signed_in, conversation, more_models):
    hidden = AIModelFactory(name="hidden", api_key_env="", is_active=False)
    url = reverse("conversations:message_create", args=[conversation.public_id])

    with CaptureQueriesContext(connection) as queries:
        response = signed_in.post(url, {"content": "Hello there", "model": hidden.pk}, headers=HTMX)

    assert response.status_code == 422
    assert "That model is not available. Pick another." in response.content.decode()
    assert reads_of(queries, "aimodels_aimodel") == 1
    assert conversation.messages.count() == 0


@pytest.mark.django_db
def test_a_new_conversations_send_reads_the_models_once(signed_in, chat_model, more_models):
    with CaptureQueriesContext(connection) as queries:
        response = signed_in.post(reverse("conversations:start"), {"content": "Hi", "model": more_models[1].pk},
                                  headers=HTMX)

    assert response.status_code == 200
    assert reads_of(queries, "aimodels_aimodel") == 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_the_send_claims_its_reply_and_hands_its_job_the_context(client_in, conversation, fake_upstream, monkeypatch):
    """Under ASGI the send reads the context and claims the reply in its own thread; the job
    goes straight to the provider, reading nothing first."""
    from asgiref.sync import sync_to_async

    from bench.fake_upstream import FakeReply
    from conversations import services
    from conversations.models import Message
    from conversations.tests.factories import MessageFactory
    from conversations.tests.test_titles import background_done

    await sync_to_async(MessageFactory)(conversation=conversation, role="user", content="Earlier question.")
    await sync_to_async(MessageFactory)(conversation=conversation, role="assistant", content="Earlier answer.")
    fake_upstream.script(FakeReply(text="Now this."))

    async def read_again(**kwargs):
        raise AssertionError("the job read the context the send had read")

    monkeypatch.setattr(services, "context_build", read_again)
    url = reverse("conversations:message_create", args=[conversation.public_id])

    response = await client_in.post(url, {"content": "And now?"}, headers=HTMX)
    at_answer = await Message.objects.filter(conversation=conversation, role="assistant").alatest("pk")
    await background_done()
    reply = await Message.objects.aget(pk=at_answer.pk)

    assert response.status_code == 200
    assert at_answer.status == Message.Status.STREAMING  # claimed by the send, before it answered
    assert (reply.status, reply.content) == (Message.Status.COMPLETE, "Now this.")
    assert [m["content"] for m in fake_upstream.chat_requests[-1].body["messages"]] == [
        "Earlier question.", "Earlier answer.", "And now?"
    ]
