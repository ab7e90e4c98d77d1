"""Pin and archive in a real Chromium against chatter under uvicorn (make test-browser): pin from the
header's menu and unpin from the row, archive, the Archived page, restore and delete there."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from aimodels.tests.factories import AIModelFactory
from conversations.models import Conversation
from conversations.tests.factories import ConversationFactory
from conversations.views import ARCHIVED_PAGE_SIZE
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.tests.test_browser_sidebar import open_chat, row, watched  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser]


@pytest.fixture
def make(browser_user):
    """make(title, minutes_ago): a conversation of the browser's user, last active that long ago."""
    model = AIModelFactory(name="pin-model")
    now = timezone.now()

    def make_conversation(title: str, *, minutes_ago: float = 0) -> Conversation:
        conversation = ConversationFactory(user=browser_user, model=model, title=title)
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now - timedelta(minutes=minutes_ago))
        return conversation

    return make_conversation


def menu_action(page: Page, name: str) -> None:
    """Open the header's menu and press `name` in it."""
    page.locator("#conversation-actions > summary").click()
    page.locator("#conversation-actions .menu").get_by_role("button", name=name, exact=True).click()


def test_pin_from_the_header_menu_moves_it_to_the_top_and_unpin_from_its_row(
    watched: Page, asgi_server, browser_user, make, tmp_path
):
    page = watched
    make("Newer")
    make("Older", minutes_ago=5)
    shown = make("Shown", minutes_ago=10)
    open_chat(page, asgi_server, browser_user, shown)
    items = page.locator("#conversation-list .item-title")
    expect(items).to_have_text(["Newer", "Older", "Shown"])

    menu_action(page, "Pin")
    expect(items).to_have_text(["Shown", "Newer", "Older"])
    expect(page.locator("#conversation-list .list-heading")).to_have_text(["Pinned", "Recent"])
    expect(row(page, shown).locator("a[aria-current=page]")).to_be_attached()  # still the one on screen
    expect(page.locator("#conversation-actions .menu button").first).to_have_text("Unpin")  # the menu, closed anew
    page.screenshot(path=str(tmp_path / "pinned.png"))

    page.reload()
    expect(items).to_have_text(["Shown", "Newer", "Older"])

    row(page, shown).get_by_role("button", name="Unpin").click()
    expect(items).to_have_text(["Newer", "Older", "Shown"])
    expect(page.locator("#conversation-list .list-heading")).to_have_count(0)
    expect(page.locator("#conversation-actions .menu button").first).to_have_text("Pin")
    assert page.problems == []


def test_archive_leaves_the_sidebar_for_the_archived_page_and_restore_brings_it_back(
    watched: Page, asgi_server, browser_user, make, tmp_path
):
    page = watched
    kept = make("Kept", minutes_ago=20)
    other = make("Other", minutes_ago=10)
    shown = make("Shown")
    open_chat(page, asgi_server, browser_user, shown)
    items = page.locator("#conversation-list .item-title")
    notice = page.locator("#chat-title .archived-notice")

    # From the header's menu: out of the list; the page says so and offers Restore.
    menu_action(page, "Archive")
    expect(items).to_have_text(["Other", "Kept"])
    expect(notice).to_contain_text("This conversation is archived")
    page.screenshot(path=str(tmp_path / "archived-notice.png"))

    # Restore from the notice: back in its place.
    notice.get_by_role("button", name="Restore").click()
    expect(notice).to_have_count(0)
    expect(items).to_have_text(["Shown", "Other", "Kept"])

    # From the rows: both leave the list.
    menu_action(page, "Archive")
    row(page, other).get_by_role("button", name="Archive").click()
    expect(items).to_have_text(["Kept"])

    # The Archived page, from the sidebar's link: the last archived first.
    page.get_by_role("navigation", name="Conversations").get_by_role("link", name="Archived").click()
    expect(page.locator("html[data-sidebar-ready]")).to_be_attached()
    archived = page.get_by_role("list", name="Archived conversations")
    expect(archived.locator(".item-title")).to_have_text(["Other", "Shown"])
    expect(page.locator(".archived-empty")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "archived-page.png"))

    # Restore: off this page, into the sidebar.
    row(page, shown).get_by_role("button", name="Restore").click()
    expect(archived.locator(".item-title")).to_have_text(["Other"])
    expect(items).to_have_text(["Shown", "Kept"])

    # Delete, through the sidebar's dialog: gone, and the page says it has nothing left.
    row(page, other).get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(archived.locator("li")).to_have_count(0)
    expect(page.locator(".archived-empty")).to_be_visible()
    expect(items).to_have_text(["Shown", "Kept"])
    assert not Conversation.objects.filter(pk=other.pk).exists()
    kept.refresh_from_db()
    assert kept.archived_at is None
    assert page.problems == []


