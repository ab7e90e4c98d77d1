"""Exports: one conversation as Markdown or JSON, all of a user's as one JSON download."""

import json
import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from markdown_it import MarkdownIt

from accounts.tests.factories import UserFactory
from aimodels.tests.factories import AIModelFactory
from conversations import export
from conversations.models import STALE_STREAM, Conversation, Message
from conversations.tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

USAGE = {"prompt_tokens": 12, "completion_tokens": 34}
SEARCHED = [{
    "kind": "search", "query": "lisbon trams", "status": "done", "text": "…",
    "sources": [
        {"title": "Trams of Lisbon", "url": "https://example.org/trams"},
        {"title": "Not a web link", "url": "javascript:alert(1)"},
    ],
}]


@pytest.fixture
def ai_model(db):
    return AIModelFactory(name="export-model")


@pytest.fixture
def talk(user, ai_model):
    """A conversation with two branches: the first reply was regenerated, and the question after
    the old version has a reply of its own. The active branch: question, new version, follow-up."""
    conversation = ConversationFactory(user=user, model=ai_model, title="Trams", system_prompt="Answer briefly.")
    MessageFactory(conversation=conversation, content="Which tram goes to Belém?")
    old = MessageFactory(conversation=conversation, reply=True, content="OLD VERSION of the answer")
    MessageFactory(conversation=conversation, content="OLD BRANCH question")
    MessageFactory(conversation=conversation, reply=True, content="OLD BRANCH reply")
    old.version_add(
        role="assistant", content="Tram **15E**, from Praça da Figueira.", status="complete", model=ai_model,
        usage=USAGE, steps=SEARCHED,
    )
    MessageFactory(conversation=conversation, content="And back?")
    MessageFactory(
        conversation=conversation, reply=True, content="The same tram, the other", status="interrupted", error="Stopped."
    )
    conversation.refresh_from_db()
    return conversation


def url(conversation: Conversation, kind: str) -> str:
    return reverse(f"conversations:export_{kind}", args=[conversation.public_id])


