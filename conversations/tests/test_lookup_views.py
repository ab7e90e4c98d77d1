"""Web lookups at the send, the switch, retry and the page: what is saved, refused and shown.
(The lookups themselves: test_lookups.py; the reply's job making them: test_lookup_replies.py.)"""

import html

import pytest
from bs4 import BeautifulSoup
from django.test import Client
from django.urls import reverse

from accounts.tests.factories import UserFactory
from conversations.models import Conversation, Message, Step
from conversations.tests.factories import ConversationFactory, MessageFactory

HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.django_db


def send_url(conversation=None) -> str:
    if conversation is None:
        return reverse("conversations:start")
    return reverse("conversations:message_create", args=[conversation.public_id])


def switch_url(conversation) -> str:
    return reverse("conversations:lookups", args=[conversation.public_id])


def sent_reply(conversation=None) -> Message:
    rows = Message.objects.filter(role=Message.Role.ASSISTANT)
    return (rows.filter(conversation=conversation) if conversation else rows).latest("pk")


# At the send ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "query"),
    [
        ("search for django async views", "search", "django async views"),
        ("What's the weather in Paris?", "weather", "Paris"),
        ("summarize https://example.com/post", "page", "https://example.com/post"),
        ("https://example.com/only-a-link", "page", "https://example.com/only-a-link"),
    ],
)
def test_a_message_that_asks_for_a_lookup_leaves_it_pending_on_its_reply(signed_in, conversation, text, kind, query):
    response = signed_in.post(send_url(conversation), {"content": text}, headers=HTMX)

    assert response.status_code == 200
    reply = sent_reply(conversation)
    assert reply.lookup_steps == [Step(kind=kind, query=query)]
    assert Message.objects.get(role="user").content == text  # the user's words are kept as written


def test_the_new_reply_shows_the_lookup_running_at_once(signed_in, conversation):
    response = signed_in.post(send_url(conversation), {"content": "search for hedgehogs"}, headers=HTMX)

    page = BeautifulSoup(response.content, "html.parser")
    pending = page.select_one(f"#steps-{sent_reply(conversation).pk} .step-pending")
    assert pending.get_text(strip=True) == "Searching the web for “hedgehogs”…"
    assert pending["role"] == "status"


def test_a_message_that_asks_for_nothing_has_no_lookup(signed_in, conversation):
    signed_in.post(send_url(conversation), {"content": "Tell me about search engines"}, headers=HTMX)

    assert sent_reply(conversation).steps == []


def test_a_conversation_with_lookups_off_sends_the_words_to_the_model(signed_in, conversation):
    conversation.web_lookups = False
    conversation.save()

    signed_in.post(send_url(conversation), {"content": "search for hedgehogs"}, headers=HTMX)

    assert sent_reply(conversation).steps == []


def test_a_deployment_with_lookups_off_offers_none(signed_in, conversation, settings):
    settings.WEB_LOOKUPS = False

    signed_in.post(send_url(conversation), {"content": "search for hedgehogs"}, headers=HTMX)
    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    assert sent_reply(conversation).steps == []
    assert page.find(id="lookups-switch") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("search for " + "a" * 201, "200 characters"),
        ("weather in Par\x07is", "control character"),
        ("summarize file:///etc/passwd", "http"),
    ],
)
def test_a_lookup_that_cannot_be_made_is_refused_beside_the_message_and_nothing_is_saved(
    signed_in, conversation, text, reason
):
    response = signed_in.post(send_url(conversation), {"content": text}, headers=HTMX)

    assert response.status_code == 422
    composer = BeautifulSoup(response.content, "html.parser").find(id="composer")
    error = composer.select_one(".compose-field .errorlist")
    assert reason in error.get_text()
    assert composer.find("textarea", attrs={"name": "content"}).get_text().strip("\n") == text.strip()
    assert not Message.objects.exists()


def test_a_new_conversation_takes_the_switch_from_its_first_message(signed_in, chat_model):
    signed_in.post(send_url(), {"content": "search for hedgehogs", "model": chat_model.pk, "web_lookups": "on"},
                   headers=HTMX)
    signed_in.post(send_url(), {"content": "search for owls", "model": chat_model.pk}, headers=HTMX)

    on, off = Conversation.objects.order_by("pk")
    assert on.web_lookups and sent_reply(on).lookup_steps == [Step(kind="search", query="hedgehogs")]
    assert not off.web_lookups and sent_reply(off).steps == []


def test_a_new_conversation_offers_the_switch_on(signed_in, chat_model):
    page = BeautifulSoup(signed_in.get(reverse("conversations:new")).content, "html.parser")

    switch = page.find(id="lookups-switch").find("input", attrs={"name": "web_lookups"})
    assert switch.has_attr("checked")
    assert switch.find_parent("form")["id"] == "composer"


# The switch of an existing conversation ----------------------------------------------------------
def test_the_switch_turns_a_conversations_lookups_off_and_on(signed_in, conversation):
    response = signed_in.post(switch_url(conversation), {}, headers=HTMX)

    conversation.refresh_from_db()
    assert not conversation.web_lookups
    assert "Off for this conversation." in response.content.decode()
    assert not BeautifulSoup(response.content, "html.parser").find("input").has_attr("checked")

    signed_in.post(switch_url(conversation), {"web_lookups": "on"}, headers=HTMX)
    conversation.refresh_from_db()
    assert conversation.web_lookups


