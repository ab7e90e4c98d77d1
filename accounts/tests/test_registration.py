import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory

URL = reverse("accounts:register")
GOOD = {
    "username": "ada",
    "email": "Ada@Example.com",
    "password1": "Analytical-Engine-1843",
    "password2": "Analytical-Engine-1843",
}


def post(client, **changes):
    return client.post(URL, {**GOOD, **changes})


def field_errors(response, field):
    return [str(e) for e in response.context["form"].errors.get(field, [])]


def page_text(response, address: str) -> str:
    """The page with what differs on every response (CSRF token, CSP nonce) and the address masked."""
    text = response.content.decode().replace(address, "ADDRESS")
    return re.sub(r'(X-CSRFToken": "|nonce=")[^"]*', r"\1", text)


def link_in(message) -> str:
    return re.search(r"http://testserver(/accounts/verify/[^/\s]+/)", message.body).group(1)


@pytest.mark.django_db
def test_sign_up_creates_an_unverified_user_and_emails_a_verification_link(client):
    response = post(client)

    assert response["Location"] == reverse("accounts:register_done")
    user = User.objects.get(username="ada")
    assert user.email == "ada@example.com"
    assert user.email_verified_at is None
    assert "_auth_user_id" not in client.session  # signed in only once the address is confirmed
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ada@example.com"]
    assert link_in(mail.outbox[0])


@pytest.mark.django_db
def test_after_sign_up_the_page_says_where_the_link_went(client):
    response = client.post(URL, GOOD, follow=True)

    assert response.redirect_chain[-1][0] == reverse("accounts:register_done")
    assert "Check your email" in response.content.decode()
    assert "ada@example.com" in response.content.decode()


@pytest.mark.django_db
def test_the_link_confirms_the_address_and_then_the_user_signs_in(client):
    post(client)
    client.get(link_in(mail.outbox[0]))

    response = client.post(reverse("login"), {"username": "ada", "password": GOOD["password1"]}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("conversations:index")
    assert User.objects.get(username="ada").email_verified


@pytest.mark.django_db
def test_sign_up_with_a_taken_address_looks_the_same_and_tells_the_owner_instead(client):
    owner = UserFactory(username="ada_original", email="ada@example.com")
    fresh = post(client, username="someone", email="fresh@example.com")
    fresh_page = page_text(client.get(fresh["Location"]), "fresh@example.com")
    mail.outbox.clear()

    taken = post(client, username="other", email="ADA@EXAMPLE.COM")

    assert taken.status_code == fresh.status_code == 302
    assert taken["Location"] == fresh["Location"]
    taken_page = page_text(client.get(taken["Location"]), "ada@example.com")
    assert taken_page == fresh_page
    assert not User.objects.filter(username="other").exists()
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    notice = mail.outbox[0]
    assert "Someone tried to use your address" in notice.subject
    assert owner.username in notice.body
    assert "/accounts/password_reset/" in notice.body
    assert "/accounts/verify/" not in notice.body  # no link that would take over the address


@pytest.mark.django_db
def test_a_taken_address_is_never_named_in_the_form(client):
    UserFactory(email="ada@example.com")

    response = post(client, username="other", password2="mismatch-Mismatch-1")  # stays on the form

    assert response.status_code == 200
    assert "already" not in response.content.decode()
    assert field_errors(response, "email") == []


@pytest.mark.django_db
def test_sign_up_with_a_taken_address_hashes_the_password_like_a_new_account(client, monkeypatch):
    from accounts import forms

    UserFactory(email="ada@example.com")
    hashed = []
    monkeypatch.setattr(forms, "make_password", lambda password: hashed.append(password))

    post(client, username="other")

    assert hashed == [GOOD["password1"]]


@pytest.mark.django_db
def test_without_verification_a_taken_address_can_only_be_said(client, settings):
    settings.EMAIL_VERIFICATION_REQUIRED = False
    UserFactory(email="ada@example.com")

    response = post(client, username="other", email="ADA@EXAMPLE.COM")

    assert response.status_code == 200
    assert "An account with this email address already exists" in " ".join(field_errors(response, "email"))
    assert User.objects.count() == 1
    assert mail.outbox == []


@pytest.mark.django_db
def test_username_taken_ignoring_case_is_a_field_error(client):
    UserFactory(username="Ada")

    response = post(client, email="new@example.com")

    assert field_errors(response, "username")
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_database_refuses_duplicate_email_in_other_case():
    from django.db import IntegrityError, transaction

    UserFactory(email="x@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="second", email="X@example.com")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password, rule",
    [
        ("Sh0rt-pass", "This password is too short. It must contain at least 12 characters."),
        ("Password123456", "This password is too common."),
        ("adalovelace-99", "too similar to the username"),
        ("alllowercaseletters", "must mix at least 3 of: lower case letters, upper case letters, digits and symbols"),
        ("ALLUPPER12345", "must mix at least 3 of"),
    ],
)
def test_each_failing_password_rule_is_named(client, password, rule):
    response = post(client, username="adalovelace", password1=password, password2=password)

    errors = " ".join(field_errors(response, "password1"))
    assert rule in errors
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password",
    ["Analyticalengine1844", "Analytical-Engine-Notes", "analytical-engine-1844", "ANALYTICAL-ENGINE-1844"],
    ids=["lower upper digits", "lower upper symbols", "lower digits symbols", "upper digits symbols"],
)
def test_a_password_of_exactly_three_kinds_of_character_is_accepted(client, password):
    response = post(client, password1=password, password2=password)

    assert response.status_code == 302
    assert User.objects.filter(username=GOOD["username"]).exists()


@pytest.mark.django_db
def test_a_password_like_the_email_address_is_refused(client):
    password = "Charles.Babbage@example"
    response = post(client, email="charles.babbage@example.com", password1=password, password2=password)

    assert "too similar to the email address" in " ".join(field_errors(response, "password1"))
    assert not User.objects.exists()


@pytest.mark.django_db
def test_several_failing_rules_are_all_named(client):
    response = post(client, password1="abc", password2="abc")

    errors = " ".join(field_errors(response, "password1"))
    assert "too short" in errors
    assert "must mix at least 3" in errors


@pytest.mark.django_db
def test_mismatched_passwords_are_refused(client):
    response = post(client, password2="Analytical-Engine-1844")

    assert "didn’t match" in " ".join(field_errors(response, "password2"))
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["username", "email", "password1", "password2"])
def test_missing_field_is_reported_on_that_field(client, field):
    response = post(client, **{field: ""})

    assert "This field is required." in field_errors(response, field)
    assert not User.objects.exists()


@pytest.mark.django_db
def test_invalid_email_is_reported(client):
    response = post(client, email="not-an-address")

    assert "Enter a valid email address." in field_errors(response, "email")


@pytest.mark.django_db
def test_errors_render_next_to_their_field(client):
    response = post(client, email="not-an-address")

    html = response.content.decode()
    # Django renders each field's errors inside that field's group, linked by aria-describedby.
    assert 'id="id_email_error"' in html
    assert 'aria-invalid="true"' in html
    assert "Enter a valid email address." in html


@pytest.mark.django_db
def test_signed_in_user_visiting_register_goes_home(client, user):
    client.force_login(user)

    assert client.get(URL)["Location"] == reverse("conversations:index")
