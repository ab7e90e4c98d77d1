from datetime import timedelta

import pytest
from django.utils import timezone

from conversations import relay, services, tokens
from conversations.models import STALE_STREAM, Conversation, Message
from conversations.tests.factories import MessageFactory


@pytest.mark.django_db
def test_token_count_is_computed_when_a_message_is_saved(conversation):
    message = MessageFactory(conversation=conversation, content="How many tokens is this?")

    encoding = tokens.encoding_for("gpt-4o-mini")
    assert message.token_count == tokens.message_tokens(role="user", content=message.content, encoding=encoding)
    assert message.token_count == 6 + 1 + 3  # 6 content tokens in o200k_base, 1 for the role, 3 framing


@pytest.mark.django_db
def test_token_count_is_computed_once(conversation, monkeypatch):
    message = MessageFactory(conversation=conversation, content="hello")
    counted = message.token_count
    monkeypatch.setattr(Message, "count_tokens", lambda self: pytest.fail("re-tokenized"))

    message.status = Message.Status.COMPLETE
    message.save()

    assert Message.objects.get(pk=message.pk).token_count == counted


@pytest.mark.django_db
def test_pending_reply_is_not_counted_until_it_ends(conversation):
    reply = MessageFactory(conversation=conversation, pending=True)
    assert reply.token_count is None

    reply.content, reply.status = "Done now.", Message.Status.COMPLETE
    reply.save(update_fields=["content", "status"])

    assert Message.objects.get(pk=reply.pk).token_count > 0


@pytest.mark.django_db
def test_a_reply_left_streaming_by_a_dead_worker_shows_as_interrupted(conversation):
    reply = MessageFactory(conversation=conversation, reply=True, status=Message.Status.STREAMING, content="par")
    assert reply.display_status == Message.Status.STREAMING

    Message.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    reply.refresh_from_db()

    assert reply.display_status == Message.Status.INTERRUPTED


@pytest.mark.django_db
@pytest.mark.parametrize("seconds, stale", [(11, False), (12.5, True)])
def test_a_reply_is_abandoned_after_12_seconds_without_a_checkpoint(conversation, seconds, stale):
    reply = MessageFactory(conversation=conversation, reply=True, status=Message.Status.STREAMING, content="par")
    Message.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))
    reply.refresh_from_db()

    assert reply.is_stale is stale
    assert (reply.display_status == Message.Status.INTERRUPTED) is stale


def test_a_writer_looks_for_a_stop_in_the_database_twice_a_second():
    # README: Stop arrives "within half a second through the database, which the reply's writer
    # checks twice a second" (test_relay: a stop only the database knows ends the reply).
    assert services.STOP_POLL_SECONDS == 0.5


def test_a_dead_writer_is_seen_within_15_seconds_and_a_live_one_never():
    # The last checkpoint can come just before the worker dies; a page (following on the relay,
    # or reading checkpoints) looks again within its interval after the reply turns stale.
    looks = max(relay.FOLLOW_CHECK_SECONDS, services.STOP_POLL_SECONDS)
    assert STALE_STREAM.total_seconds() + looks <= 15
    assert services.CHECKPOINT_SECONDS * 3 <= STALE_STREAM.total_seconds()  # three late checkpoints: not dead


@pytest.mark.parametrize(
    "text, title",
    [
        ("Plan a trip", "Plan a trip"),
        ("  many\n\nlines   here ", "many lines here"),
        ("x" * 100, "x" * 79 + "…"),
    ],
)
def test_title_from_the_first_message(text, title):
    assert Conversation().title_from(text) == title


@pytest.mark.django_db
def test_conversations_are_found_through_their_user(conversation, user):
    from accounts.tests.factories import UserFactory

    assert list(Conversation.objects.for_user(user)) == [conversation]
    assert not Conversation.objects.for_user(UserFactory()).exists()


@pytest.mark.django_db
def test_a_model_in_use_cannot_be_deleted(conversation):
    from django.db.models import ProtectedError

    conversation.model.is_default = False
    with pytest.raises(ProtectedError, match="1 conversation uses it"):
        conversation.model.delete()


@pytest.mark.django_db
def test_the_system_prompt_is_counted_when_saved_not_per_turn(conversation, monkeypatch):
    conversation.system_prompt = "You are terse."
    conversation.save(update_fields=["system_prompt"])

    encoding = tokens.encoding_for("gpt-4o-mini")
    counted = tokens.message_tokens(role="system", content="You are terse.", encoding=encoding)
    assert Conversation.objects.get(pk=conversation.pk).system_prompt_tokens == counted
    monkeypatch.setattr(Conversation, "count_system_prompt", lambda self: pytest.fail("re-tokenized"))
    conversation.save(update_fields=["updated_at"])  # every new message does this