def test_the_switch_is_not_activity(signed_in, conversation):
    before = conversation.updated_at

    signed_in.post(switch_url(conversation), {}, headers=HTMX)

    conversation.refresh_from_db()
    assert conversation.updated_at == before


def test_the_switch_of_another_users_conversation_is_404(client, conversation):
    client.force_login(UserFactory())

    assert client.post(switch_url(conversation), {}).status_code == 404
    conversation.refresh_from_db()
    assert conversation.web_lookups


def test_the_switch_needs_login_post_and_the_csrf_token(client, user, conversation):
    assert client.post(switch_url(conversation), {}).status_code == 302
    client.force_login(user)
    assert client.get(switch_url(conversation)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(switch_url(conversation), {}).status_code == 403
    conversation.refresh_from_db()
    assert conversation.web_lookups


# Retry and the page --------------------------------------------------------------------------------
def failed_with(conversation, steps: list[Step]) -> Message:
    MessageFactory(conversation=conversation, content="search for owls")
    return MessageFactory(
        conversation=conversation, reply=True, status="failed", error="boom", steps=[s.as_json() for s in steps]
    )


def test_retry_runs_the_messages_lookup_again_but_not_the_models(signed_in, conversation):
    done = Step(kind="search", query="owls", status="done", text="Owls are birds.", sources=[{"title": "Owls", "url": "https://owls.example/"}])
    called = Step(kind="weather", query="Oslo", via="tool", status="done", call_id="call_1")
    reply = failed_with(conversation, [done, called])

    signed_in.post(reverse("conversations:reply_retry", args=[conversation.public_id, reply.pk]), headers=HTMX)

    reply.refresh_from_db()
    assert reply.status == "pending"
    assert reply.lookup_steps == [Step(kind="search", query="owls")]


def test_retry_with_lookups_turned_off_since_looks_nothing_up(signed_in, conversation):
    reply = failed_with(conversation, [Step(kind="search", query="owls", status="failed", error="down")])
    conversation.web_lookups = False
    conversation.save()

    signed_in.post(reverse("conversations:reply_retry", args=[conversation.public_id, reply.pk]), headers=HTMX)

    reply.refresh_from_db()
    assert reply.status == "pending" and reply.steps == []


def test_a_finished_reply_shows_its_steps_and_sources_escaped(signed_in, conversation):
    MessageFactory(conversation=conversation, content="search for <b>owls</b>")
    hostile = "<img src=x onerror=alert(1)>"
    step = Step(
        kind="search", query="<b>owls</b>", status="done", text=f"[1] {hostile}\nhttps://a.example/",
        sources=[
            {"title": hostile, "url": "https://a.example/owls?x=1&y=2"},
            {"title": "Script", "url": "javascript:alert(1)"},
            {"title": "Again", "url": "https://a.example/owls?x=1&y=2"},
        ],
    )
    failed = Step(kind="page", query="https://down.example/", status="failed", error="The page did not answer.")
    MessageFactory(conversation=conversation, reply=True, content="Owls hunt at night.",
                   steps=[step.as_json(), failed.as_json()])

    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    bubble = page.select(".bubble.assistant")[-1]
    assert not bubble.find("img") and not bubble.find("b")
    summary = bubble.select_one(".step-done summary").get_text()
    assert summary == "Searched the web for “<b>owls</b>”"
    assert hostile in bubble.select_one(".step-done .step-text").get_text()
    assert bubble.select_one(".step-failed").get_text(strip=True) == (
        "https://down.example/ could not be read: The page did not answer. The reply is written without it."
    )
    sources = bubble.select_one("details.sources")
    assert sources.summary.get_text() == "Sources (1)"
    (link,) = sources.find_all("a")  # the javascript: link is no link; the same link is listed once
    assert link["href"] == "https://a.example/owls?x=1&y=2"
    assert link.get_text() == hostile
    assert set(link["rel"]) >= {"noopener", "noreferrer", "nofollow"}
    assert "alert" not in " ".join(a.get("href", "") for a in page.find_all("a"))


def test_a_step_from_a_tool_says_what_the_model_looked_up(signed_in, conversation):
    MessageFactory(conversation=conversation, content="Will it rain in Oslo?")
    called = Step(kind="weather", query="Oslo", via="tool", status="done", text="Rain, 7 °C", call_id="call_1")
    MessageFactory(conversation=conversation, reply=True, content="Yes.", steps=[called.as_json()])

    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    assert page.select_one(".step-done summary").get_text() == "Looked up the weather in Oslo"
    assert html.escape("Rain, 7 °C") in str(page.select_one(".step-done .step-text"))


# The settings, checked when the server starts ------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("SEARCH_URL", "https://html.duckduckgo.com/html/?q=", "chatter.E001"),
        ("WEATHER_URL", "ftp://wttr.in/{place}", "chatter.E001"),
        ("LOOKUP_ALLOWED_NETWORKS", ["10.1.2.0/24", "intranet"], "chatter.E002"),
    ],
)
def test_lookup_settings_that_cannot_work_stop_the_server(settings, name, value, error):
    from django.core.checks import run_checks

    assert [m.id for m in run_checks() if m.id.startswith("chatter.")] == []
    setattr(settings, name, value)

    assert [m.id for m in run_checks() if m.id.startswith("chatter.")] == [error]
    settings.WEB_LOOKUPS = False
    assert [m.id for m in run_checks() if m.id.startswith("chatter.")] == []