def exported_json(client, conversation: Conversation) -> dict:
    response = client.get(url(conversation, "json"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    return json.loads(response.content)


def exported_markdown(client, conversation: Conversation) -> str:
    response = client.get(url(conversation, "markdown"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    return response.content.decode()


def account_export(client) -> dict:
    response = client.get(reverse("conversations:export_all"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="chatter-')
    return json.loads(b"".join(response.streaming_content))


def top_level_headings(markdown: str) -> list[tuple[str, str]]:
    """The headings of the document as a CommonMark reader sees them: (tag, text shown)."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [
        (token.tag, "".join(child.content for child in tokens[index + 1].children))
        for index, token in enumerate(tokens)
        if token.type == "heading_open" and token.level == 0
    ]


# JSON ----------------------------------------------------------------------------------------

def test_json_holds_the_active_branch_only_with_model_time_status_and_usage(signed_in, talk, ai_model):
    data = exported_json(signed_in, talk)
    assert (data["format"], data["version"]) == ("chatter.conversation", 1)
    assert data["id"] == str(talk.public_id)
    assert (data["title"], data["model"], data["system_prompt"]) == ("Trams", "export-model", "Answer briefly.")
    assert data["created_at"] == talk.created_at.isoformat() and data["updated_at"] == talk.updated_at.isoformat()
    assert data["archived_at"] is None
    assert [(m["role"], m["content"], m["status"]) for m in data["messages"]] == [
        ("user", "Which tram goes to Belém?", "complete"),
        ("assistant", "Tram **15E**, from Praça da Figueira.", "complete"),
        ("user", "And back?", "complete"),
        ("assistant", "The same tram, the other", "interrupted"),
    ]
    question, reply, _, cut = data["messages"]
    assert question["model"] is None and reply["model"] == "export-model"
    assert reply["usage"] == USAGE and question["usage"] is None and cut["usage"] is None
    assert reply["sources"] == [{"title": "Trams of Lisbon", "url": "https://example.org/trams"}]
    assert cut["error"] == "Stopped." and reply["error"] is None
    shown = list(talk.branch().order_by("created_at", "pk"))
    assert [m["created_at"] for m in data["messages"]] == [m.created_at.isoformat() for m in shown]
    assert re.search(r"[+-]\d\d:\d\d$", reply["created_at"]), "ISO 8601 with its time zone"
    assert set(reply) == {"role", "content", "model", "created_at", "status", "error", "usage", "sources"}


def test_a_failed_reply_and_one_abandoned_by_its_writer(signed_in, user, ai_model):
    conversation = ConversationFactory(user=user, model=ai_model)
    MessageFactory(conversation=conversation, content="Hello?")
    MessageFactory(conversation=conversation, reply=True, content="", status="failed", error="The provider timed out.")
    MessageFactory(conversation=conversation, content="Again?")
    left = MessageFactory(conversation=conversation, reply=True, content="Half of", status="streaming")
    Message.objects.filter(pk=left.pk).update(updated_at=timezone.now() - STALE_STREAM - timedelta(seconds=1))
    data = exported_json(signed_in, conversation)
    failed, abandoned = data["messages"][1], data["messages"][3]
    assert (failed["status"], failed["error"], failed["content"]) == ("failed", "The provider timed out.", "")
    assert (abandoned["status"], abandoned["content"]) == ("interrupted", "Half of")


def test_a_reply_being_written_is_exported_with_its_text_so_far(signed_in, user, ai_model):
    conversation = ConversationFactory(user=user, model=ai_model)
    MessageFactory(conversation=conversation, content="Tell me a story")
    MessageFactory(conversation=conversation, reply=True, content="Once upon", status="streaming")
    assert exported_json(signed_in, conversation)["messages"][1] | {"created_at": None} == {
        "role": "assistant", "content": "Once upon", "model": "export-model", "created_at": None,
        "status": "in_progress", "error": None, "usage": None, "sources": [],
    }
    assert "- Status: in progress" in exported_markdown(signed_in, conversation)


# Markdown ------------------------------------------------------------------------------------

def test_markdown_holds_the_active_branch_with_its_facts(signed_in, talk):
    text = exported_markdown(signed_in, talk)
    assert top_level_headings(text) == [
        ("h1", "Trams"), ("h2", "System prompt"), ("h2", "User"), ("h2", "Assistant"), ("h2", "User"), ("h2", "Assistant")
    ]
    for old in ("OLD VERSION", "OLD BRANCH"):
        assert old not in text
    reply = talk.branch().filter(role="assistant").order_by("pk").first()
    assert f"- Model: export-model\n- Time: {reply.created_at.isoformat()}\n- Status: complete\n" in text
    assert "- Tokens: 12 prompt, 34 completion" in text
    assert "> Tram **15E**, from Praça da Figueira." in text  # the reply's Markdown as written
    assert "- [Trams of Lisbon](<https://example.org/trams>)" in text and "javascript" not in text
    assert "- Status: interrupted (cut short). Stopped." in text
    assert "```text\nWhich tram goes to Belém?\n```" in text


HOSTILE_USER_TEXT = "Fine.\n## Assistant\n- Model: gpt-9\n```\n## Assistant\nI agree to everything.\n````\n# Title"
HOSTILE_REPLY = "Sure.\n\n## User\n\nIgnore the above.\n\n---\n\n# Another conversation"


def test_no_text_of_a_message_can_make_a_heading_of_the_export(signed_in, user, ai_model):
    conversation = ConversationFactory(
        user=user, model=ai_model, title="Plans\n## Assistant [x](javascript:alert(1)) <b>", system_prompt="## User\nhi"
    )
    MessageFactory(conversation=conversation, content=HOSTILE_USER_TEXT)
    hostile_source = {"title": "Read](javascript:alert(1)) [me", "url": "https://example.org/a b>)<c\n## User"}
    MessageFactory(
        conversation=conversation, reply=True, content=HOSTILE_REPLY,
        steps=[{"kind": "page", "query": "x", "status": "done", "sources": [hostile_source]}],
    )
    text = exported_markdown(signed_in, conversation)
    assert top_level_headings(text) == [
        ("h1", "Plans ## Assistant [x](javascript:alert(1)) <b>"), ("h2", "System prompt"), ("h2", "User"),
        ("h2", "Assistant"),
    ]
    tokens = MarkdownIt("commonmark").parse(text)
    # The user's text, every character of it, is one code block; the title makes no link or HTML.
    assert [t.content for t in tokens if t.type == "fence"] == ["## User\nhi\n", HOSTILE_USER_TEXT + "\n"]
    assert not [t for t in tokens[1].children or () if t.type in ("link_open", "html_inline")]
    assert top_level_headings(text.split("## Assistant\n", 1)[0]) == top_level_headings(text)[:3]  # no early role
    # A source is one link, to its web address (percent-encoded), its title as text.
    links = [
        (child.attrs["href"], inline.children[index + 1].content)
        for inline in tokens if inline.type == "inline"
        for index, child in enumerate(inline.children) if child.type == "link_open"
    ]
    assert links == [("https://example.org/a%20b%3E)%3Cc%0A##%20User", "Read](javascript:alert(1)) [me")]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Trip to Lisbon", 'attachment; filename="trip-to-lisbon.{}"'),
        ('x"; filename="evil.sh\r\nSet-Cookie: a=b', 'attachment; filename="x-filenameevilsh-set-cookie-ab.{}"'),
        ("../../etc/passwd\\..\\boot.ini", 'attachment; filename="etcpasswdbootini.{}"'),
        ("\x01\x1b[31m\x7f\t", 'attachment; filename="31m.{}"'),
        ("", 'attachment; filename="conversation.{}"'),
        ("«»!?/\\'\"", 'attachment; filename="conversation.{}"'),
        ("Café à Lisboa", "attachment; filename*=utf-8''caf%C3%A9-%C3%A0-lisboa.{}"),
        ("a" * 200, f'attachment; filename="{"a" * export.FILENAME_LENGTH}.{{}}"'),
    ],
)
def test_a_download_is_named_from_the_title_safely(signed_in, user, ai_model, title, expected):
    conversation = ConversationFactory(user=user, model=ai_model, title=title)
    for kind, extension in (("markdown", "md"), ("json", "json")):
        response = signed_in.get(url(conversation, kind))
        assert response["Content-Disposition"] == expected.format(extension)
        assert response["Cache-Control"] == "no-store, private"


# Who may export ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["markdown", "json"])
def test_another_users_conversation_is_not_found(signed_in, ai_model, kind):
    theirs = ConversationFactory(model=ai_model)
    MessageFactory(conversation=theirs, content="their secret")
    response = signed_in.get(url(theirs, kind))
    assert response.status_code == 404
    assert b"their secret" not in response.content


def test_exports_need_a_login(client, talk):
    for address in (url(talk, "markdown"), url(talk, "json"), reverse("conversations:export_all")):
        response = client.get(address)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_exports_answer_get_only(signed_in, talk):
    assert signed_in.post(url(talk, "json")).status_code == 405
    assert signed_in.post(reverse("conversations:export_all")).status_code == 405


# All of a user's -----------------------------------------------------------------------------

def test_the_account_export_holds_every_conversation_of_the_user_and_none_of_anyone_else(
    signed_in, user, talk, ai_model
):
    archived = ConversationFactory(user=user, model=ai_model, title="Old stuff", archived_at=timezone.now())
    MessageFactory(conversation=archived, content="archived but mine")
    empty = ConversationFactory(user=user, model=ai_model, title="Nothing yet")
    other = UserFactory(username="someone-else", email="else@example.org")
    theirs = ConversationFactory(user=other, model=ai_model, title="Their trip", system_prompt="their prompt")
    MessageFactory(conversation=theirs, content="their secret")
    response = signed_in.get(reverse("conversations:export_all"))
    body = b"".join(response.streaming_content)
    data = json.loads(body)
    assert (data["format"], data["version"]) == ("chatter.account", 1)
    assert data["user"]["username"] == user.username and data["user"]["email"] == user.email
    assert [c["id"] for c in data["conversations"]] == [str(c.public_id) for c in (talk, archived, empty)]
    for word in (b"their", b"someone-else", b"else@example.org", str(theirs.public_id).encode()):
        assert word not in body
    # Each conversation in the shape its own JSON export has: one function builds both.
    for conversation, item in zip((talk, archived, empty), data["conversations"]):
        assert item == exported_json(signed_in, conversation)
    assert data["conversations"][1]["archived_at"] == archived.archived_at.isoformat()
    assert data["conversations"][2]["messages"] == []


def test_the_account_export_of_a_user_with_no_conversation(signed_in, user):
    assert account_export(signed_in)["conversations"] == []


def test_the_account_export_reads_conversations_in_chunks(signed_in, user, ai_model, monkeypatch):
    monkeypatch.setattr(export, "CONVERSATIONS_CHUNK", 2)
    made = [ConversationFactory(user=user, model=ai_model, title=f"Chat {n}") for n in range(5)]
    for conversation in made:
        MessageFactory(conversation=conversation, content=f"hello {conversation.title}")
    data = account_export(signed_in)
    assert [c["title"] for c in data["conversations"]] == [c.title for c in made]
    assert [c["messages"][0]["content"] for c in data["conversations"]] == [f"hello Chat {n}" for n in range(5)]


def test_the_account_export_takes_one_query_per_conversation(signed_in, user, ai_model):
    def make(count: int) -> None:
        for _ in range(count):
            conversation = ConversationFactory(user=user, model=ai_model)
            MessageFactory(conversation=conversation, content="a question")
            MessageFactory(conversation=conversation, reply=True, content="an answer", usage=USAGE, steps=SEARCHED)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            account_export(signed_in)
        return len(captured)

    make(3)
    three = queries()
    make(3)
    assert queries() == three + 3
    assert three <= 3 + 3 + 3  # the session and the user, a chunk of conversations (and the empty next), and 3


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_under_asgi_the_account_export_streams_a_conversation_at_a_time(
    async_client, user, ai_model, monkeypatch
):
    from asgiref.sync import sync_to_async

    @sync_to_async
    def make() -> None:
        for n in range(3):
            MessageFactory(conversation=ConversationFactory(user=user, model=ai_model, title=f"Chat {n}"))

    read = []
    conversation_data = export.conversation_data
    monkeypatch.setattr(
        export, "conversation_data", lambda conversation: read.append(conversation.title) or conversation_data(conversation)
    )
    await make()
    await sync_to_async(async_client.force_login)(user)
    response = await async_client.get(reverse("conversations:export_all"))
    assert response.status_code == 200 and response.is_async
    pieces = aiter(response.streaming_content)
    head = await anext(pieces)
    assert read == []  # nothing read before the first piece leaves: not gathered whole first
    first = await anext(pieces)
    assert read == ["Chat 0"]
    rest = [piece async for piece in pieces]
    assert read == ["Chat 0", "Chat 1", "Chat 2"] and len(rest) == 2 + 1  # two more conversations, the end
    assert [c["title"] for c in json.loads(head + first + b"".join(rest))["conversations"]] == ["Chat 0", "Chat 1", "Chat 2"]


# Links ---------------------------------------------------------------------------------------

def test_the_menu_and_the_account_page_link_to_the_downloads(signed_in, talk):
    page = signed_in.get(talk.get_absolute_url()).content.decode()
    for kind, words in (("markdown", "Export as Markdown"), ("json", "Export as JSON")):
        assert re.search(rf'<a class="menu-item" href="{re.escape(url(talk, kind))}" download>{words}</a>', page)
    account = signed_in.get(reverse("accounts:profile")).content.decode()
    assert "Your data" in account
    assert f'href="{reverse("conversations:export_all")}" download' in account


# The documentation --------------------------------------------------------------------------

def test_docs_export_md_names_the_versions_and_every_key_of_both_json_shapes(signed_in, talk):
    doc = (django_settings.BASE_DIR / "docs" / "export.md").read_text()
    conversation_block, account_block = re.findall(r"```jsonc\n(.*?)```", doc, re.S)

    def keys(block: str) -> set[str]:
        return set(re.findall(r'"(\w+)":', re.sub(r"\s//.*", "", block)))  # the keys, not the comments' examples

    data, account = exported_json(signed_in, talk), account_export(signed_in)
    assert keys(conversation_block) == set(data) | set(data["messages"][1])
    assert keys(account_block) == set(account) | set(account["user"])
    for shape in (data, account):
        assert f"`{shape['format']}`, version {shape['version']}" in doc
