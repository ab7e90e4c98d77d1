"""The sign-up journey in a real Chromium (make test-browser runs these in their own process)."""

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session", autouse=True)
def _orm_beside_playwright():
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test and
    # of pytest-django's fixtures are still plain blocking calls. Only browser runs get here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


def test_sign_up_verify_and_arrive(page: Page, live_server, tmp_path):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))

    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label(re.compile(r"^Password:?$")).fill("short")
    page.get_by_label("Password confirmation").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#id_password1_error")).to_contain_text("too short")
    expect(page.get_by_label("Email")).to_have_value("grace@example.com")

    page.get_by_label(re.compile(r"^Password:?$")).fill("Amazing-Grace-1906")
    page.get_by_label("Password confirmation").fill("Amazing-Grace-1906")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Verify your email")).to_be_visible()
    page.screenshot(path=str(tmp_path / "verify.png"))

    link = re.search(r"https?://\S+/accounts/verify/\S+/", mail.outbox[-1].body).group(0)
    page.goto(link.replace("http://testserver", live_server.url))
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()
    expect(page.get_by_text("is confirmed")).to_be_visible()
