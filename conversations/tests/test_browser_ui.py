"""Copy buttons, the theme toggle, keyboard and screen-reader access, and following the stream, in a
real Chromium against chatter under uvicorn (make test-browser). Every wait is for a state."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bench.fake_upstream import FakeReply
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser]

SCREENS = Path("/tmp/screens")
SOURCE = (
    "Two ways:\n\n"
    "```python\n"
    "print('<b>first</b>')\n"
    "```\n\n"
    "and **also**\n\n"
    "```bash\n"
    "echo \"second\" && ls <dir>\n"
    "```\n"
)
AT_END = """() => { const l = document.getElementById("message-list");
                    return l.scrollHeight - l.scrollTop - l.clientHeight < 2; }"""
LONG = "\n".join(f"line {n}" for n in range(400))  # far taller than the list


@pytest.fixture
def finished_reply(browser_user, chat_model):
    conversation = ConversationFactory(user=browser_user, model=chat_model, system_prompt="")
    MessageFactory(conversation=conversation, content="Show me")
    MessageFactory(conversation=conversation, reply=True, content=SOURCE)
    return conversation


@pytest.fixture
def clipboard(page: Page, asgi_server):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server.url)
    return lambda: page.evaluate("navigator.clipboard.readText()")


def open_conversation(page: Page, server, user, conversation) -> None:
    log_in(page, server, user)
    page.goto(f"{server.url}{conversation.get_absolute_url()}")
    expect(page.locator("html[data-chat-ready]")).to_be_attached()


def send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()


def scroll_up(page: Page) -> None:
    """As a user does: the wheel, over the list."""
    page.locator("#message-list").hover()
    page.mouse.wheel(0, -3000)


# Copy ---------------------------------------------------------------------------------------------
def test_copy_puts_the_replys_markdown_source_on_the_clipboard(
    page: Page, asgi_server, browser_user, finished_reply, clipboard
):
    open_conversation(page, asgi_server, browser_user, finished_reply)

    page.locator("article.bubble.assistant").get_by_role("button", name="Copy", exact=True).click()

    expect(page.locator("article.bubble.assistant button.copy-reply")).to_have_text("Copied")
    assert clipboard() == SOURCE
    page.screenshot(path=str(SCREENS / "copy.png"))


def test_copy_code_puts_that_blocks_code_on_the_clipboard(
    page: Page, asgi_server, browser_user, finished_reply, clipboard
):
    open_conversation(page, asgi_server, browser_user, finished_reply)
    second = page.locator("article.bubble.assistant .code-block").nth(1)
    expect(second.locator(".code-lang")).to_have_text("bash")

    second.get_by_role("button", name="Copy code").click()

    expect(second.get_by_role("button")).to_have_text("Copied")
    assert clipboard() == 'echo "second" && ls <dir>'


def test_copied_is_shown_and_announced_then_the_button_is_back(
    page: Page, asgi_server, browser_user, finished_reply, clipboard
):
    open_conversation(page, asgi_server, browser_user, finished_reply)
    button = page.locator("article.bubble.assistant button.copy-reply")

    button.click()

    expect(button).to_have_text("Copied")
    expect(page.get_by_role("status").filter(has_text="Reply copied to the clipboard.")).to_be_attached()
    expect(button).to_have_text("Copy")  # after its 2 seconds
    expect(page.locator("#copy-status")).to_have_text("")


def test_a_reply_that_just_streamed_in_has_its_copy_buttons(page: Page, asgi_server, browser_user, chat_model, fake_upstream):
    fake_upstream.script(FakeReply(text=SOURCE))
    log_in(page, asgi_server, browser_user)

    send(page, "Show me")

    final = page.locator("article.bubble.assistant.status-complete")
    expect(final.get_by_role("button", name="Copy code")).to_have_count(2)
    expect(final.get_by_role("button", name="Copy", exact=True)).to_be_visible()


# Light and dark -----------------------------------------------------------------------------------
def background(page: Page) -> str:
    return page.evaluate("getComputedStyle(document.documentElement).backgroundColor")


def test_the_theme_follows_the_system_until_the_user_picks_one_and_stays_picked(
    page: Page, asgi_server, browser_user, finished_reply
):
    page.emulate_media(color_scheme="dark")
    open_conversation(page, asgi_server, browser_user, finished_reply)
    theme = page.get_by_role("group", name="Theme")
    expect(page.locator("html")).to_have_attribute("data-theme", "system")
    assert background(page) == "rgb(18, 21, 27)"  # the dark palette, from the media query
    page.screenshot(path=str(SCREENS / "dark-mode.png"))

    theme.get_by_role("button", name="Light").click()

    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    expect(theme.get_by_role("button", name="Light")).to_have_attribute("aria-pressed", "true")
    assert background(page) == "rgb(246, 247, 249)"
    assert page.evaluate("getComputedStyle(document.documentElement).colorScheme") == "light"  # scrollbars too
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert background(page) == "rgb(246, 247, 249)"

    page.get_by_role("group", name="Theme").get_by_role("button", name="System").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "system")
    assert background(page) == "rgb(18, 21, 27)"


def test_dark_chosen_on_a_light_system_is_dark(page: Page, asgi_server, browser_user, finished_reply):
    page.emulate_media(color_scheme="light")
    open_conversation(page, asgi_server, browser_user, finished_reply)

    page.get_by_role("group", name="Theme").get_by_role("button", name="Dark").click()

    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert background(page) == "rgb(18, 21, 27)"
    page.screenshot(path=str(SCREENS / "dark-chosen.png"))


# Access -------------------------------------------------------------------------------------------
def test_the_skip_link_is_the_first_stop_and_goes_to_the_conversation(
    page: Page, asgi_server, browser_user, finished_reply
):
    open_conversation(page, asgi_server, browser_user, finished_reply)  # the composer has the focus
    page.get_by_role("link", name="chatter").focus()  # the top bar's first link

    page.keyboard.press("Shift+Tab")

    skip = page.get_by_role("link", name="Skip to the conversation")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # shown while it has the focus
    page.keyboard.press("Enter")
    expect(page.locator("#message-list")).to_be_focused()


def test_nothing_comes_before_the_skip_link(page: Page, asgi_server, browser_user, finished_reply):
    open_conversation(page, asgi_server, browser_user, finished_reply)
    page.get_by_role("link", name="Skip to the conversation").focus()

    page.keyboard.press("Shift+Tab")

    # Out of the page: nothing focusable comes earlier.
    page.wait_for_function("!document.activeElement || document.activeElement === document.body")


def test_every_control_has_its_name(page: Page, asgi_server, browser_user, finished_reply):
    open_conversation(page, asgi_server, browser_user, finished_reply)

    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    expect(page.get_by_role("link", name="New chat")).to_be_visible()
    expect(page.get_by_role("button", name="Copy", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Copy code")).to_have_count(2)
    expect(page.get_by_role("button", name="Rename").first).to_be_attached()
    expect(page.get_by_role("button", name="Delete").first).to_be_attached()
    expect(page.get_by_role("searchbox", name="Search")).to_be_visible()
    log = page.get_by_role("log", name="Conversation")
    expect(log).to_have_attribute("aria-live", "polite")


def test_the_reply_being_written_is_busy_and_stop_is_named(page: Page, asgi_server, browser_user, chat_model, fake_upstream):
    fake_upstream.script(FakeReply(text=" ".join(f"word{n}" for n in range(300)), hang_after=5))  # then silent
    log_in(page, asgi_server, browser_user)

    send(page, "Talk for a while")

    expect(page.locator("#message-list .stream .content.plain")).to_contain_text("word2")
    expect(page.locator("#message-list .stream")).to_have_attribute("aria-busy", "true")
    page.get_by_role("button", name="Stop").first.click()
    expect(page.locator("article.bubble.assistant.status-interrupted")).to_be_visible()
    expect(page.locator("#message-list [aria-busy]")).to_have_count(0)  # the finished bubble is read, once


# Following the stream -----------------------------------------------------------------------------
def test_scrolling_up_stops_following_and_jump_to_newest_brings_the_end_back(
    page: Page, asgi_server, browser_user, chat_model, fake_upstream
):
    fake_upstream.script(FakeReply(text=LONG, delay=0.03))
    log_in(page, asgi_server, browser_user)
    send(page, "Count")
    content = page.locator("#message-list .stream .content.plain")
    expect(content).to_contain_text("line 40")
    page.wait_for_function(AT_END)  # following so far
    jump = page.get_by_role("button", name="Jump to newest")
    expect(jump).to_be_hidden()

    scroll_up(page)

    expect(jump).to_be_visible()
    top = page.locator("#message-list").evaluate("l => l.scrollTop")
    expect(content).to_contain_text("line 80")  # more came in ...
    assert page.locator("#message-list").evaluate("l => l.scrollTop") == top  # ... and the list stayed put
    page.screenshot(path=str(SCREENS / "jump-button.png"))

    jump.click()

    expect(jump).to_be_hidden()
    page.wait_for_function(AT_END)
    page.keyboard.press("Escape")
    expect(page.locator("article.bubble.assistant.status-interrupted")).to_be_visible()


@pytest.mark.parametrize("ending", ["finishes", "stops", "fails"])
def test_the_list_goes_to_the_end_when_the_reply_ends(
    page: Page, asgi_server, browser_user, chat_model, fake_upstream, upstream_gate, ending
):
    # Up to "line 30", then the reply waits for the gate: the list is scrolled up mid-reply for sure.
    reply = FakeReply(text=LONG, hang_after=62)
    if ending == "fails":
        reply = FakeReply(text=LONG, hang_after=62, error_after=200)
    fake_upstream.script(reply)
    log_in(page, asgi_server, browser_user)
    send(page, "Count")
    expect(page.locator("#message-list .stream .content.plain")).to_contain_text("line 30")
    scroll_up(page)
    expect(page.get_by_role("button", name="Jump to newest")).to_be_visible()

    if ending == "stops":
        page.locator("#composer").get_by_role("button", name="Stop").click()
    else:
        upstream_gate.set()  # the rest: to its end, or to the error
    ended = {
        "finishes": "article.bubble.assistant.status-complete",
        "stops": "article.bubble.assistant .note.stopped",
        "fails": "article.bubble.assistant .problem",
    }[ending]
    expect(page.locator(ended)).to_be_visible()

    page.wait_for_function(AT_END)
    expect(page.get_by_role("button", name="Jump to newest")).to_be_hidden()


# Markdown as it streams ---------------------------------------------------------------------------
LIVE_MARKDOWN = (
    "Here:\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "```python\nprint('<b>')\n```\n\n"
    "Still writing"
)


def test_a_table_and_a_code_block_show_rendered_while_the_reply_streams(
    page: Page, asgi_server, browser_user, chat_model, fake_upstream
):
    reply = FakeReply(text=LIVE_MARKDOWN, delay=0.02)
    reply.hang_after = len(reply.pieces()) - 1  # then silence, the last word still to come
    fake_upstream.script(reply)
    log_in(page, asgi_server, browser_user)
    send(page, "Show me a table and some code")

    live = page.locator("#message-list .stream")
    expect(live.locator(".content.plain")).to_have_text("Still")  # the unfinished paragraph, as text
    blocks = live.locator(".content.markdown")
    expect(blocks.locator("table td").first).to_have_text("1")
    expect(blocks.locator(".code-lang")).to_have_text("python")
    expect(blocks.locator("pre")).to_have_text("print('<b>')\n")
    expect(blocks.get_by_role("button", name="Copy code")).to_be_visible()
    page.screenshot(path=str(SCREENS / "live-markdown.png"))
    streamed = blocks.evaluate("b => b.innerHTML")
    table_at = blocks.locator("table").evaluate("t => t.getBoundingClientRect().top - t.closest('article').getBoundingClientRect().top")

    page.keyboard.press("Escape")

    final = page.locator("article.bubble.assistant.status-interrupted .content.markdown")
    expect(final.locator("p").last).to_have_text("Still")
    assert final.evaluate("b => b.innerHTML").startswith(streamed)  # the blocks shown stay as they were
    assert final.locator("table").evaluate(
        "t => t.getBoundingClientRect().top - t.closest('article').getBoundingClientRect().top"
    ) == pytest.approx(table_at, abs=1)
