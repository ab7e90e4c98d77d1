"""The conversation tree's invariants under any sequence of what people do (hypothesis): send,
regenerate a reply, edit a question and send it again, show another version. Whatever the
sequence, the shown branch is one path from a first message to the last, each message's parent
is in its conversation, each set of versions has one chosen, nothing is ever deleted, and the
next reply's context and the page hold the shown branch and nothing else."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations import services
from conversations.forms import MessageEditForm, MessageForm, ReplyRegenerateForm
from conversations.models import Message
from conversations.tests.factories import ConversationFactory
from conversations.views import MessagePage

pytestmark = pytest.mark.django_db

words = st.text(alphabet="abcdefghij ", min_size=1, max_size=12).filter(str.strip)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("send"), words),
        st.tuples(st.just("regenerate"), st.integers(0, 50)),
        st.tuples(st.just("edit"), st.integers(0, 50), words),
        st.tuples(st.just("show"), st.integers(0, 50), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=14,
)


def finished(reply: Message, text: str) -> None:
    """The reply as its job leaves it."""
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content=text, token_count=3)


def shown(conversation) -> list[Message]:
    return list(conversation.branch().order_by("pk"))


def act(conversation, user, action: tuple) -> None:
    kind, *args = action
    on_branch = shown(conversation)
    if kind == "send":
        form = MessageForm({"content": args[0]}, user=user, conversation=conversation)
        assert form.is_valid(), form.errors
        _, reply = form.save()
        finished(reply, f"re: {args[0]}")
    elif kind == "regenerate":
        replies = [message for message in on_branch if message.role == "assistant"]
        if replies:
            reply = replies[args[0] % len(replies)]
            form = ReplyRegenerateForm({"model": conversation.model.pk}, user=user, reply=reply)
            assert form.is_valid(), form.errors
            finished(form.save(), f"again: {reply.content}")
    elif kind == "edit":
        questions = [message for message in on_branch if message.role == "user"]
        if questions:
            question = questions[args[0] % len(questions)]
            form = MessageEditForm({"content": args[1]}, user=user, message=question)
            assert form.is_valid(), form.errors
            _, reply = form.save()
            finished(reply, f"re: {args[1]}")
    elif kind == "show" and on_branch:
        message = on_branch[args[0] % len(on_branch)]
        versions = list(message.versions())
        versions[args[1] % len(versions)].show()


def check_tree(conversation) -> None:
    rows = list(Message.objects.filter(conversation=conversation).order_by("pk"))
    by_pk = {message.pk: message for message in rows}
    # Parents: in the same conversation, written before their children.
    for message in rows:
        if message.parent_id is not None:
            assert message.parent_id in by_pk
            assert message.parent_id < message.pk
    # Each set of versions (the same parent) has exactly one chosen.
    groups: dict = {}
    for message in rows:
        groups.setdefault(message.parent_id, []).append(message)
    for versions in groups.values():
        assert sum(message.chosen for message in versions) == 1
    # The shown branch is the path of chosen versions from the first message down, all of it.
    path, parent = [], None
    while parent in groups:
        parent = next(message for message in groups[parent] if message.chosen).pk
        path.append(parent)
    assert [message.pk for message in rows if message.active] == path
    # Users and replies alternate along it.
    assert [by_pk[pk].role for pk in path] == ["user", "assistant"] * (len(path) // 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(actions=actions)
def test_any_sequence_keeps_one_shown_branch_and_loses_nothing(user, chat_model, actions):
    conversation = ConversationFactory(user=user, model=chat_model, system_prompt="")
    written = 0
    for action in actions:
        act(conversation, user, action)
        conversation.refresh_from_db()
        check_tree(conversation)
        count = Message.objects.filter(conversation=conversation).count()
        assert count >= written  # nothing deleted
        written = count
    branch = shown(conversation)
    # The next reply's context is the shown branch, whole and in order, and nothing else.
    if branch:
        next_reply = Message(pk=branch[-1].pk + 10**6, conversation=conversation, model=chat_model, steps=[])
        context = services.context_read(reply=next_reply, model=chat_model)
        assert context.messages == [{"role": m.role, "content": m.content} for m in branch]
    # The page shows the same messages.
    assert MessagePage(conversation).items == branch
