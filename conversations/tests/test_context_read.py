"""services.context_read reads a long conversation back, newest first, only as far as the model's
window reaches, and chooses exactly what select_context chooses from the whole conversation."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import services
from conversations.context import DEFAULT_MARGIN, ContextTooLong, select_context
from conversations.models import Message, Step
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tokens import REPLY_PRIMING

pytestmark = pytest.mark.django_db

CHUNK = 4
COMPLETION = 100


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(services, "CONTEXT_CHUNK", CHUNK)


def talk(counts: list[int], *, failed_at: tuple[int, ...] = (), steps: list | None = None) -> Message:
    """A conversation of messages with these token counts (user, assistant, user, ...; a failed
    reply where `failed_at` says, never sent), then the reply about to be written."""
    conversation = ConversationFactory(system_prompt="", model__max_completion_tokens=COMPLETION)
    for index, count in enumerate(counts):
        if index % 2 == 0:
            MessageFactory(conversation=conversation, content=f"question {index}", token_count=count)
        else:
            status = Message.Status.FAILED if index in failed_at else Message.Status.COMPLETE
            MessageFactory(conversation=conversation, reply=True, status=status, content=f"answer {index}", token_count=count)
    return Message.objects.select_related("conversation", "model").get(
        pk=MessageFactory(conversation=conversation, pending=True, steps=steps or []).pk
    )


def expected(reply: Message, window: int, reserve: int = 0) -> tuple[list[str], int]:
    """What select_context keeps from the whole conversation: the kept texts and how many left out."""
    sent = [
        message for message in reply.conversation.messages.filter(pk__lt=reply.pk).order_by("pk")
        if message.role == Message.Role.USER or message.status in services.USABLE
    ]
    plan = select_context(
        system_tokens=reserve, history=[(message.content, message.token_count) for message in sent],
        context_window=window, max_completion_tokens=COMPLETION, margin=DEFAULT_MARGIN,
    )
    return list(plan.keys), plan.omitted


def budget_window(budget: int) -> int:
    """The context window that leaves exactly `budget` tokens for the messages."""
    return budget + COMPLETION + DEFAULT_MARGIN + REPLY_PRIMING


COUNTS = [5, 7, 3, 9, 4, 6, 8, 2, 5, 5, 7, 1, 6, 3]  # 14 messages, 71 tokens: 3 chunks and a bit


@pytest.mark.parametrize("budget", [5, 6, 11, 14, 20, 21, 30, 33, 45, 60, 70, 71, 72, 500])
def test_the_choice_is_select_contexts_over_the_whole_conversation(budget):
    reply = talk(COUNTS, failed_at=(5,))
    window = budget_window(budget)
    reply.model.context_window = window

    context = services.context_read(reply=reply, model=reply.model)

    kept, omitted = expected(reply, window)
    assert [message["content"] for message in context.messages] == kept
    assert context.omitted == omitted


def test_a_conversation_that_fits_is_read_in_one_query_and_its_texts_in_another():
    reply = talk([5, 7, 3])
    reply.model.context_window = budget_window(500)
    with CaptureQueriesContext(connection) as queries:
        context = services.context_read(reply=reply, model=reply.model)
    assert (len(context.messages), context.omitted, len(queries)) == (3, 0, 2)


def test_a_long_conversation_is_read_back_only_as_far_as_the_window_reaches():
    reply = talk([1] * 200)  # 50 chunks of 4
    reply.model.context_window = budget_window(6)  # the newest 6: two chunks
    with CaptureQueriesContext(connection) as queries:
        context = services.context_read(reply=reply, model=reply.model)
    assert (len(context.messages), context.omitted) == (6, 194)
    read = [query["sql"] for query in queries.captured_queries]
    # Two chunks, the count of the rest, the texts: not 50 chunks.
    assert len(read) == 4, read
    assert "COUNT(" in read[2].upper()
    # The texts of the kept messages only, not of the whole conversation: from the first kept on.
    first_kept = reply.conversation.messages.filter(pk__lt=reply.pk).order_by("-pk")[5]
    assert re.findall(r'"id" >= (\d+)', read[3]) == [str(first_kept.pk)]


def test_only_the_users_messages_and_usable_replies_are_sent():
    conversation = ConversationFactory(system_prompt="", model__max_completion_tokens=COMPLETION)
    MessageFactory(conversation=conversation, content="question", token_count=3)
    MessageFactory(conversation=conversation, reply=True, content="answer", token_count=3)
    MessageFactory(
        conversation=conversation, role=Message.Role.SYSTEM, content="a note", status=Message.Status.COMPLETE, token_count=3
    )
    MessageFactory(conversation=conversation, content="again", token_count=3)
    MessageFactory(conversation=conversation, reply=True, status=Message.Status.FAILED, content="failed", token_count=3)
    MessageFactory(conversation=conversation, content="once more", token_count=3)
    reply = Message.objects.select_related("conversation", "model").get(
        pk=MessageFactory(conversation=conversation, pending=True).pk
    )
    reply.model.context_window = budget_window(500)

    context = services.context_read(reply=reply, model=reply.model)

    assert [m["content"] for m in context.messages] == ["question", "answer", "again", "once more"]


def test_a_conversation_of_whole_chunks_that_fits_is_read_to_its_start():
    reply = talk([1] * (3 * CHUNK))
    reply.model.context_window = budget_window(500)
    context = services.context_read(reply=reply, model=reply.model)
    assert (len(context.messages), context.omitted) == (3 * CHUNK, 0)


def test_room_for_a_pending_lookup_is_kept_when_the_window_has_it_else_not():
    pending = [Step(kind="search", query="owls").as_json()]
    reply = talk(COUNTS, steps=pending)
    reply.model.context_window = budget_window(30)
    context = services.context_read(reply=reply, model=reply.model)
    # 30 tokens and no room for a 1,500-token lookup: kept as without one.
    assert [m["content"] for m in context.messages] == expected(reply, budget_window(30))[0]

    reply.model.context_window = budget_window(services.LOOKUP_RESERVE_TOKENS + 30)
    context = services.context_read(reply=reply, model=reply.model)
    kept, omitted = expected(reply, reply.model.context_window, reserve=services.LOOKUP_RESERVE_TOKENS)
    assert [m["content"] for m in context.messages] == kept and context.omitted == omitted
    assert omitted > 0


def test_a_newest_message_too_long_for_the_window_is_refused():
    reply = talk([5, 7, 30])
    reply.model.context_window = budget_window(29)
    with pytest.raises(ContextTooLong):
        services.context_read(reply=reply, model=reply.model)
