"""Staff's read-only admin for conversations and messages, and the usage per user, through the
Django test client."""

import re
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from aimodels.tests.factories import AIModelFactory
from conversations import admin as conversations_admin
from conversations.models import Conversation, Message, Step
from conversations.tests.factories import ConversationFactory, MessageFactory

CONVERSATIONS = reverse("admin:conversations_conversation_changelist")
MESSAGES = reverse("admin:conversations_message_changelist")
USAGE = reverse("admin:conversations_conversation_usage")


def conversation_url(conversation: Conversation) -> str:
    return reverse("admin:conversations_conversation_change", args=[conversation.pk])


def message_url(message: Message) -> str:
    return reverse("admin:conversations_message_change", args=[message.pk])


def listed(response) -> list:
    return list(response.context["cl"].result_list)


def page_of(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def usage_rows(response) -> list[list[str]]:
    return [[cell.text.strip() for cell in row.find_all(["th", "td"])] for row in page_of(response).select("tbody tr")]


def reply(conversation: Conversation, prompt: int, completion: int, **fields) -> Message:
    return MessageFactory(
        conversation=conversation, reply=True, usage={"prompt_tokens": prompt, "completion_tokens": completion},
        **fields,
    )


def follow_filter(client, url: str, title: str, choice: str):
    """The list after clicking `choice` under the filter titled `title`, as staff would."""
    changelist = client.get(url).context["cl"]
    [spec] = [spec for spec in changelist.filter_specs if spec.title == title]
    [query] = [c["query_string"] for c in spec.choices(changelist) if c["display"] == choice]
    return client.get(url + query)


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


# Access --------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("url", [CONVERSATIONS, MESSAGES, USAGE], ids=["conversations", "messages", "usage"])
def test_anonymous_visitors_are_sent_to_log_in(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert "login" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", [CONVERSATIONS, MESSAGES, USAGE], ids=["conversations", "messages", "usage"])
def test_a_user_who_is_not_staff_is_sent_to_log_in(client, user, url):
    client.force_login(user)

    response = client.get(url)

    assert response.status_code == 302
    assert "login" in response["Location"]


# Read-only -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_staff_see_a_conversation_but_cannot_change_it(staff_client):
    conversation = ConversationFactory(title="Original title")

    page = staff_client.get(conversation_url(conversation))
    post = staff_client.post(conversation_url(conversation), {"title": "Changed"})

    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert post.status_code == 403
    conversation.refresh_from_db()
    assert conversation.title == "Original title"


@pytest.mark.django_db
@pytest.mark.parametrize("model_name", ["conversation", "message"])
def test_nothing_can_be_added(staff_client, model_name):
    response = staff_client.get(reverse(f"admin:conversations_{model_name}_add"))

    assert response.status_code == 403


@pytest.mark.django_db
def test_a_conversation_cannot_be_deleted(staff_client):
    conversation = ConversationFactory()

    response = staff_client.post(
        reverse("admin:conversations_conversation_delete", args=[conversation.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert Conversation.objects.filter(pk=conversation.pk).exists()


@pytest.mark.django_db
def test_a_message_cannot_be_deleted(staff_client):
    message = MessageFactory()

    response = staff_client.post(reverse("admin:conversations_message_delete", args=[message.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert Message.objects.filter(pk=message.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url", [CONVERSATIONS, MESSAGES], ids=["conversations", "messages"])
def test_the_lists_offer_no_bulk_actions(staff_client, url):
    MessageFactory()

    response = staff_client.get(url)

    assert response.context["action_form"] is None
    assert not page_of(response).select("input.action-select")


# Conversations: list, search, filters ----------------------------------------------------------
@pytest.mark.django_db
def test_the_conversation_list_shows_owner_model_messages_and_tokens(staff_client):
    conversation = ConversationFactory(title="Trip plans", user=UserFactory(username="ada"),
                                       model=AIModelFactory(name="gpt-x"))
    MessageFactory(conversation=conversation)
    reply(conversation, prompt=120, completion=30)
    reply(conversation, prompt=1_500, completion=70)

    response = staff_client.get(CONVERSATIONS)

    [row] = page_of(response).select("#result_list tbody tr")
    cells = {cell["class"][0].removeprefix("field-"): cell.text.strip() for cell in row.find_all(["th", "td"])}
    assert (cells["__str__"], cells["user_link"], cells["model"]) == ("Trip plans", "ada", "gpt-x")
    assert (cells["message_count"], cells["tokens_used"]) == ("3", "1,620 / 100")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "title"),
    [("pineapple", "Pineapple pizza"), ("grace", "Compilers"), ("rhubarb crumble", "Desserts")],
    ids=["title", "user name", "message text"],
)
def test_conversations_are_found_by_title_user_name_or_message_text(staff_client, query, title):
    ConversationFactory(title="Pineapple pizza")
    ConversationFactory(title="Compilers", user=UserFactory(username="grace"))
    MessageFactory(conversation=ConversationFactory(title="Desserts"), content="How do I make rhubarb crumble?")
    ConversationFactory(title="Unrelated")

    assert [c.title for c in listed(staff_client.get(CONVERSATIONS, {"q": query}))] == [title]


@pytest.mark.django_db
def test_a_conversation_found_by_several_messages_is_listed_once(staff_client):
    conversation = ConversationFactory()
    MessageFactory(conversation=conversation, content="rhubarb one")
    MessageFactory(conversation=conversation, content="rhubarb two")

    assert listed(staff_client.get(CONVERSATIONS, {"q": "rhubarb"})) == [conversation]


@pytest.mark.django_db
def test_the_user_column_filters_the_list_to_that_users_conversations(staff_client):
    ada = UserFactory(username="ada")
    mine = ConversationFactory(user=ada)
    ConversationFactory()
    link = page_of(staff_client.get(CONVERSATIONS)).find("a", string="ada")["href"]

    response = staff_client.get(CONVERSATIONS + link)

    assert listed(response) == [mine]
    assert "ada" in [choice["display"] for spec in response.context["cl"].filter_specs
                     if spec.title == "user" for choice in spec.choices(response.context["cl"])]


@pytest.mark.django_db
def test_the_user_filter_does_not_list_every_user(staff_client):
    for _ in range(3):
        ConversationFactory()

    response = staff_client.get(CONVERSATIONS)

    assert "user" not in [spec.title for spec in response.context["cl"].filter_specs]


@pytest.mark.django_db
def test_conversations_filter_by_model(staff_client):
    chosen = ConversationFactory(model=AIModelFactory(name="chosen"))
    ConversationFactory(model=AIModelFactory(name="other"))

    assert listed(staff_client.get(CONVERSATIONS, {"model__id__exact": chosen.model_id})) == [chosen]


@pytest.mark.django_db
def test_conversations_filter_by_the_status_of_a_reply(staff_client):
    failing = ConversationFactory()
    reply(failing, 10, 0, status=Message.Status.COMPLETE)
    reply(failing, 10, 0, status=Message.Status.FAILED, error="Rate limited.")
    reply(failing, 10, 0, status=Message.Status.FAILED, error="Rate limited.")
    reply(ConversationFactory(), 10, 5)

    assert listed(staff_client.get(CONVERSATIONS, {"reply_status": "failed"})) == [failing]


@pytest.mark.django_db
def test_conversations_filter_by_date(staff_client):
    recent = ConversationFactory()
    old = ConversationFactory()
    Conversation.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    response = follow_filter(staff_client, CONVERSATIONS, "created at", "Past 7 days")

    assert listed(response) == [recent]


# A conversation's page -----------------------------------------------------------------------
@pytest.mark.django_db
def test_a_conversations_page_shows_its_messages_with_model_status_error_and_tokens(staff_client):
    conversation = ConversationFactory(model=AIModelFactory(name="gpt-x"))
    MessageFactory(conversation=conversation, content="What is a monad?")
    reply(conversation, 42, 7, status=Message.Status.INTERRUPTED, content="A monad is", error="Stopped.")

    page = page_of(staff_client.get(conversation_url(conversation)))

    rows = page.select("#messages-group tbody tr.has_original")
    cells = [{name: row.select_one(f"td.field-{name}").text.strip() for name in
              ("role", "status", "model", "excerpt", "error_excerpt", "prompt_tokens", "completion_tokens")}
             for row in rows]
    assert cells == [
        {"role": "User", "status": "Complete", "model": "-", "excerpt": "What is a monad?", "error_excerpt": "",
         "prompt_tokens": "-", "completion_tokens": "-"},
        {"role": "Assistant", "status": "Interrupted", "model": "gpt-x", "excerpt": "A monad is",
         "error_excerpt": "Stopped.", "prompt_tokens": "42", "completion_tokens": "7"},
    ]


@pytest.mark.django_db
def test_a_conversations_page_has_no_view_on_site_link_to_a_chat_staff_cannot_open(staff_client):
    conversation = ConversationFactory()

    response = staff_client.get(conversation_url(conversation))

    assert not page_of(response).select("a.viewsitelink")
    assert staff_client.get(conversation.get_absolute_url()).status_code == 404


@pytest.mark.django_db
def test_a_long_conversations_page_shows_its_newest_messages_and_links_to_all(staff_client, monkeypatch):
    monkeypatch.setattr(conversations_admin, "INLINE_MESSAGES", 3)
    conversation = ConversationFactory()
    start = timezone.now() - timedelta(hours=1)
    for n in range(5):
        MessageFactory(conversation=conversation, content=f"message {n}", created_at=start + timedelta(minutes=n))

    page = page_of(staff_client.get(conversation_url(conversation)))

    shown = [cell.text.strip() for cell in page.select("#messages-group td.field-excerpt")]
    assert shown == ["message 2", "message 3", "message 4"]
    assert "the newest 3 of 5" in page.select_one("#messages-group h2").text
    link = page.find("a", string="All of its messages")["href"]
    assert len(listed(staff_client.get(link))) == 5


@pytest.mark.django_db
def test_what_users_and_models_wrote_is_shown_escaped(staff_client):
    message = MessageFactory(content='<script>alert("x")</script><b>bold</b>')
    reply(message.conversation, 1, 1, content="<img src=x onerror=alert(1)>", error="<i>oops</i>")

    pages = [
        staff_client.get(conversation_url(message.conversation)).content.decode(),
        staff_client.get(MESSAGES).content.decode(),
        staff_client.get(message_url(message)).content.decode(),
    ]

    for html in pages:
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "<b>bold</b>" not in html
        assert "<i>oops</i>" not in html
    assert "&lt;script&gt;alert" in pages[0]


@pytest.mark.django_db
@pytest.mark.parametrize("place", ["list", "change page", "usage"])
def test_the_pages_have_no_inline_styles_or_handlers_for_the_csp(staff_client, place):
    message = MessageFactory()
    reply(message.conversation, 1, 1)
    url = {"list": CONVERSATIONS, "change page": conversation_url(message.conversation), "usage": USAGE}[place]

    html = staff_client.get(url).content.decode()

    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)


# Messages: list, search, filters ----------------------------------------------------------------
@pytest.mark.django_db
def test_the_message_list_shows_each_replys_model_status_error_and_tokens(staff_client):
    conversation = ConversationFactory(user=UserFactory(username="ada"), model=AIModelFactory(name="gpt-x"))
    reply(conversation, 900, 12, status=Message.Status.FAILED, content="", error="OpenAI is limiting how fast")

    [row] = page_of(staff_client.get(MESSAGES)).select("#result_list tbody tr")

    cells = {cell["class"][0].removeprefix("field-"): cell.text.strip() for cell in row.find_all(["th", "td"])}
    assert {k: cells[k] for k in ("user", "role", "status", "model", "prompt_tokens", "completion_tokens")} == {
        "user": "ada", "role": "Assistant", "status": "Failed", "model": "gpt-x", "prompt_tokens": "900",
        "completion_tokens": "12",
    }
    assert cells["error_excerpt"] == "OpenAI is limiting how fast"


@pytest.mark.django_db
def test_a_message_has_its_own_page_with_its_usage(staff_client):
    message = reply(ConversationFactory(), 321, 54, content="Full reply text")

    page = page_of(staff_client.get(message_url(message)))

    assert page.select_one(".field-content .readonly").text.strip() == "Full reply text"
    assert page.select_one(".field-prompt_tokens .readonly").text.strip() == "321"
    assert page.select_one(".field-completion_tokens .readonly").text.strip() == "54"


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["rhubarb", "ada"], ids=["text", "user name"])
def test_messages_are_found_by_text_or_user_name(staff_client, query):
    wanted = MessageFactory(conversation=ConversationFactory(user=UserFactory(username="ada")), content="rhubarb")
    MessageFactory(content="something else")

    assert listed(staff_client.get(MESSAGES, {"q": query})) == [wanted]


@pytest.mark.django_db
def test_messages_filter_by_status(staff_client):
    conversation = ConversationFactory()
    reply(conversation, 1, 1)
    failed = reply(conversation, 1, 0, status=Message.Status.FAILED, error="Broken.")

    assert listed(staff_client.get(MESSAGES, {"status__exact": "failed"})) == [failed]


@pytest.mark.django_db
def test_messages_filter_by_model(staff_client):
    wanted = reply(ConversationFactory(model=AIModelFactory(name="chosen")), 1, 1)
    reply(ConversationFactory(), 1, 1)

    assert listed(staff_client.get(MESSAGES, {"model__id__exact": wanted.model_id})) == [wanted]


@pytest.mark.django_db
def test_messages_filter_by_user(staff_client):
    ada = UserFactory(username="ada")
    wanted = MessageFactory(conversation=ConversationFactory(user=ada))
    MessageFactory()

    assert listed(staff_client.get(MESSAGES, {"user": ada.pk})) == [wanted]


@pytest.mark.django_db
def test_messages_filter_by_date(staff_client):
    recent = MessageFactory()
    MessageFactory(created_at=timezone.now() - timedelta(days=40))

    response = follow_filter(staff_client, MESSAGES, "created at", "Past 7 days")

    assert listed(response) == [recent]


# Usage per user ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_conversation_list_links_to_the_usage_page(staff_client):
    page = page_of(staff_client.get(CONVERSATIONS))

    assert page.select_one(".object-tools").find("a", string="Usage per user")["href"] == USAGE


@pytest.mark.django_db
def test_usage_lists_each_users_messages_and_tokens_heaviest_first(staff_client):
    light = ConversationFactory(user=UserFactory(username="light"))
    MessageFactory(conversation=light)
    reply(light, 100, 20)
    heavy_user = UserFactory(username="heavy")
    for conversation in (ConversationFactory(user=heavy_user), ConversationFactory(user=heavy_user)):
        MessageFactory(conversation=conversation)
        reply(conversation, 5_000, 700)
        MessageFactory(conversation=conversation, reply=True, usage=None, status=Message.Status.FAILED)
    UserFactory(username="idle")

    rows = usage_rows(staff_client.get(USAGE))

    assert [row[:6] for row in rows] == [
        ["heavy", "2", "2", "4", "10,000", "1,400"],
        ["light", "1", "1", "1", "100", "20"],
    ]


@pytest.mark.django_db
def test_usage_counts_a_reply_without_reported_tokens_as_zero(staff_client):
    conversation = ConversationFactory(user=UserFactory(username="ada"))
    MessageFactory(conversation=conversation, reply=True, usage={})
    MessageFactory(conversation=conversation, reply=True, usage=None)

    rows = usage_rows(staff_client.get(USAGE))

    assert [row[:6] for row in rows] == [["ada", "1", "0", "2", "0", "0"]]


@pytest.mark.django_db
def test_usage_over_a_period_counts_only_its_messages(staff_client):
    conversation = ConversationFactory(user=UserFactory(username="ada"))
    long_ago = timezone.now() - timedelta(days=40)
    MessageFactory(conversation=conversation, created_at=long_ago)
    reply(conversation, 9_000, 900, created_at=long_ago)
    MessageFactory(conversation=conversation)
    reply(conversation, 10, 2)

    rows = usage_rows(staff_client.get(USAGE, {"days": "7"}))

    assert [row[:6] for row in rows] == [["ada", "1", "1", "1", "10", "2"]]


@pytest.mark.django_db
def test_usage_finds_a_user_by_name(staff_client):
    for name in ("ada", "grace"):
        MessageFactory(conversation=ConversationFactory(user=UserFactory(username=name)))

    rows = usage_rows(staff_client.get(USAGE, {"q": "gra"}))

    assert [row[0] for row in rows] == ["grace"]


@pytest.mark.django_db
def test_usage_links_each_user_to_their_conversations(staff_client):
    ada = UserFactory(username="ada")
    mine = ConversationFactory(user=ada)
    MessageFactory(conversation=mine)
    MessageFactory()
    link = page_of(staff_client.get(USAGE)).find("a", string="ada")["href"]

    assert listed(staff_client.get(link)) == [mine]


@pytest.mark.django_db
def test_usage_is_paginated(staff_client, monkeypatch):
    monkeypatch.setattr(conversations_admin, "USAGE_PER_PAGE", 2)
    for n in range(3):
        reply(ConversationFactory(user=UserFactory(username=f"user-{n}")), prompt=100 * (n + 1), completion=0)

    first, second = staff_client.get(USAGE), staff_client.get(USAGE, {"p": 2})

    assert [row[0] for row in usage_rows(first)] == ["user-2", "user-1"]
    assert [row[0] for row in usage_rows(second)] == ["user-0"]
    assert page_of(first).select_one(".paginator").find("a", string="next")["href"] == "?p=2"


@pytest.mark.django_db
def test_usage_with_an_unknown_period_says_so_and_lists_nobody(staff_client):
    MessageFactory()

    response = staff_client.get(USAGE, {"days": "365000"})

    assert response.status_code == 200
    assert page_of(response).select_one(".errornote").text == "Choose a period from the list."
    assert usage_rows(response) == [["No messages."]]


@pytest.mark.django_db
def test_staff_see_a_replys_lookups_escaped(staff_client):
    conversation = ConversationFactory()
    hostile = "<script>alert(1)</script>"
    step = Step(kind="search", query=hostile, status="done", text=hostile, sources=[{"title": hostile, "url": "https://a.example/"}])
    message = MessageFactory(conversation=conversation, reply=True, steps=[step.as_json()])

    content = staff_client.get(message_url(message)).content.decode()

    assert hostile not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
