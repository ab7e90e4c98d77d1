"""Versions in a real Chromium against chatter under uvicorn (make test-browser): regenerate a
reply with another model and move between its versions with ‹ ›; edit a question and send it
again, then go back to the old branch; an edit refused or cancelled changes nothing."""

import pytest
from playwright.sync_api import Page, expect

from aimodels.tests.factories import AIModelFactory
from bench.fake_upstream import FakeReply
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_browser import _orm_beside_playwright, browser_user, log_in  # noqa: F401 (fixtures)
from conversations.tests.test_browser_sidebar import open_chat, watched  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser]


@pytest.fixture
def talk(browser_user, chat_model):
    """A conversation of two finished turns."""
    conversation = ConversationFactory(user=browser_user, model=chat_model, title="Colours")
    for text, answer in (("Name a colour.", "Blue."), ("Why that one?", "The sky.")):
        MessageFactory(conversation=conversation, content=text)
        MessageFactory(conversation=conversation, reply=True, content=answer)
    return conversation


def bubbles(page: Page, role: str):
    return page.locator(f"#message-list article.bubble.{role} .content")


def test_regenerate_with_another_model_then_move_between_the_versions(
    watched: Page, asgi_server, browser_user, talk, chat_model, fake_upstream, tmp_path
):
    page = watched
    other = AIModelFactory(name="other-gpt", provider="openai_compatible", api_endpoint=chat_model.api_endpoint,
                           deployment_name="gpt-4o-mini", api_key_env="")
    fake_upstream.script(FakeReply(text="Green, **this** time."))
    open_chat(page, asgi_server, browser_user, talk)
    last = page.locator("#message-list article.bubble.assistant").last
    expect(bubbles(page, "assistant")).to_have_text(["Blue.", "The sky."])

    # The menu closes with Esc (the focus back on it) and with a click elsewhere.
    regenerate = last.locator("summary", has_text="Regenerate")
    regenerate.click()
    expect(last.get_by_role("button", name="other-gpt")).to_be_visible()
    page.keyboard.press("Escape")
    expect(last.get_by_role("button", name="other-gpt")).to_be_hidden()
    expect(regenerate).to_be_focused()
    regenerate.click()
    page.locator("#chat-title h1").click()
    expect(last.get_by_role("button", name="other-gpt")).to_be_hidden()

    regenerate.click()
    last.get_by_role("button", name="other-gpt").click()

    last = page.locator("#message-list article.bubble.assistant").last
    expect(last.locator(".content.markdown")).to_have_text("Green, this time.")  # streamed, then rendered
    expect(last.locator("strong")).to_have_text("this")
    expect(last.locator(".who")).to_have_text("other-gpt")
    expect(last.locator(".version-count")).to_have_text("2 / 2")
    assert fake_upstream.last.body["messages"][-1] == {"role": "user", "content": "Why that one?"}
    page.screenshot(path=str(tmp_path / "regenerated.png"))

    last.get_by_role("button", name="Previous version").click()
    last = page.locator("#message-list article.bubble.assistant").last
    expect(last.locator(".version-count")).to_have_text("1 / 2")
    expect(bubbles(page, "assistant")).to_have_text(["Blue.", "The sky."])
    expect(last.get_by_role("button", name="Previous version")).to_be_disabled()

    last.get_by_role("button", name="Next version").click()
    expect(bubbles(page, "assistant")).to_have_text(["Blue.", "Green, this time."])
    page.reload()  # the version shown is the conversation's, not the page's
    expect(bubbles(page, "assistant")).to_have_text(["Blue.", "Green, this time."])
    expect(page.locator("#message-list .version-count")).to_have_text(["2 / 2"])
    assert other.pk and page.problems == []


def test_edit_a_question_send_it_again_and_go_back_to_the_old_branch(
    watched: Page, asgi_server, browser_user, talk, fake_upstream, tmp_path
):
    page = watched
    fake_upstream.script(FakeReply(text="Red is warm."))
    open_chat(page, asgi_server, browser_user, talk)
    first_question = page.locator("#message-list article.bubble.user").first

    # Cancel changes nothing, and neither does Esc.
    first_question.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("textbox", name="Your message")
    expect(editor).to_have_value("Name a colour.")
    expect(editor).to_be_focused()
    page.get_by_role("button", name="Cancel").click()
    expect(editor).to_have_count(0)
    page.locator("#message-list article.bubble.user").first.get_by_role("button", name="Edit").click()
    editor.fill("Something else")
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(bubbles(page, "user")).to_have_text(["Name a colour.", "Why that one?"])

    # Refused: the reason beside the field, the bubble still being edited, nothing sent.
    second_question = page.locator("#message-list article.bubble.user").nth(1)
    second_question.get_by_role("button", name="Edit").click()
    editor.fill("   ")
    page.locator(".edit-form").get_by_role("button", name="Send").click()
    expect(page.locator(".edit-form .errorlist")).to_have_text("Type a message first.")
    assert fake_upstream.chat_requests == []
    page.problems.clear()  # the browser logs the deliberate 422 itself

    editor.fill("Why not red?")
    page.locator(".edit-form").get_by_role("button", name="Send").click()
    expect(bubbles(page, "user")).to_have_text(["Name a colour.", "Why not red?"])
    expect(bubbles(page, "assistant")).to_have_text(["Blue.", "Red is warm."])
    edited = page.locator("#message-list article.bubble.user").nth(1)
    expect(edited.locator(".version-count")).to_have_text("2 / 2")
    assert fake_upstream.last.body["messages"] == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Why not red?"},
    ]
    page.screenshot(path=str(tmp_path / "edited.png"))

    edited.get_by_role("button", name="Previous version").click()
    expect(bubbles(page, "user")).to_have_text(["Name a colour.", "Why that one?"])
    expect(bubbles(page, "assistant")).to_have_text(["Blue.", "The sky."])
    expect(page.locator("#message-list article.bubble.user").nth(1).locator(".version-count")).to_have_text("1 / 2")
    assert page.problems == []
