"""The conversations sidebar in a real Chromium against chatter under uvicorn (make test-browser):
rename, search, delete through the dialog, the list's next pages, and the drawer on a phone."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from aimodels.tests.factories import AIModelFactory
from bench.fake_upstream import FakeReply
from conversations.models import Conversation
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.views import SIDEBAR_PAGE_SIZE

pytestmark = [pytest.mark.browser]

SCREENS = Path("/tmp/screens")
PHONE = {"width": 360, "height": 740}


@pytest.fixture
def make(browser_user):
    """make(title, minutes_ago): a conversation of the browser's user, last active that long ago."""
    model = AIModelFactory(name="sidebar-model")
    now = timezone.now()

    def make_conversation(title: str, *, minutes_ago: float = 0, messages: tuple[str, ...] = ()) -> Conversation:
        conversation = ConversationFactory(user=browser_user, model=model, title=title)
        for text in messages:
            MessageFactory(conversation=conversation, content=text)
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now - timedelta(minutes=minutes_ago))
        return conversation

    return make_conversation


@pytest.fixture
def watched(page: Page):
    """The page, with every console error and JS dialog it shows recorded (a CSP violation is one)."""
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.problems = problems
    return page


def open_chat(page: Page, server, user, conversation: Conversation) -> None:
    log_in(page, server, user)
    page.goto(f"{server.url}{conversation.get_absolute_url()}")
    expect(page.locator("html[data-sidebar-ready][data-chat-ready]")).to_be_attached()


def row(page: Page, conversation: Conversation) -> Locator:
    return page.locator(f"#conversation-{conversation.public_id}")


def test_rename_in_the_sidebar_and_in_the_header(watched: Page, asgi_server, browser_user, make, tmp_path):
    page = watched
    other = make("Other", minutes_ago=5)
    shown = make("Shown")
    open_chat(page, asgi_server, browser_user, shown)
    sidebar, header = page.get_by_role("navigation", name="Conversations"), page.locator("#chat-title")

    # Another conversation, from its row: Enter saves; markup in a title stays text.
    row(page, other).get_by_role("button", name="Rename").click()
    field = row(page, other).get_by_label("Title")
    expect(field).to_be_focused()
    field.fill("Trip <b>Lisbon</b>")
    field.press("Enter")
    expect(row(page, other).locator(".item-title")).to_have_text("Trip <b>Lisbon</b>")
    expect(sidebar.locator("b")).to_have_count(0)
    expect(header.get_by_role("heading")).to_have_text("Shown")

    # The one on screen, from the header: a blank title is refused beside the field; Esc cancels.
    header.get_by_role("button", name="Rename").click()
    field = header.get_by_label("Title")
    field.fill("   ")
    field.press("Enter")
    expect(header.locator(".errorlist")).to_have_text("Give the conversation a title.")
    page.screenshot(path=str(tmp_path / "rename-refused.png"))
    page.problems.clear()  # the browser logs the deliberate 422 itself
    page.keyboard.press("Escape")
    expect(header.get_by_role("heading")).to_have_text("Shown")
    expect(header.get_by_role("button", name="Rename")).to_be_focused()

    # Saved from the header: the header, its row in the sidebar and the tab all say it.
    header.get_by_role("button", name="Rename").click()
    header.get_by_label("Title").fill("Lisbon, day one")
    header.get_by_label("Title").press("Enter")
    expect(header.get_by_role("heading")).to_have_text("Lisbon, day one")
    expect(row(page, shown).locator(".item-title")).to_have_text("Lisbon, day one")
    expect(page).to_have_title("Lisbon, day one · chatter")

    # Saved from its row: the header follows.
    row(page, shown).get_by_role("button", name="Rename").click()
    row(page, shown).get_by_label("Title").fill("Lisbon, day two")
    row(page, shown).get_by_role("button", name="Save").click()
    expect(header.get_by_role("heading")).to_have_text("Lisbon, day two")
    expect(row(page, shown).locator(".item-title")).to_have_text("Lisbon, day two")
    page.screenshot(path=str(tmp_path / "renamed.png"))

    page.reload()
    expect(sidebar.locator(".item-title")).to_have_text(["Lisbon, day two", "Trip <b>Lisbon</b>"])
    assert page.problems == []


