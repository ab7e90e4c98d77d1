"""chatter on a phone (360 × 740) in a real Chromium against chatter under uvicorn (make test-browser):
nothing scrolls sideways, and the theme switch is within reach (in the conversations drawer on the
chat page, in the top bar elsewhere). Every wait is for a state."""

import pytest
from playwright.sync_api import Page, expect

from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.tests.test_browser_sidebar import PHONE, SCREENS, watched  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser]

DARK_BG, LIGHT_BG = "rgb(18, 21, 27)", "rgb(246, 247, 249)"
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"
DUPLICATE_IDS = """() => { const seen = new Set(), twice = [];
  document.querySelectorAll("[id]").forEach(e => seen.has(e.id) ? twice.push(e.id) : seen.add(e.id));
  return twice; }"""
WIDE_REPLY = (
    "A long line:\n\n```python\nprint('" + "x" * 300 + "')\n```\n\n"
    "and a long word: " + "y" * 200
)


@pytest.fixture
def phone(watched: Page, browser_user, chat_model):
    """A phone-sized page, and a user with a long name and a conversation with a wide reply."""
    watched.set_viewport_size(PHONE)
    browser_user.username = "margaret-hamilton-apollo-guidance"
    browser_user.email = "margaret-hamilton-apollo-guidance@example.com"
    browser_user.save()
    conversation = ConversationFactory(user=browser_user, model=chat_model, title="Wide things", system_prompt="")
    MessageFactory(conversation=conversation, content="Show me something wide")
    MessageFactory(conversation=conversation, reply=True, content=WIDE_REPLY)
    watched.conversation = conversation
    return watched


def background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.documentElement).backgroundColor")


def open_chat(page: Page, server, user) -> None:
    log_in(page, server, user)
    page.goto(f"{server.url}{page.conversation.get_absolute_url()}")
    expect(page.locator("html[data-sidebar-ready][data-chat-ready]")).to_be_attached()


def test_on_a_phone_the_drawer_has_the_theme_switch_and_dark_stays_after_a_reload(
    phone: Page, asgi_server, browser_user
):
    page = phone
    page.emulate_media(color_scheme="light")
    open_chat(page, asgi_server, browser_user)
    topbar = page.locator("header.topbar")
    sidebar = page.get_by_role("navigation", name="Conversations")

    # The top bar fits in one row: no theme buttons there; the account's link and Log out are on screen.
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    expect(topbar.get_by_role("group", name="Theme")).to_be_hidden()
    expect(topbar.get_by_role("link", name=browser_user.username)).to_be_in_viewport()
    expect(topbar.get_by_role("button", name="Log out")).to_be_in_viewport()
    assert topbar.bounding_box()["height"] < 60

    page.get_by_role("button", name="Conversations", exact=True).click()
    theme = sidebar.get_by_role("group", name="Theme")
    expect(theme).to_be_visible()
    expect(theme).to_be_in_viewport()
    expect(theme.get_by_role("button", name="System")).to_have_attribute("aria-pressed", "true")

    theme.get_by_role("button", name="Dark").click()

    expect(page.locator("html[data-theme=dark]")).to_be_attached()
    expect(theme.get_by_role("button", name="Dark")).to_have_attribute("aria-pressed", "true")
    expect(theme.get_by_role("button", name="System")).to_have_attribute("aria-pressed", "false")
    assert background(page) == DARK_BG
    # The top bar's copy (hidden here) says the same, and the two keep their own ids.
    expect(topbar.get_by_role("button", name="Dark", include_hidden=True)).to_have_attribute("aria-pressed", "true")
    assert page.evaluate(DUPLICATE_IDS) == []
    expect(sidebar).to_be_visible()  # choosing a theme leaves the drawer open
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / "phone-theme.png"), animations="disabled")

    page.reload()
    expect(page.locator("html[data-theme=dark]")).to_be_attached()
    assert background(page) == DARK_BG
    page.get_by_role("button", name="Conversations", exact=True).click()
    expect(sidebar.get_by_role("group", name="Theme").get_by_role("button", name="Dark")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert page.evaluate(DUPLICATE_IDS) == []
    assert page.problems == []


def test_on_a_wide_screen_the_theme_switch_is_in_the_top_bar_only(phone: Page, asgi_server, browser_user):
    page = phone
    page.set_viewport_size({"width": 1280, "height": 800})
    open_chat(page, asgi_server, browser_user)

    expect(page.locator("header.topbar").get_by_role("group", name="Theme")).to_be_visible()
    expect(page.get_by_role("group", name="Theme")).to_have_count(1)  # the drawer's copy is not shown


def test_at_360_px_the_chat_and_the_account_page_never_scroll_sideways(phone: Page, asgi_server, browser_user):
    page = phone
    page.emulate_media(color_scheme="dark")
    open_chat(page, asgi_server, browser_user)
    expect(page.locator("article.bubble.assistant pre")).to_be_visible()
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.screenshot(path=str(SCREENS / "phone-chat.png"))

    page.get_by_role("link", name=browser_user.username).click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    topbar = page.locator("header.topbar")
    expect(topbar.get_by_role("button", name="Log out")).to_be_in_viewport()

    # No drawer here: the top bar keeps the theme switch, on screen and working.
    theme = topbar.get_by_role("group", name="Theme")
    expect(theme).to_be_in_viewport()
    theme.get_by_role("button", name="Light").click()
    expect(page.locator("html[data-theme=light]")).to_be_attached()
    assert background(page) == LIGHT_BG
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.screenshot(path=str(SCREENS / "phone-account.png"))
    assert page.problems == []
