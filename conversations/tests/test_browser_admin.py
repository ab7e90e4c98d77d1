"""A staff user's journey through the real Django admin, in a real Chromium against chatter under
uvicorn (make test-browser): conversations read-only with search and filters, one conversation's
messages with each reply's model, status, error and usage, the usage per user, and the AI models
(a missing API key flagged; Test connection against the fake upstream). A user who is not staff is
sent to the admin's login. Every wait is for a state."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from accounts.tests.factories import UserFactory
from aimodels.tests.factories import AIModelFactory
from bench.fake_upstream import FakeReply
from conversations.models import Conversation, Message
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.tests.test_browser_sidebar import SCREENS, watched  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser]

MISSING_KEY = "CHATTER_JOURNEY_KEY_NEVER_SET"  # no server environment has it


@pytest.fixture
def staff(browser_user):
    browser_user.is_staff = True
    browser_user.save()
    return browser_user


@pytest.fixture
def other_model(chat_model):
    return AIModelFactory(name="other-model", provider="openai_compatible", api_endpoint=chat_model.api_endpoint,
                          deployment_name="other-deployment", api_key_env="")


@pytest.fixture
def chats(chat_model, other_model):
    """alice: a finished reply with usage, and a failed one; bob: an old conversation."""
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    lisbon = ConversationFactory(user=alice, model=chat_model, title="Lisbon trip")
    MessageFactory(conversation=lisbon, content="Plan a day in Lisbon")
    MessageFactory(conversation=lisbon, reply=True, content="Start at Belém.",
                   usage={"prompt_tokens": 1200, "completion_tokens": 345})
    broken = ConversationFactory(user=alice, model=other_model, title="Broken one")
    MessageFactory(conversation=broken, content="Hello?")
    MessageFactory(conversation=broken, reply=True, status=Message.Status.FAILED, content="",
                   error="The provider did not answer in time.")
    notes = ConversationFactory(user=bob, model=chat_model, title="Bob's notes")
    MessageFactory(conversation=notes, content="Remind me")
    MessageFactory(conversation=notes, reply=True, content="Noted.",
                   usage={"prompt_tokens": 10, "completion_tokens": 5})
    now = timezone.now()
    for conversation, minutes_ago in [(lisbon, 1), (broken, 2)]:  # newest first in the list
        Conversation.objects.filter(pk=conversation.pk).update(
            created_at=now - timedelta(hours=1), updated_at=now - timedelta(minutes=minutes_ago)
        )
    long_ago = now - timedelta(days=40)
    Conversation.objects.filter(pk=notes.pk).update(created_at=long_ago, updated_at=long_ago)
    Message.objects.filter(conversation=notes).update(created_at=long_ago)
    return {"alice": alice, "bob": bob, "lisbon": lisbon, "broken": broken, "notes": notes}


def open_admin(page: Page, server, user) -> None:
    """Logged in through the app, then the top bar's Admin link."""
    log_in(page, server, user)
    page.locator("header.topbar").get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def admin_model(page: Page, name: str) -> Locator:
    """A model's link on the admin's index (its app's link has the same name)."""
    return page.get_by_role("rowheader", name=name, exact=True).get_by_role("link")


def result_titles(page: Page) -> Locator:
    return page.locator("#result_list tbody th")


def shot(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"admin-{name}.png"), full_page=True)


def test_staff_list_search_and_filter_conversations_read_only(watched: Page, asgi_server, staff, chats):
    page = watched
    open_admin(page, asgi_server, staff)

    admin_model(page, "Conversations").click()
    expect(page.get_by_role("heading", name="Select conversation to view")).to_be_visible()
    expect(result_titles(page)).to_have_text(["Lisbon trip", "Broken one", "Bob's notes"], use_inner_text=True)
    expect(page.get_by_role("link", name=re.compile("^Add conversation"))).to_have_count(0)
    shot(page, "conversations")

    # Search: the title, the user's name or any message's text.
    page.get_by_role("textbox", name="Search").fill("belém")
    page.get_by_role("textbox", name="Search").press("Enter")
    expect(result_titles(page)).to_have_text(["Lisbon trip"])
    page.get_by_role("textbox", name="Search").fill("bob")
    page.get_by_role("textbox", name="Search").press("Enter")
    expect(result_titles(page)).to_have_text(["Bob's notes"])
    page.get_by_role("textbox", name="Search").fill("")
    page.get_by_role("textbox", name="Search").press("Enter")
    expect(result_titles(page)).to_have_count(3)

    # Filters: the model, the state of a reply, the date; the user from a row's link.
    filters = page.locator("#changelist-filter")
    filters.get_by_role("link", name="other-model").click()
    expect(result_titles(page)).to_have_text(["Broken one"])
    filters.get_by_role("link", name="Clear all filters").click()
    filters.get_by_role("link", name="Failed").click()
    expect(result_titles(page)).to_have_text(["Broken one"])
    filters.get_by_role("link", name="Clear all filters").click()
    filters.locator("details", has_text="created at").get_by_role("link", name="Past 7 days").click()
    expect(result_titles(page)).to_have_text(["Lisbon trip", "Broken one"])
    filters.get_by_role("link", name="Clear all filters").click()
    page.locator("#result_list").get_by_role("link", name="alice").first.click()
    expect(result_titles(page)).to_have_text(["Lisbon trip", "Broken one"])
    expect(filters.locator("details", has_text="By user").locator("li.selected")).to_have_text("alice")
    shot(page, "conversations-filtered")
    assert page.problems == []