def test_search_filters_the_list_and_marks_the_matches(watched: Page, asgi_server, browser_user, make, tmp_path):
    page = watched
    make("<img src=x onerror=alert(1)> Lisbon tips", minutes_ago=3)
    make("Holiday", minutes_ago=2, messages=("Is <b>Lisbon</b> warm in May?",))
    shown = make("Paris")
    open_chat(page, asgi_server, browser_user, shown)
    items = page.locator("#conversation-list .item-title")
    expect(items).to_have_count(3)

    page.get_by_role("searchbox", name="Search").fill("lisbon")
    expect(items).to_have_text(["Holiday", "<img src=x onerror=alert(1)> Lisbon tips"])
    expect(page.locator("#conversation-list mark")).to_have_text(["Lisbon", "Lisbon"])
    expect(page.locator("#conversation-list .item-snippet")).to_have_text("Is <b>Lisbon</b> warm in May?")
    expect(page.locator("#conversation-list img, #conversation-list b")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "search.png"))

    page.get_by_role("searchbox", name="Search").fill("no such words")
    expect(page.locator("#conversation-list .hint")).to_have_text("No conversation matches “no such words”.")

    page.get_by_role("searchbox", name="Search").fill("")
    expect(items).to_have_text(["Paris", "Holiday", "<img src=x onerror=alert(1)> Lisbon tips"])
    expect(page.locator("#conversation-list mark")).to_have_count(0)
    expect(page.locator("#conversation-list a[aria-current=page]")).to_have_text("Paris")
    assert page.problems == []


