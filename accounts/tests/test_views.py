import html
import re

import pytest
from bs4 import BeautifulSoup
from django.core import mail
from django.urls import reverse

from accounts.tests.factories import PASSWORD, UserFactory

LOGIN = reverse("login")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["conversations:index", "accounts:profile", "password_change", "accounts:verify_email_pending"])
def test_anonymous_visitor_is_sent_to_login_and_back(client, name):
    url = reverse(name)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={url}"


@pytest.mark.django_db
def test_anonymous_htmx_request_reloads_to_login(client):
    response = client.get(reverse("conversations:index"), headers={"HX-Request": "true"})

    assert response["HX-Redirect"] == f"{LOGIN}?next=/"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["login", "accounts:register", "password_reset", "password_reset_done", "password_reset_complete"]
)
def test_auth_pages_are_open_to_anonymous_visitors(client, name):
    assert client.get(reverse(name)).status_code == 200


@pytest.mark.django_db
def test_login_returns_to_next(client, user):
    response = client.post(LOGIN, {"username": user.username, "password": PASSWORD, "next": "/accounts/profile/"})

    assert response["Location"] == "/accounts/profile/"


@pytest.mark.django_db
def test_login_refuses_an_offsite_next(client, user):
    response = client.post(LOGIN, {"username": user.username, "password": PASSWORD, "next": "https://evil.example/"})

    assert response["Location"] == reverse("conversations:index")


@pytest.mark.django_db
def test_logout_is_post_only(client, user):
    client.force_login(user)

    assert client.get(reverse("logout")).status_code == 405
    assert "_auth_user_id" in client.session
    client.post(reverse("logout"))
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_password_change_enforces_the_policy(client, user):
    client.force_login(user)

    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": "short", "new_password2": "short"},
    )

    assert "too short" in " ".join(response.context["form"].errors["new_password2"])
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@pytest.mark.django_db
def test_password_change_works(client, user):
    client.force_login(user)

    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": "Brand-New-Secret-9", "new_password2": "Brand-New-Secret-9"},
    )

    assert response["Location"] == reverse("password_change_done")
    user.refresh_from_db()
    assert user.check_password("Brand-New-Secret-9")


@pytest.mark.django_db
def test_password_reset_by_email_end_to_end(client, user):
    client.post(reverse("password_reset"), {"email": user.email.upper()})

    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.context["validlink"]
    client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "Reset-Works-Fine-3", "new_password2": "Reset-Works-Fine-3"},
    )
    user.refresh_from_db()
    assert user.check_password("Reset-Works-Fine-3")


@pytest.mark.django_db
def test_password_reset_for_unknown_address_reveals_nothing(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})

    assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []


@pytest.mark.django_db
def test_profile_shows_the_account(client, user):
    client.force_login(user)

    page = client.get(reverse("accounts:profile")).content.decode()

    assert user.email in page
    badge = BeautifulSoup(page, "html.parser").select_one("dd .badge")
    assert (badge.text, badge["class"]) == ("verified", ["badge", "ok"])
    assert "not verified" not in page


@pytest.mark.django_db
def test_profile_says_not_verified_for_an_address_not_yet_confirmed(client, unverified_user, settings):
    settings.EMAIL_VERIFICATION_REQUIRED = False  # else the verify page is all such a user sees
    client.force_login(unverified_user)

    page = client.get(reverse("accounts:profile")).content.decode()

    badge = BeautifulSoup(page, "html.parser").select_one("dd .badge")
    assert (badge.text, badge["class"]) == ("not verified", ["badge", "warn"])


@pytest.mark.django_db
def test_user_text_is_escaped_on_pages(client):
    user = UserFactory(username="x<script>", email="x@example.com")
    client.force_login(user)

    page = client.get(reverse("accounts:profile")).content.decode()

    assert "x<script>" not in page
    assert html.escape("x<script>") in page
