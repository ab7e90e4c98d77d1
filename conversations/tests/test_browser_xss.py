"""The nastiest payloads of the XSS corpus in a real Chromium, typed by a user and streamed by a model
(make test-browser).

Script running is seen three ways, all recorded from the first byte of every page: a dialog opening
(payloads call alert(1)), the window.__xss flag (payloads set it), and a Content-Security-Policy violation
(the page tried to run or load something it was never meant to: injected markup got into the DOM and only
the CSP stopped it). On top, the DOM is checked once each reply is finished: no event handler attribute
anywhere, user text with no elements at all, and rendered replies inside the allowlist, links judged by
the browser's own URL parser.
"""

import re

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import Page, expect

from accounts.tests.factories import PASSWORD
from bench.fake_upstream import FakeReply
from conversations.models import Conversation
from conversations.tests.test_xss import SAFE_ATTRIBUTES, SAFE_SCHEMES, SAFE_TAGS
from conversations.tests.xss_corpus import BROWSER_SAMPLE, payload

pytestmark = [pytest.mark.browser]

SAMPLE = [(name, payload(name)) for name in BROWSER_SAMPLE]

WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sample}`);
}, true);
"""
EVENT_HANDLERS = """() => [...document.querySelectorAll("*")].flatMap((el) =>
  [...el.attributes].filter((a) => a.name.toLowerCase().startsWith("on")).map((a) => `<${el.localName} ${a.name}>`))
"""
RENDERED_ELEMENTS = """() => [...document.querySelectorAll("#message-list .content.markdown *")].map((el) => ({
  tag: el.namespaceURI === "http://www.w3.org/1999/xhtml" ? el.localName : `{${el.namespaceURI}}${el.localName}`,
  attributes: Object.fromEntries([...el.attributes].map((a) => [a.name, a.value])),
  protocol: el.localName === "a" && el.hasAttribute("href") ? el.protocol : null,
}))"""


class ScriptWatch:
    """Everything on the page that says script ran, or tried to."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        page.on("dialog", self._dialog)
        page.add_init_script(WATCH)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def signs(self) -> dict:
        return {
            "dialogs": self.dialogs,
            "window.__xss": self.page.evaluate("() => window.__xss ?? null"),
            "csp violations": self.page.evaluate("() => window.__cspViolations ?? []"),
            "event handler attributes": self.page.evaluate(EVENT_HANDLERS),
        }


NO_SIGNS = {"dialogs": [], "window.__xss": None, "csp violations": [], "event handler attributes": []}


def unsafe_rendered_elements(page: Page) -> list[str]:
    problems = []
    for element in page.evaluate(RENDERED_ELEMENTS):
        tag, attributes = element["tag"], element["attributes"]
        if tag not in SAFE_TAGS:
            problems.append(f"element <{tag}>")
        problems += [f"attribute {name} on <{tag}>" for name in attributes if name not in SAFE_ATTRIBUTES.get(tag, ())]
        if element["protocol"] is not None and element["protocol"].rstrip(":") not in SAFE_SCHEMES:
            problems.append(f"{element['protocol']} link {attributes.get('href')!r}")
    return problems


@pytest.fixture
def browser_user(user):
    # The server process knows the production hashers only (tests hash with MD5 for speed).
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    user.save()
    return user


@pytest.fixture(scope="session", autouse=True)
def _orm_beside_playwright():
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the fixtures are still
    # plain blocking calls. Only browser runs get here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


def log_in(page: Page, server, user) -> None:
    page.goto(f"{server.url}/accounts/login/")
    page.get_by_label(re.compile(r"^Username")).fill(user.username)
    page.get_by_label(re.compile(r"^Password")).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_label("Message")).to_be_visible()


def send_and_wait_for_reply(page: Page, text: str, replies_so_far: int) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("article.bubble.assistant.status-complete")).to_have_count(replies_so_far + 1)
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)


def test_watch_sees_a_dialog_the_flag_and_a_csp_violation(page: Page, asgi_server):
    # The detectors themselves, on a chatter page (same CSP): a dialog and the flag set from outside the
    # page's CSP, and an injected inline handler, which the CSP blocks and reports.
    watch = ScriptWatch(page)
    page.goto(f"{asgi_server.url}/accounts/login/")

    page.evaluate("() => { window.__xss = 1; alert(1); }")
    page.evaluate("() => { document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=alert(2)>'); }")
    page.wait_for_function("() => window.__cspViolations.length > 0")

    signs = watch.signs()
    assert signs["dialogs"] == ["alert: 1"]
    assert signs["window.__xss"] == 1
    assert any("script-src" in violation for violation in signs["csp violations"])
    assert signs["event handler attributes"] == ["<img onerror>"]


def test_payloads_typed_by_a_user_never_run(page: Page, asgi_server, browser_user, chat_model, fake_upstream):
    fake_upstream.script(*(FakeReply(text="Noted.") for _ in SAMPLE))
    watch = ScriptWatch(page)
    log_in(page, asgi_server, browser_user)

    for turn, (name, text) in enumerate(SAMPLE):
        send_and_wait_for_reply(page, text, turn)

        assert watch.signs() == NO_SIGNS, name
        shown = page.locator("article.bubble.user .content").nth(turn)
        expect(shown.locator("*")).to_have_count(0)
        assert shown.text_content() == text.strip(), name
    # The first message named the conversation: its title shows as text too.
    expect(page.locator("#chat-title h1 *, #conversation-list a *")).to_have_count(0)
    expect(page.locator("#chat-title h1")).to_have_text(Conversation.objects.get().title)


def test_payloads_streamed_by_a_model_never_run(page: Page, asgi_server, browser_user, chat_model, fake_upstream):
    # Cut into small pieces, so deltas end inside tags, attributes and entities.
    fake_upstream.script(*(FakeReply(text=text, chunks=max(1, len(text) // 5), delay=0.005) for _, text in SAMPLE))
    watch = ScriptWatch(page)
    log_in(page, asgi_server, browser_user)

    for turn, (name, _) in enumerate(SAMPLE):
        send_and_wait_for_reply(page, f"Show me {name}", turn)

        assert watch.signs() == NO_SIGNS, name
        assert unsafe_rendered_elements(page) == [], name