def test_the_archived_page_loads_older_archived_conversations_as_it_is_scrolled(
    watched: Page, asgi_server, browser_user, make, tmp_path
):
    page = watched
    count = ARCHIVED_PAGE_SIZE + 5
    now = timezone.now()
    for n in range(count):
        Conversation.objects.filter(pk=make(f"Archived {n}").pk).update(archived_at=now - timedelta(minutes=n))
    log_in(page, asgi_server, browser_user)
    page.goto(f"{asgi_server.url}{reverse('conversations:archived')}")
    expect(page.locator("html[data-sidebar-ready]")).to_be_attached()
    titles = page.get_by_role("list", name="Archived conversations").locator(".archived-item .item-title")
    expect(titles).to_have_count(ARCHIVED_PAGE_SIZE)

    page.locator(".archived-list li.more").scroll_into_view_if_needed()

    expect(titles).to_have_count(count)
    expect(titles.last).to_have_text(f"Archived {count - 1}")
    page.screenshot(path=str(tmp_path / "archived-scrolled.png"))
    expect(page.locator(".archived-list li.more")).to_have_count(0)
    assert page.problems == []


def test_from_the_keyboard_the_focus_stays_with_a_pinned_row_and_moves_on_from_an_archived_one(
    watched: Page, asgi_server, browser_user, make
):
    page = watched
    first = make("First")
    second = make("Second", minutes_ago=5)
    third = make("Third", minutes_ago=10)
    fourth = make("Fourth", minutes_ago=15)
    open_chat(page, asgi_server, browser_user, first)
    items = page.locator("#conversation-list .item-title")

    # Pinned: the row moves to the top, and its button (now Unpin) keeps the focus.
    row(page, second).get_by_role("button", name="Pin").focus()
    page.keyboard.press("Enter")
    expect(items).to_have_text(["Second", "First", "Third", "Fourth"])
    expect(row(page, second).get_by_role("button", name="Unpin")).to_be_focused()

    # Archived: the focus goes to the row that took its place.
    page.keyboard.press("Tab")
    expect(row(page, second).get_by_role("button", name="Archive")).to_be_focused()
    page.keyboard.press("Enter")
    expect(items).to_have_text(["First", "Third", "Fourth"])
    expect(row(page, first).locator(".item-link")).to_be_focused()
    row(page, third).get_by_role("button", name="Archive").focus()
    page.keyboard.press("Enter")
    expect(items).to_have_text(["First", "Fourth"])
    expect(row(page, fourth).locator(".item-link")).to_be_focused()

    # The last row archived: to the row above it; none left: to the search box.
    row(page, fourth).get_by_role("button", name="Archive").focus()
    page.keyboard.press("Enter")
    expect(items).to_have_text(["First"])
    expect(row(page, first).locator(".item-link")).to_be_focused()
    row(page, first).get_by_role("button", name="Archive").focus()
    page.keyboard.press("Enter")
    expect(items).to_have_count(0)
    expect(page.locator("#conversation-search")).to_be_focused()
    assert page.problems == []


def test_from_the_keyboard_the_header_menus_pin_archive_and_restore_give_the_focus_back_to_the_menu(
    watched: Page, asgi_server, browser_user, make
):
    page = watched
    shown = make("Shown")
    open_chat(page, asgi_server, browser_user, shown)
    summary = page.locator("#conversation-actions > summary")

    def from_the_menu(name: str) -> None:
        summary.focus()
        page.keyboard.press("Enter")  # opens the menu
        page.locator("#conversation-actions .menu").get_by_role("button", name=name, exact=True).focus()
        page.keyboard.press("Enter")

    from_the_menu("Pin")
    expect(page.locator("#conversation-list .list-heading")).to_have_text(["Pinned"])
    expect(page.locator("#conversation-actions .menu button").first).to_have_text("Unpin")  # a new header
    expect(summary).to_be_focused()
    expect(page.locator("#conversation-actions")).not_to_have_attribute("open", "")

    from_the_menu("Archive")
    restore = page.locator(".archived-notice").get_by_role("button", name="Restore")
    expect(restore).to_be_visible()
    expect(summary).to_be_focused()

    restore.focus()
    page.keyboard.press("Enter")
    expect(page.locator(".archived-notice")).to_have_count(0)
    expect(summary).to_be_focused()
    assert page.problems == []
