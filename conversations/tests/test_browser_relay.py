"""Replies that outlive the page, in a real Chromium against chatter under uvicorn: reload, close
and reopen, a second tab (make test-browser). Every wait is for a state."""

import pytest
from playwright.sync_api import Page, expect

from bench.fake_upstream import FakeReply
from conversations.models import Message
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.tests.test_browser_ui import SCREENS, send

pytestmark = [pytest.mark.browser]

INTRO = "First, the plan.\n\n"
WORDS = " ".join(f"w{n}" for n in range(60))


def reply_shown(page: Page):
    return page.locator("article.bubble.assistant").last


def test_a_reload_mid_reply_shows_the_text_so_far_then_the_rest(
    page: Page, asgi_server, browser_user, chat_model, fake_upstream, upstream_gate
):
    reply = FakeReply(text=INTRO + WORDS)
    reply.hang_after = reply.pieces().index(" w5") + 1  # up to w5, then it waits for the gate
    fake_upstream.script(reply)
    log_in(page, asgi_server, browser_user)
    send(page, "Plan my week")
    expect(page.locator("#message-list .stream .content.plain")).to_contain_text("w5")

    page.reload()

    live = page.locator("#message-list .stream")
    expect(live.locator(".content.markdown p")).to_have_text("First, the plan.")  # written before the reload
    expect(live.locator(".content.plain")).to_contain_text("w0 w1 w2 w3 w4 w5")
    page.screenshot(path=str(SCREENS / "reload-mid-reply.png"))
    upstream_gate.set()  # the rest
    final = page.locator("article.bubble.assistant.status-complete .content.markdown")
    expect(final).to_have_text(f"First, the plan.\n{WORDS}")
    assert len(fake_upstream.chat_requests) == 1


def test_a_closed_page_does_not_end_the_reply(
    page: Page, asgi_server, browser_user, chat_model, fake_upstream, upstream_gate
):
    fake_upstream.script(FakeReply(text=WORDS, hang_after=4))  # w0 to w3, then it waits for the gate
    log_in(page, asgi_server, browser_user)
    send(page, "Talk for a while")
    expect(page.locator("#message-list .stream .content.plain")).to_contain_text("w3")
    url = page.url

    other = page.context.new_page()  # the user comes back later, in a new tab
    page.close()
    reply = Message.objects.get(role="assistant")
    assert reply.status in Message.IN_PROGRESS
    upstream_gate.set()  # the rest, written with no page open
    other.goto(url)

    expect(other.locator("article.bubble.assistant.status-complete .content.markdown")).to_have_text(WORDS)
    reply.refresh_from_db()
    assert (reply.status, reply.content) == (Message.Status.COMPLETE, WORDS)
    assert len(fake_upstream.chat_requests) == 1


def test_two_tabs_show_the_reply_live_and_either_can_stop_it(
    page: Page, asgi_server, browser_user, chat_model, fake_upstream
):
    fake_upstream.script(FakeReply(text=WORDS, hang_after=5))  # then silent until stopped
    log_in(page, asgi_server, browser_user)
    send(page, "Count slowly")
    expect(page.locator("#message-list .stream .content.plain")).to_contain_text("w2")
    second = page.context.new_page()
    second.goto(page.url)
    expect(second.locator("#message-list .stream .content.plain")).to_contain_text("w2")

    second.get_by_role("button", name="Stop").first.click()

    for tab in (page, second):
        stopped = tab.locator("article.bubble.assistant.status-interrupted")
        expect(stopped.locator(".note.stopped")).to_have_text("Stopped.")
    kept = Message.objects.get(role="assistant").content
    assert kept.startswith("w0 w1 w2") and kept != WORDS
    for tab in (page, second):
        expect(tab.locator("article.bubble.assistant .content.markdown")).to_have_text(kept)
    assert len(fake_upstream.chat_requests) == 1
