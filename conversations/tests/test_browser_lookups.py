"""Web lookups as a user sees them, in a real Chromium against chatter under uvicorn, with the web
served by the local lookup server (make test-browser)."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bench.fake_upstream import FakeReply
from conversations.models import Conversation
from conversations.tests.lookup_server import LookupServer
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.tests.test_browser_ui import send

pytestmark = [pytest.mark.browser]

SCREENS = Path("/tmp/screens")


@pytest.fixture
def web():
    with LookupServer("127.0.0.2") as server:
        yield server


@pytest.fixture
def lookup_server_app(transactional_db, settings, web):
    """chatter under uvicorn, searching the local lookup server, which holds each search's answer
    until the test opens its gate."""
    from conversations.tests.asgi_server import AsgiServer

    env = {
        "SEARCH_URL": web.url("/gate/ddg/results?q={query}"),
        "WEATHER_URL": web.url("/wttr/{place}?format=j1"),
        "LOOKUP_ALLOWED_NETWORKS": "127.0.0.2/32",
    }
    with AsgiServer.for_test_database(secret_key=settings.SECRET_KEY, env=env) as server:
        yield server


def test_a_search_shows_its_progress_then_the_step_and_the_sources(
    page: Page, lookup_server_app, browser_user, chat_model, fake_upstream, web
):
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    fake_upstream.script(FakeReply(text="Mario Golf came out for the **Game Boy Color** in 1999.", delay=0.05))
    log_in(page, lookup_server_app, browser_user)
    expect(page.get_by_label("Web lookups")).to_be_checked()

    send(page, "search for mario golf")

    reply = page.locator("article.bubble.assistant")
    expect(reply.locator(".step-pending")).to_have_text("Searching the web for “mario golf”…")
    page.screenshot(path=str(SCREENS / "lookup-running.png"))
    web.gate.set()
    expect(reply.locator(".content.markdown strong")).to_have_text("Game Boy Color")
    expect(page.locator("article.bubble.assistant.status-complete")).to_be_visible()
    step = reply.locator("details.step-done")
    expect(step.locator("summary")).to_have_text("Searched the web for “mario golf”")
    step.locator("summary").click()
    expect(step.locator(".step-text")).to_contain_text("Mario Golf for Game Boy | VGDb")
    sources = reply.locator("details.sources")
    expect(sources.locator("summary")).to_have_text("Sources (5)")
    expect(sources.locator("a").first).not_to_be_visible()  # folded until asked for
    sources.locator("summary").click()
    first = sources.locator("a").first
    expect(first).to_have_text("Get information and compare prices of Mario Golf for Game Boy | VGDb")
    expect(first).to_have_attribute("href", "https://vgdb.uk/mario-golf/game/48484")
    expect(first).to_have_attribute("target", "_blank")
    page.screenshot(path=str(SCREENS / "lookup-sources.png"), full_page=True)
    assert problems == []


def test_turning_lookups_off_sends_the_words_to_the_model(
    page: Page, lookup_server_app, browser_user, chat_model, fake_upstream, web
):
    fake_upstream.script(FakeReply(text="First."), FakeReply(text="I cannot search, but owls are birds."))
    web.gate.set()
    log_in(page, lookup_server_app, browser_user)
    send(page, "Hello")
    expect(page.locator("article.bubble.assistant.status-complete")).to_have_count(1)

    switch = page.get_by_label("Web lookups")
    switch.uncheck()
    expect(page.locator("#lookups-hint")).to_have_text("Off for this conversation.")
    page.reload()  # it was saved, not only unticked
    expect(page.get_by_label("Web lookups")).not_to_be_checked()
    send(page, "search for owls")

    expect(page.locator("article.bubble.assistant.status-complete")).to_have_count(2)
    expect(page.locator(".step")).to_have_count(0)
    assert web.hits == []
    assert fake_upstream.last.body["messages"][-1] == {"role": "user", "content": "search for owls"}
    assert Conversation.objects.get(user=browser_user).web_lookups is False
