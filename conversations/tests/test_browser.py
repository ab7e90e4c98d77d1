"""A chat turn in a real Chromium against chatter under uvicorn (make test-browser)."""

import re

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import Page, expect

from accounts.tests.factories import PASSWORD
from bench.fake_upstream import FakeReply

pytestmark = [pytest.mark.browser]

REPLY = (
    "Here is a function:\n\n"
    "```python\n"
    "def greet(name):\n"
    "    return f'Hello, {name}!'\n"
    "```\n\n"
    "It returns a **greeting**. <img src=x onerror=alert(1)>"
)


@pytest.fixture
def browser_user(user):
    # The server process knows the production hashers only (tests hash with MD5 for speed).
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    user.save()
    return user


def log_in(page: Page, server, user) -> None:
    page.goto(f"{server.url}/accounts/login/")
    page.get_by_label(re.compile(r"^Username")).fill(user.username)
    page.get_by_label(re.compile(r"^Password")).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("html[data-chat-ready]")).to_be_attached()  # its script is ready for keys


@pytest.fixture(scope="session", autouse=True)
def _orm_beside_playwright():
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test and
    # of pytest-django's fixtures are still plain blocking calls. Only browser runs get here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


def test_send_and_watch_the_reply_stream_in(
    page: Page, asgi_server, browser_user, chat_model, fake_upstream, upstream_gate, tmp_path
):
    user = browser_user
    fake_upstream.script(FakeReply(text=REPLY, hang_after=3))  # "Here is a", then it waits for the gate
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))

    log_in(page, asgi_server, user)
    expect(page.get_by_role("heading", name=f"Hello, {user.username}")).to_be_visible()

    page.get_by_label("Message").fill("   ")  # blank: the browser's own check lets it through
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#composer .errorlist")).to_have_text("Type a message first.")
    errors.clear()  # the browser logs the deliberate 422 itself

    page.get_by_label("Message").fill("Write a greeting function")
    page.get_by_role("button", name="Send").click()

    user_bubble = page.locator("article.bubble.user .content")
    expect(user_bubble).to_have_text("Write a greeting function")
    expect(page.get_by_label("Message")).to_have_value("")
    streaming = page.locator("article.bubble.assistant .stream")
    expect(streaming).to_contain_text("Here is")  # the first words, while the rest is on its way
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    page.screenshot(path=str(tmp_path / "streaming.png"))
    upstream_gate.set()  # the rest of the reply

    final = page.locator("article.bubble.assistant.status-complete")
    expect(final).to_be_visible()
    expect(final.locator("pre.highlight span.k", has_text="def")).to_be_visible()
    expect(final.locator("strong")).to_have_text("greeting")
    expect(final).to_contain_text("<img src=x onerror=alert(1)>")
    assert final.locator("img").count() == 0
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    page.screenshot(path=str(tmp_path / "done.png"))
    assert dialogs == []
    assert errors == []

    page.reload()
    expect(page.locator("article.bubble")).to_have_count(2)
    expect(page.locator("article.bubble.assistant pre.highlight")).to_be_visible()


def test_stop_then_retry_in_the_browser(page: Page, asgi_server, browser_user, chat_model, fake_upstream):
    fake_upstream.script(
        FakeReply(text=" ".join(f"word{n}" for n in range(200)), hang_after=5),  # then silent till stopped
        FakeReply(text="A fresh **answer**."),
    )
    log_in(page, asgi_server, browser_user)

    page.get_by_label("Message").fill("Talk for a while")
    page.keyboard.press("Enter")
    expect(page.locator("article.bubble.assistant .stream .content.plain")).to_contain_text("word3")
    page.get_by_role("button", name="Stop").click()

    stopped = page.locator("article.bubble.assistant.status-interrupted")
    expect(stopped).to_be_visible()
    expect(stopped.locator(".note.stopped")).to_have_text("Stopped.")
    expect(stopped).to_contain_text("word0 word1 word2 word3")

    stopped.get_by_role("button", name="Retry").click()
    final = page.locator("article.bubble.assistant.status-complete")
    expect(final.locator("strong")).to_have_text("answer")
    expect(page.locator("article.bubble")).to_have_count(2)


