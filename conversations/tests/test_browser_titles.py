"""A new conversation's generated title reaches the open page, in a real Chromium against chatter
under uvicorn with GENERATED_TITLES on (make test-browser)."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bench.fake_upstream import FakeReply
from conversations.models import Conversation
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.tests.test_browser_ui import send

pytestmark = [pytest.mark.browser]

SCREENS = Path("/tmp/screens")
QUESTION = "What should I see in Paris in three days, and where should I eat?"


@pytest.fixture
def titling_server(transactional_db, settings):
    """chatter under uvicorn with generated titles on."""
    from conversations.tests.asgi_server import AsgiServer

    server = AsgiServer.for_test_database(secret_key=settings.SECRET_KEY)
    server.env["GENERATED_TITLES"] = "true"
    with server:
        yield server


def test_the_generated_title_replaces_the_first_words_without_a_reload(
    page: Page, titling_server, browser_user, chat_model, fake_upstream, upstream_gate
):
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    watches: list[str] = []
    page.on("request", lambda request: "/title/" in request.url and watches.append(request.url))
    # The reply pauses after its first words until the test opens the gate; then the title
    # request is answered.
    fake_upstream.script(FakeReply(text="Day one: the Louvre. Day two: Montmartre.", hang_after=2),
                         FakeReply(text='"Three Days in Paris."'))
    log_in(page, titling_server, browser_user)
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    send(page, QUESTION)

    header, rows = page.locator("#chat-title h1"), page.locator("#conversation-list .item-title")
    expect(page.locator("article.bubble.assistant .stream .content.plain")).to_contain_text("Day one")
    expect(header).to_have_text(QUESTION)  # the first words, while the reply is written
    upstream_gate.set()  # the rest of the reply
    expect(page.locator("article.bubble.assistant.status-complete")).to_be_visible()
    expect(header).to_have_text("Three Days in Paris")
    expect(rows).to_have_text(["Three Days in Paris"])
    expect(page).to_have_title("Three Days in Paris · chatter")
    assert page.evaluate("window.sameDocument") is True
    assert Conversation.objects.get(user=browser_user).title == "Three Days in Paris"
    assert len(watches) == 1  # one long poll: it waited through the reply for the title
    page.screenshot(path=str(SCREENS / "live-title.png"))
    assert problems == []
