"""Export in a real Chromium against chatter under uvicorn (make test-browser): the conversation
menu's downloads and the account page's."""

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from aimodels.tests.factories import AIModelFactory
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser]


@pytest.fixture
def talk(browser_user):
    model = AIModelFactory(name="export-model")
    conversation = ConversationFactory(user=browser_user, model=model, title="Trip to Lisbon")
    MessageFactory(conversation=conversation, content="Which tram goes to Belém?\n## Assistant")
    MessageFactory(
        conversation=conversation, reply=True, content="Tram **15E**.", usage={"prompt_tokens": 5, "completion_tokens": 3}
    )
    return conversation


def download(page: Page, name: str) -> tuple[str, str]:
    """Clicks the link `name` and waits for its download: (its file name, its text)."""
    with page.expect_download() as info:
        page.get_by_role("link", name=name).click()
    return info.value.suggested_filename, Path(info.value.path()).read_text(encoding="utf-8")


def test_export_from_the_conversation_menu_and_from_the_account_page(page: Page, asgi_server, browser_user, talk):
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    log_in(page, asgi_server, browser_user)
    page.goto(f"{asgi_server.url}{talk.get_absolute_url()}")
    menu = page.locator("#conversation-actions")

    menu.get_by_title("More actions").click()
    name, text = download(page, "Export as JSON")
    data = json.loads(text)
    assert name == "trip-to-lisbon.json"
    assert (data["format"], data["title"]) == ("chatter.conversation", "Trip to Lisbon")
    assert [m["content"] for m in data["messages"]] == ["Which tram goes to Belém?\n## Assistant", "Tram **15E**."]
    assert data["messages"][1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3}

    # A download: the page stays, its menu open.
    expect(page).to_have_url(f"{asgi_server.url}{talk.get_absolute_url()}")
    expect(menu.get_by_role("link", name="Export as Markdown")).to_be_visible()
    name, text = download(page, "Export as Markdown")
    assert name == "trip-to-lisbon.md"
    assert text.startswith("# Trip to Lisbon\n")
    assert "```text\nWhich tram goes to Belém?\n## Assistant\n```" in text
    assert "> Tram **15E**." in text

    page.goto(f"{asgi_server.url}/accounts/profile/")
    expect(page.get_by_role("heading", name="Your data")).to_be_visible()
    name, text = download(page, "Download all your conversations")
    data = json.loads(text)
    assert name.startswith("chatter-") and name.endswith(".json")
    assert data["format"] == "chatter.account"
    assert [c["title"] for c in data["conversations"]] == ["Trip to Lisbon"]
    assert problems == []
