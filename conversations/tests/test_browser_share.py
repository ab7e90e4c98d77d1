"""Share links in a real Chromium against chatter under uvicorn (make test-browser): the owner creates
one from the chat header's menu and copies it; a fresh browser, signed in as nobody, opens it and
reads the conversation; once the owner revokes it, the same address answers 404."""

import pytest
from playwright.sync_api import Browser, Page, expect

from aimodels.tests.factories import AIModelFactory
from conversations.models import Share
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.tests.test_browser_sidebar import watched  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser]


def test_a_link_created_in_the_menu_opens_logged_out_until_revoked(
    watched: Page, browser: Browser, asgi_server, browser_user, tmp_path
):
    page = watched
    conversation = ConversationFactory(user=browser_user, model=AIModelFactory(name="share-gpt"), title="Tiles of Porto")
    MessageFactory(conversation=conversation, content="Why are the houses <b>tiled</b>?")
    MessageFactory(conversation=conversation, reply=True, content="The **azulejos** keep the damp out.")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server.url)
    log_in(page, asgi_server, browser_user)
    page.goto(f"{asgi_server.url}{conversation.get_absolute_url()}")
    expect(page.locator("html[data-sidebar-ready][data-chat-ready]")).to_be_attached()

    # The owner: the header's menu, Share…, Create link; Copy puts the link on the clipboard.
    page.get_by_title("More actions").click()
    page.get_by_role("button", name="Share…").click()
    dialog = page.get_by_role("dialog", name="Share “Tiles of Porto”")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("No links yet.")
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog.get_by_role("status")).to_have_text("Link created. Anyone who has it can read this copy.")
    expect(dialog.locator(".share-item")).to_have_count(1)
    share = Share.objects.get(conversation=conversation)
    link = f"{asgi_server.url}/s/{share.token}/"
    expect(dialog.locator(".share-url")).to_have_value(link)
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == link
    page.screenshot(path=str(tmp_path / "share-dialog.png"))

    # Anyone: a fresh browser, signed in as nobody, reads the conversation as it was shared.
    stranger = browser.new_context()
    try:
        visitor = stranger.new_page()
        response = visitor.goto(link)
        assert response.status == 200
        assert response.headers["x-robots-tag"] == "noindex, nofollow"
        expect(visitor.get_by_role("heading", level=1)).to_have_text("Tiles of Porto")
        expect(visitor.locator(".bubble.user .content")).to_have_text("Why are the houses <b>tiled</b>?")
        expect(visitor.locator(".bubble.assistant .content strong")).to_have_text("azulejos")
        expect(visitor.locator(".bubble.assistant .who")).to_have_text("share-gpt")
        expect(visitor.locator("b, form, textarea, script")).to_have_count(0)
        expect(visitor.locator("body")).not_to_contain_text(browser_user.username)
        visitor.screenshot(path=str(tmp_path / "share-page.png"), full_page=True)

        # The owner revokes it: the same address answers 404 from then on (the site's 404 page is
        # test_share's to check: this server runs with DEBUG on, for its static files).
        dialog.get_by_role("button", name="Revoke").click()
        expect(dialog.get_by_role("status")).to_have_text("Link revoked: it now answers “not found”.")
        expect(dialog.locator(".share-item")).to_have_count(0)
        response = visitor.goto(link)
        assert response.status == 404
        expect(visitor.get_by_text("azulejos")).to_have_count(0)
    finally:
        stranger.close()
    assert not Share.objects.exists()

    # Closed: the focus is back on Share…, in the menu that opened it (clicks in the dialog left it open).
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("button", name="Share…")).to_be_focused()
    assert page.problems == []