def test_the_box_counts_near_the_limit_and_refuses_more_without_cutting(page: Page, asgi_server, browser_user, chat_model):
    log_in(page, asgi_server, browser_user)
    box = page.get_by_label("Message")
    counter = page.locator("#char-count")

    box.fill("a" * 31_000)
    expect(counter).to_have_text("31,000 / 32,000 characters")
    box.fill("a" * 40_000)  # a long paste: nothing is cut

    expect(counter).to_have_text("40,000 / 32,000 characters: 8,000 too many")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    box.press("Enter")
    expect(box).to_have_value("a" * 40_000)
    expect(page.locator("article.bubble")).to_have_count(0)
    box.fill("short again")
    expect(counter).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_send_becomes_stop_and_esc_stops_the_reply_keeping_what_is_typed(
    page: Page, asgi_server, browser_user, chat_model, fake_upstream, tmp_path
):
    fake_upstream.script(FakeReply(text=" ".join(f"word{n}" for n in range(400)), hang_after=5))  # then silent
    log_in(page, asgi_server, browser_user)
    box = page.get_by_label("Message")
    box.fill("Talk for a while")
    box.press("Enter")
    expect(page.locator("article.bubble.assistant .stream .content.plain")).to_contain_text("word2")
    expect(page.locator("#composer").get_by_role("button", name="Stop")).to_be_visible()
    expect(page.locator("#composer").get_by_role("button", name="Send")).to_be_hidden()
    expect(box).to_be_focused()
    box.type("next question")

    page.keyboard.press("Escape")

    stopped = page.locator("article.bubble.assistant.status-interrupted")
    expect(stopped.locator(".note.stopped")).to_have_text("Stopped.")
    expect(stopped.locator(".problem")).to_have_count(0)
    expect(page.locator("#composer").get_by_role("button", name="Send")).to_be_visible()
    expect(box).to_have_value("next question")
    page.screenshot(path=str(tmp_path / "stopped.png"))


def test_set_a_system_prompt_then_switch_model_mid_chat(page: Page, asgi_server, browser_user, chat_model, fake_upstream, tmp_path):
    from aimodels.tests.factories import AIModelFactory

    other = AIModelFactory(name="other-model", provider="openai_compatible", api_endpoint=chat_model.api_endpoint,
                           deployment_name="other-deployment", api_key_env="", description="The other one.")
    fake_upstream.script(FakeReply(text="First answer."), FakeReply(text="Second answer."))
    log_in(page, asgi_server, browser_user)

    page.locator("#system-prompt summary").click()
    page.get_by_label("System prompt").fill("Be brief.")
    page.get_by_label("Message").fill("hi")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("article.bubble.assistant.status-complete")).to_have_count(1)
    assert fake_upstream.chat_requests[0].body["messages"][0] == {"role": "system", "content": "Be brief."}

    page.get_by_label("Model").select_option(label="other-model")
    expect(page.locator("#model-description")).to_have_text("The other one.")
    page.get_by_label("Message").fill("again")
    page.get_by_role("button", name="Send").click()

    expect(page.locator("article.bubble.assistant.status-complete")).to_have_count(2)
    expect(page.locator("article.bubble.assistant .who").last).to_have_text("other-model")
    assert fake_upstream.chat_requests[1].body["model"] == "other-deployment"
    page.locator("article.bubble.assistant details.usage").last.locator("summary").click()
    expect(page.locator("article.bubble.assistant details.usage").last).to_contain_text("reply tokens")
    page.screenshot(path=str(tmp_path / "switched.png"))
    page.screenshot(path="/tmp/screens/switched.png")


@pytest.fixture
def strict_server(transactional_db, settings):
    """chatter under uvicorn with a send rate of one message a minute."""
    from conversations.tests.asgi_server import AsgiServer

    server = AsgiServer.for_test_database(secret_key=settings.SECRET_KEY)
    server.env["SEND_RATE_PER_USER"] = "1/m"
    with server:
        yield server


def test_the_send_rate_is_explained_in_the_page_and_the_text_kept(page: Page, strict_server, browser_user, chat_model, fake_upstream):
    fake_upstream.script(FakeReply(text="One answer."))
    log_in(page, strict_server, browser_user)
    box = page.get_by_label("Message")
    box.fill("first")
    box.press("Enter")
    expect(page.locator("article.bubble.assistant.status-complete")).to_have_count(1)

    box.fill("second, too soon")
    box.press("Enter")

    expect(page.locator("#composer .errorlist")).to_contain_text(
        re.compile(r"faster than chatter allows \(1 message a minute\)\. You can send again in \d+ seconds?")
    )
    expect(box).to_have_value("second, too soon")
    expect(page.locator("article.bubble")).to_have_count(2)


def test_the_note_that_a_reply_is_being_written_goes_when_it_ends(page: Page, asgi_server, browser_user, chat_model, fake_upstream):
    fake_upstream.script(FakeReply(text="one two three four", hang_after=2))  # then it stays open
    log_in(page, asgi_server, browser_user)
    box = page.get_by_label("Message")
    box.fill("Take your time")
    box.press("Enter")
    expect(page.locator("article.bubble.assistant .stream .content.plain")).to_contain_text("one two")
    box.fill("another")
    # Send is hidden while a reply is written (Stop stands in its place, and the page hides it
    # again at each swap): pressed from a script, as an old page or a second tab could send.
    page.evaluate("document.querySelector('#composer button.send').click()")
    note = page.locator("#composer .errorlist.nonfield")
    expect(note).to_contain_text("A reply is still being written")

    page.keyboard.press("Escape")

    expect(page.locator("article.bubble.assistant.status-interrupted")).to_be_visible()
    expect(note).to_have_count(0)
    expect(box).to_have_value("another")