def test_delete_through_the_dialog(watched: Page, asgi_server, browser_user, make, tmp_path):
    page = watched
    make("Oldest", minutes_ago=20)
    doomed = make("Doomed", minutes_ago=10, messages=("one", "two"))
    shown = make("Shown")
    open_chat(page, asgi_server, browser_user, shown)
    dialog = page.get_by_role("dialog")

    # Asked first; Esc keeps it, and the focus goes back to where it was.
    row(page, doomed).get_by_role("button", name="Delete").click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Delete “Doomed”?")
    expect(dialog).to_contain_text("Its 2 messages will be deleted with it.")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.screenshot(path=str(tmp_path / "delete-dialog.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(row(page, doomed)).to_be_visible()
    expect(row(page, doomed).get_by_role("button", name="Delete")).to_be_focused()

    # Confirmed: its row goes; the page stays.
    row(page, doomed).get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(row(page, doomed)).to_have_count(0)
    expect(dialog).to_have_count(0)
    expect(page).to_have_url(re.compile(re.escape(shown.get_absolute_url()) + "$"))
    assert not Conversation.objects.filter(pk=doomed.pk).exists()

    # The one on screen: the page moves to the newest remaining one.
    row(page, shown).get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#chat-title h1")).to_have_text("Oldest")
    expect(page.locator("#conversation-list .item-title")).to_have_text(["Oldest"])
    page.screenshot(path=str(tmp_path / "deleted.png"))
    assert page.problems == []


def test_scrolling_the_list_loads_the_next_pages(watched: Page, asgi_server, browser_user, make, tmp_path):
    page = watched
    total = SIDEBAR_PAGE_SIZE + 12
    for n in range(total):
        make(f"Conversation {n}", minutes_ago=n + 1)
    shown = make("Shown")
    open_chat(page, asgi_server, browser_user, shown)
    items = page.locator("#conversation-list .conversation-item")
    expect(items).to_have_count(SIDEBAR_PAGE_SIZE)

    items.last.scroll_into_view_if_needed()
    expect(items).to_have_count(total + 1)
    expect(items.last.locator(".item-title")).to_have_text(f"Conversation {total - 1}")
    expect(page.locator("#conversation-list .more")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "scrolled.png"))
    assert page.problems == []


def test_on_a_phone_the_sidebar_is_a_drawer(watched: Page, asgi_server, browser_user, make, tmp_path):
    page = watched
    page.set_viewport_size(PHONE)
    busy = make("Rome", minutes_ago=8)
    MessageFactory(conversation=busy, pending=True)  # its reply is being written
    target = make("Lisbon", minutes_ago=5)
    shown = make("Paris")
    open_chat(page, asgi_server, browser_user, shown)
    sidebar = page.get_by_role("navigation", name="Conversations")
    toggle = page.get_by_role("button", name="Conversations", exact=True)

    # Closed: the chat has the screen, the button says what it controls.
    expect(sidebar).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_have_attribute("aria-controls", "sidebar")
    expect(page.get_by_label("Message")).to_be_visible()
    assert page.locator("#chat-title").bounding_box()["y"] < 120  # no box above the chat

    # Open, then closed by Esc: the focus goes back to the button.
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar.get_by_role("link", name="Paris")).to_be_focused()
    expect(row(page, busy).locator(".reply-marker")).to_be_visible()
    expect(row(page, busy).locator(".reply-marker")).to_have_text("reply being written")  # visually hidden
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / "sidebar-drawer-phone.png"), animations="disabled")
    page.screenshot(path=str(tmp_path / "drawer-open.png"), animations="disabled")
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()

    # Closed by a click outside it.
    toggle.click()
    expect(sidebar).to_be_visible()
    page.mouse.click(PHONE["width"] - 10, PHONE["height"] // 2)
    expect(sidebar).to_be_hidden()
    page.screenshot(path=str(SCREENS / "sidebar-drawer-phone-closed.png"), animations="disabled")

    # Closed by choosing a conversation, which opens.
    toggle.click()
    sidebar.get_by_role("link", name="Lisbon").click()
    expect(page.locator("#chat-title h1")).to_have_text("Lisbon")
    expect(page).to_have_url(re.compile(re.escape(target.get_absolute_url()) + "$"))
    expect(sidebar).to_be_hidden()
    assert page.problems == []


def test_on_a_wide_screen_the_sidebar_is_a_column(page: Page, asgi_server, browser_user, make, tmp_path):
    shown = make("Paris")
    open_chat(page, asgi_server, browser_user, shown)

    expect(page.get_by_role("navigation", name="Conversations")).to_be_visible()
    expect(page.get_by_role("button", name="Conversations", exact=True)).to_be_hidden()
    expect(page.get_by_role("link", name="New chat")).to_be_visible()
    nav, chat = page.locator("#sidebar").bounding_box(), page.locator(".chat-main").bounding_box()
    assert nav["x"] + nav["width"] <= chat["x"] + 1  # side by side
    page.screenshot(path=str(tmp_path / "wide.png"))


def test_escape_closes_a_rename_or_the_drawer_before_it_stops_a_reply(
    watched: Page, asgi_server, browser_user, chat_model, fake_upstream
):
    page = watched
    page.set_viewport_size(PHONE)
    fake_upstream.script(FakeReply(text="one two three four five", hang_after=2))  # then it stays open
    log_in(page, asgi_server, browser_user)
    page.get_by_label("Message").fill("Take your time")
    page.keyboard.press("Enter")
    expect(page.locator("article.bubble.assistant .stream .content.plain")).to_contain_text("one two")
    header, stop = page.locator("#chat-title"), page.locator("#composer").get_by_role("button", name="Stop")

    header.get_by_role("button", name="Rename").click()
    header.get_by_label("Title").press("Escape")
    expect(header.get_by_label("Title")).to_have_count(0)
    page.get_by_role("button", name="Conversations", exact=True).click()
    expect(page.get_by_role("navigation", name="Conversations")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("navigation", name="Conversations")).to_be_hidden()
    expect(stop).to_be_visible()  # the reply is still being written

    page.keyboard.press("Escape")  # nothing else open: now Esc stops the reply
    expect(page.locator("article.bubble.assistant.status-interrupted")).to_be_visible()
    assert page.problems == []
