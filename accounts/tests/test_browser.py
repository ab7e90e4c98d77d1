"""The sign-up journey in a real Chromium (make test-browser runs these in their own process)."""

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from accounts.tests.factories import PASSWORD, UserFactory

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
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text("grace@example.com")).to_be_visible()
    page.screenshot(path=str(tmp_path / "check-email.png"))

    link = re.search(r"https?://\S+/accounts/verify/\S+/", mail.outbox[-1].body).group(0)
    page.goto(link)
    expect(page.get_by_text("is confirmed")).to_be_visible()
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("Amazing-Grace-1906")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/(new/|c/[0-9a-f-]+/)?$"))


def test_the_wait_for_a_new_link_counts_down_and_then_the_button_works(page: Page, live_server, settings):
    settings.EMAIL_VERIFICATION_RESEND_SECONDS = 4
    UserFactory(username="ada", email="ada@example.com", unverified=True)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Verify your email")).to_be_visible()

    page.get_by_role("button", name="Send a new link").click()
    hint = page.locator("#resend-wait")
    expect(hint).to_contain_text(re.compile(r"You can ask for another in [1-4] seconds?\."))
    expect(page.get_by_role("button", name="Send a new link")).to_be_disabled()
    first = int(hint.locator(".seconds").inner_text())
    expect(hint.locator(".seconds")).not_to_have_text(str(first))  # it counts
    expect(hint).to_have_text("You can ask for another now.")
    expect(page.get_by_role("button", name="Send a new link")).to_be_enabled()

    page.get_by_role("button", name="Send a new link").click()
    expect(page.get_by_text("We sent a new link to ada@example.com")).to_be_visible()
    assert len(mail.outbox) == 2
