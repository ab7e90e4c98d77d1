"""Migration 0006 (the tree): a database written before it, with conversations whose messages
interleave, comes out with each conversation one branch: each message follows the one written
before it in its own conversation, and all are shown and chosen. Run on SQLite and PostgreSQL
(the test database is taken back to 0005, filled through the models as they were, migrated)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("conversations", "0005_message_conversation_id_index")]
TREE = [("conversations", "0006_tree_pin_archive_share")]


@pytest.fixture
def executor(transactional_db):
    executor = MigrationExecutor(connection)
    yield executor
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # the other tests' schema again


def before_tree(executor: MigrationExecutor):
    """The database taken back to just before the tree (every other app as it is): the models
    Conversation and Message as they were then, and a user and an AI model to own them."""
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "conversations"] + BEFORE
    executor.migrate(targets)
    old = executor.loader.project_state(targets).apps
    user = old.get_model("accounts", "User").objects.create(username="before", email="before@example.com")
    model = old.get_model("aimodels", "AIModel").objects.create(
        name="old-model", deployment_name="gpt-4o-mini", api_endpoint="https://api.openai.com/v1"
    )
    return old.get_model("conversations", "Conversation"), old.get_model("conversations", "Message"), user, model


def test_every_existing_conversation_becomes_a_single_branch(executor):
    Conversation, Message, user, model = before_tree(executor)
    first, second = (Conversation.objects.create(user=user, model=model, title=title) for title in ("first", "second"))
    empty = Conversation.objects.create(user=user, model=model, title="no messages")
    start = timezone.now() - timedelta(hours=1)
    written = {first.pk: [], second.pk: []}
    for n in range(6):  # the two conversations' messages interleave, as two tabs would write them
        for conversation in (first, second):
            role = "user" if n % 2 == 0 else "assistant"
            message = Message.objects.create(
                conversation=conversation, role=role, content=f"{conversation.title} {n}",
                status="failed" if n == 5 else "complete", created_at=start + timedelta(seconds=n),
            )
            written[conversation.pk].append(message.pk)

    executor.loader.build_graph()
    executor.migrate(TREE)

    new = executor.loader.project_state(TREE).apps.get_model("conversations", "Message")
    for conversation, pks in written.items():
        rows = list(new.objects.filter(conversation_id=conversation).order_by("pk"))
        assert [row.pk for row in rows] == pks  # nothing lost or moved
        assert [row.parent_id for row in rows] == [None, *pks[:-1]]  # each follows the one before, in its own
        assert all(row.active and row.chosen for row in rows)
    assert not new.objects.filter(conversation_id=empty.pk).exists()


def test_the_app_reads_a_migrated_conversation_as_one_branch(executor):
    Conversation, Message, user, model = before_tree(executor)
    conversation = Conversation.objects.create(user=user, model=model, title="kept")
    for n in range(4):
        Message.objects.create(conversation=conversation, role="user" if n % 2 == 0 else "assistant", content=f"m{n}")

    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from conversations.models import Conversation as Current
    from conversations.models import Message as CurrentMessage

    migrated = Current.objects.get(pk=conversation.pk)
    branch = list(migrated.branch().order_by("pk"))
    assert [message.content for message in branch] == ["m0", "m1", "m2", "m3"]
    assert migrated.branch_end() == branch[-1]
    CurrentMessage.versions_mark(branch)
    assert [message.version_count for message in branch] == [1, 1, 1, 1]