def test_staff_open_a_conversation_and_see_each_replys_model_status_error_and_usage(
    watched: Page, asgi_server, staff, chats
):
    page = watched
    open_admin(page, asgi_server, staff)
    admin_model(page, "Conversations").click()

    page.get_by_role("link", name="Lisbon trip").click()

    expect(page.get_by_role("heading", name="View conversation")).to_be_visible()
    messages = page.locator(".inline-group", has_text="Messages")
    rows = messages.locator("tbody tr.has_original")
    expect(rows).to_have_count(2)
    reply = rows.nth(1)
    for cell, text in [("role", "Assistant"), ("status", "Complete"), ("model", "fake-gpt"),
                       ("excerpt", "Start at Belém."), ("prompt_tokens", "1,200"), ("completion_tokens", "345")]:
        expect(reply.locator(f"td.field-{cell}")).to_have_text(text)
    expect(page.get_by_role("button", name=re.compile("^Save"))).to_have_count(0)  # read-only
    expect(page.locator("#content-main")).to_contain_text("tokens reported: 1,200 prompt, 345 completion")
    shot(page, "conversation")

    page.go_back()  # to the list
    page.get_by_role("link", name="Broken one").click()
    failed = page.locator(".inline-group tbody tr.has_original").nth(1)
    expect(failed.locator("td.field-status")).to_have_text("Failed")
    expect(failed.locator("td.field-model")).to_have_text("other-model")
    expect(failed.locator("td.field-error_excerpt")).to_have_text("The provider did not answer in time.")
    expect(failed.locator("td.field-prompt_tokens")).to_have_text("-")  # no usage reported
    shot(page, "conversation-failed")
    assert page.problems == []


def test_staff_see_the_usage_per_user_heaviest_first(watched: Page, asgi_server, staff, chats):
    page = watched
    open_admin(page, asgi_server, staff)
    admin_model(page, "Conversations").click()

    page.get_by_role("link", name="Usage per user").click()

    expect(page.get_by_role("heading", name="Usage per user")).to_be_visible()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("th, td")).to_have_text(["alice", "2", "2", "2", "1,200", "345", re.compile(r".+")])
    expect(rows.nth(1).locator("th, td")).to_have_text(["bob", "1", "1", "1", "10", "5", re.compile(r".+")])
    shot(page, "usage")

    page.get_by_label("Period").select_option(label="Last 7 days")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator("th")).to_have_text("alice")

    rows.first.get_by_role("link", name="alice").click()  # her conversations
    expect(result_titles(page)).to_have_text(["Lisbon trip", "Broken one"])
    assert page.problems == []


def test_staff_see_a_missing_key_flagged_and_test_a_models_connection(
    watched: Page, asgi_server, staff, chat_model, fake_upstream
):
    page = watched
    AIModelFactory(name="cloud-model", api_key_env=MISSING_KEY)
    fake_upstream.script(FakeReply(text="OK"))
    open_admin(page, asgi_server, staff)

    admin_model(page, "AI models").click()
    expect(page.get_by_role("heading", name="Select AI model to change")).to_be_visible()
    cloud = page.locator("#result_list tbody tr", has=page.get_by_role("link", name="cloud-model"))
    fake = page.locator("#result_list tbody tr", has=page.get_by_role("link", name="fake-gpt"))
    expect(cloud.locator("td.field-key_set")).to_have_text(f"{MISSING_KEY} is not set")
    expect(cloud.locator("td.field-key_set").get_by_role("img", name="Not set")).to_be_visible()
    expect(fake.locator("td.field-key_set")).to_have_text("No key needed")
    shot(page, "models")
    page.locator("#changelist-filter").get_by_role("link", name="Not set").click()
    expect(result_titles(page)).to_have_text(["cloud-model"])

    # Its own page says which variable is missing; Test connection says it too, and sends nothing.
    page.get_by_role("link", name="cloud-model").click()
    expect(page.locator(".field-api_key_status")).to_contain_text(f"{MISSING_KEY} is NOT set")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("ul.messagelist li.error")).to_contain_text(
        f"“cloud-model” failed: The API key is not configured: the environment variable {MISSING_KEY} is not set"
    )
    assert fake_upstream.chat_requests == []

    # A model the fake upstream serves answers.
    page.goto(f"{asgi_server.url}/admin/aimodels/aimodel/")
    page.get_by_role("link", name="fake-gpt").click()
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        re.compile(r"“fake-gpt” answered in \d+ ms and replied “OK”\.")
    )
    expect(page.get_by_role("heading", name="Change AI model")).to_be_visible()  # back on its page
    assert len(fake_upstream.chat_requests) == 1
    shot(page, "test-connection")
    assert page.problems == []


def test_a_user_who_is_not_staff_is_sent_to_the_admins_login(page: Page, asgi_server, browser_user, chat_model):
    log_in(page, asgi_server, browser_user)
    expect(page.locator("header.topbar").get_by_role("link", name="Admin")).to_have_count(0)

    page.goto(f"{asgi_server.url}/admin/")

    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    expect(page.locator(".errornote")).to_contain_text(
        f"You are authenticated as {browser_user.username}, but are not authorized to access this page."
    )
    expect(page.get_by_role("heading", name="Site administration")).to_have_count(0)
    shot(page, "not-staff")
