"""A user who never touches the mouse, in a real Chromium against chatter under uvicorn (make
test-browser): Tab from the start of the page through named controls to the Message box, a model picked
with the arrow keys, Shift+Enter for a new line, Enter to send, Esc to stop. No click, no focus() call:
keys only. Every wait is for a state."""

import pytest
from playwright.sync_api import Locator, Page, expect

from aimodels.tests.factories import AIModelFactory
from bench.fake_upstream import FakeReply
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.tests.test_browser_sidebar import SCREENS, watched  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser]

LONG_REPLY = " ".join(f"word{n}" for n in range(400))
NEUTRAL_BORDER = "rgb(221, 225, 232)"  # --line of the light theme (a failed reply's is --error, red)
FOCUS_OUTSIDE_THE_PAGE = "!document.activeElement || document.activeElement === document.body"


@pytest.fixture
def other_model(chat_model):
    return AIModelFactory(
        name="other-model", provider="openai_compatible", api_endpoint=chat_model.api_endpoint,
        deployment_name="other-deployment", api_key_env="", description="The other one.",
    )


@pytest.fixture
def trip(browser_user, chat_model, other_model):
    """A conversation with one finished reply (it has a Copy button), on fake-gpt."""
    conversation = ConversationFactory(user=browser_user, model=chat_model, title="Trip planning", system_prompt="")
    MessageFactory(conversation=conversation, content="Where should we go?")
    MessageFactory(conversation=conversation, reply=True, content="Lisbon is lovely in May.")
    return conversation


def open_by_keyboard(page: Page, server, user, conversation) -> None:
    log_in(page, server, user)
    page.goto(f"{server.url}{conversation.get_absolute_url()}")
    expect(page.locator("html[data-sidebar-ready][data-chat-ready]")).to_be_attached()


def enter_the_page_from_its_start(page: Page) -> None:
    """The page opens with the Message box focused (autofocus): Tab past Send leaves the page, as it
    does for the browser's own toolbar; the next Tab comes in at the start of the page."""
    message = page.get_by_role("textbox", name="Message")
    expect(message).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#composer").get_by_role("button", name="Send")).to_be_focused()
    page.keyboard.press("Tab")
    page.wait_for_function(FOCUS_OUTSIDE_THE_PAGE)
    page.keyboard.press("Tab")


def controls_in_tab_order(page: Page, user, conversation) -> list[Locator]:
    """What a Tab key stops at on a conversation's page, from the top, each found by its role and name."""
    topbar = page.locator("header.topbar")
    sidebar = page.get_by_role("navigation", name="Conversations")
    row = page.locator(f"#conversation-{conversation.public_id}")
    header = page.locator("#chat-title")
    log = page.get_by_role("log", name="Conversation")
    return [
        page.get_by_role("link", name="Skip to the conversation"),
        topbar.get_by_role("link", name="chatter", exact=True),
        topbar.get_by_role("group", name="Theme").get_by_role("button", name="Light"),
        topbar.get_by_role("group", name="Theme").get_by_role("button", name="Dark"),
        topbar.get_by_role("group", name="Theme").get_by_role("button", name="System"),
        topbar.get_by_role("link", name=user.username),
        topbar.get_by_role("button", name="Log out"),
        sidebar.get_by_role("link", name="New chat"),
        sidebar.get_by_role("searchbox", name="Search"),
        sidebar.get_by_role("link", name=conversation.title),
        row.get_by_role("button", name="Pin"),
        row.get_by_role("button", name="Archive"),
        row.get_by_role("button", name="Rename"),
        row.get_by_role("button", name="Delete"),
        sidebar.get_by_role("link", name="Archived"),
        header.get_by_role("button", name="Rename"),
        header.locator("summary", has_text="More actions for this conversation"),  # the menu: a disclosure
        page.locator("#system-prompt summary", has_text="System prompt"),  # a disclosure: named by its text
        log.get_by_role("button", name="Edit"),
        log.get_by_role("button", name="Copy", exact=True),
        log.locator("summary", has_text="Regenerate"),
        page.get_by_role("combobox", name="Model"),
        page.get_by_role("checkbox", name="Web lookups"),
        page.get_by_role("textbox", name="Message"),
    ]


