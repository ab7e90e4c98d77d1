"""A long conversation in a real Chromium against chatter under uvicorn (make test-browser): it opens
at its newest messages, and scrolling up loads the earlier ones above them while what was in view
stays in place. Every wait is for a state."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from aimodels.tests.factories import AIModelFactory
from conversations.models import Message
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser]

SCREENS = Path("/tmp/screens")
TOTAL = 130  # three pages: 50, 50 and 30
AT_END = """() => { const l = document.getElementById("message-list");
                    return l.scrollHeight - l.scrollTop - l.clientHeight < 2; }"""
# Before each page of earlier messages goes in: the message at the top of the view, and where it is
# (its top, from the list's top). In the page, because the page goes in as soon as the list shows its top.
RECORD_TOP_MESSAGE = """() => {
  const list = document.getElementById("message-list");
  window.topMessages = [];
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (!event.detail.elt.matches(".earlier-messages")) { return; }
    const top = list.getBoundingClientRect().top;
    const shown = [...list.querySelectorAll("article.bubble")].find((b) => b.getBoundingClientRect().bottom > top);
    window.topMessages.push({ id: shown.id, offset: shown.getBoundingClientRect().top - top });
  });
}"""
PLACE = """(bubble) => {
  const list = bubble.closest("#message-list").getBoundingClientRect(), box = bubble.getBoundingClientRect();
  return { offset: box.top - list.top, inView: box.bottom > list.top && box.top < list.bottom };
}"""


@pytest.fixture
def long_conversation(browser_user) -> list[Message]:
    """TOTAL messages, a question and a two-paragraph reply in turn, a second apart; oldest first."""
    conversation = ConversationFactory(user=browser_user, model=AIModelFactory(name="paging-model"), system_prompt="")
    start = timezone.now() - timedelta(days=1)
    return [
        MessageFactory(conversation=conversation, created_at=start + timedelta(seconds=n), content=f"Question {n}")
        if n % 2
        else MessageFactory(
            conversation=conversation, created_at=start + timedelta(seconds=n), reply=True,
            content=f"Answer {n}\n\nwith a second paragraph",
        )
        for n in range(1, TOTAL + 1)
    ]


def open_conversation(page: Page, server, user, conversation) -> None:
    log_in(page, server, user)
    page.goto(f"{server.url}{conversation.get_absolute_url()}")
    expect(page.locator("html[data-chat-ready]")).to_be_attached()


def scroll_to_top(page: Page) -> None:
    """As a user does: the wheel, over the list, as far up as it goes (a page is taller than one turn of it)."""
    messages = page.locator("#message-list")
    messages.hover()
    page.mouse.wheel(0, -messages.evaluate("l => l.scrollTop") - 100)


def test_a_long_conversation_opens_at_its_newest_message(page: Page, asgi_server, browser_user, long_conversation):
    first, newest = long_conversation[0], long_conversation[-1]

    open_conversation(page, asgi_server, browser_user, newest.conversation)

    expect(page.locator(f"#message-{newest.pk}")).to_be_in_viewport()
    page.wait_for_function(AT_END)
    expect(page.locator(f"#message-{first.pk}")).to_have_count(0)
    expect(page.locator("#message-list .earlier-messages")).to_have_text("Loading earlier messages…")


def test_scrolling_up_loads_every_earlier_page_keeping_the_view_in_place(
    page: Page, asgi_server, browser_user, long_conversation
):
    first, newest = long_conversation[0], long_conversation[-1]
    open_conversation(page, asgi_server, browser_user, newest.conversation)
    page.wait_for_function(AT_END)
    page.evaluate(RECORD_TOP_MESSAGE)
    bubbles = page.locator("#message-list article.bubble")
    expect(bubbles).to_have_count(50)

    for shown in (100, TOTAL):
        scroll_to_top(page)

        expect(bubbles).to_have_count(shown)
        expect(page.locator("#message-list .htmx-settling")).to_have_count(0)  # settled: chat.js has done its part
        before = page.evaluate("window.topMessages.at(-1)")
        after = page.locator(f"#{before['id']}").evaluate(PLACE)
        assert after["inView"]
        assert abs(after["offset"] - before["offset"]) < 1  # not a pixel moved

    expect(page.locator(f"#message-{first.pk}")).to_be_attached()
    expect(page.locator("#message-list .earlier-messages")).to_have_count(0)
    assert page.evaluate("window.topMessages.length") == 2  # each page once
    assert bubbles.evaluate_all("bs => bs.map((b) => Number(b.id.split('-')[1]))") == [m.pk for m in long_conversation]
    expect(page.get_by_role("button", name="Jump to newest")).to_be_visible()  # still scrolled up, not following
    SCREENS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENS / "older-messages.png"))

    page.get_by_role("button", name="Jump to newest").click()
    page.wait_for_function(AT_END)
    expect(page.locator(f"#message-{newest.pk}")).to_be_in_viewport()