def test_tab_from_the_start_of_the_page_reaches_the_skip_link_then_named_controls_in_order(
    watched: Page, asgi_server, browser_user, trip
):
    page = watched
    open_by_keyboard(page, asgi_server, browser_user, trip)
    stops = controls_in_tab_order(page, browser_user, trip)

    enter_the_page_from_its_start(page)

    expect(stops[0]).to_be_focused()
    expect(stops[0]).to_be_in_viewport()  # shown while it has the focus
    for stop in stops[1:]:
        page.keyboard.press("Tab")
        expect(stop).to_be_focused()
        expect(stop).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.locator("#composer").get_by_role("button", name="Send")).to_be_focused()
    assert page.problems == []


def test_keys_only_pick_a_model_write_two_lines_send_keep_typing_and_stop_the_reply(
    watched: Page, asgi_server, browser_user, trip, fake_upstream
):
    page = watched
    page.emulate_media(color_scheme="light")
    fake_upstream.script(FakeReply(text=LONG_REPLY, hang_after=5))  # five words, then silent until stopped
    open_by_keyboard(page, asgi_server, browser_user, trip)
    message, model = page.get_by_role("textbox", name="Message"), page.get_by_role("combobox", name="Model")
    composer = page.locator("#composer")
    enter_the_page_from_its_start(page)
    for _ in controls_in_tab_order(page, browser_user, trip)[1:]:
        page.keyboard.press("Tab")
    expect(message).to_be_focused()

    # Shift+Enter is a new line, not a send.
    page.keyboard.type("Plan a day in Lisbon")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("with two children")
    expect(message).to_have_value("Plan a day in Lisbon\nwith two children")
    expect(page.locator("article.bubble")).to_have_count(2)  # nothing sent yet

    # Back to the picker (past the lookups' switch), the next model with the arrow key, and back to the box.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(model).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(model.locator("option:checked")).to_have_text("other-model")
    expect(page.locator("#model-description")).to_have_text("The other one.")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(message).to_be_focused()

    # Enter sends; what is typed while it goes out stays in the box, which keeps the focus.
    page.keyboard.press("Enter")
    page.keyboard.type("And a museum?")

    expect(page.locator("article.bubble.user .content").last).to_have_text("Plan a day in Lisbon\nwith two children")
    expect(page.locator("article.bubble.assistant .stream .content.plain")).to_contain_text("word3")
    expect(composer.get_by_role("button", name="Stop")).to_be_visible()
    expect(composer.get_by_role("button", name="Send")).to_be_hidden()
    expect(message).to_be_focused()
    expect(message).to_have_value("And a museum?")
    sent = fake_upstream.chat_requests[-1].body
    assert sent["model"] == "other-deployment"
    assert sent["messages"][-1] == {"role": "user", "content": "Plan a day in Lisbon\nwith two children"}

    # Esc stops it: a neutral note, no error; the box keeps its text and the focus.
    page.keyboard.press("Escape")

    stopped = page.locator("article.bubble.assistant.status-interrupted")
    expect(stopped.locator(".note.stopped")).to_have_text("Stopped.")
    expect(stopped.locator(".problem")).to_have_count(0)
    expect(stopped).to_have_css("border-top-color", NEUTRAL_BORDER)  # not the red of a failure
    expect(stopped.locator(".who")).to_have_text("other-model")
    expect(stopped).to_contain_text("word0 word1 word2 word3")
    expect(composer.get_by_role("button", name="Send")).to_be_visible()
    expect(message).to_be_focused()
    expect(message).to_have_value("And a museum?")
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / "keyboard.png"))
    assert page.problems == []
