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


@pytest.mark.django_db
def test_sign_up_creates_user_logs_in_and_emails_a_verification_link(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client)

    assert response.status_code == 302
    user = User.objects.get(username="ada")
    assert user.email == "ada@example.com"
    assert user.email_verified_at is None
    assert client.session["_auth_user_id"] == str(user.pk)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ada@example.com"]
    assert re.search(r"http://testserver/accounts/verify/[^/\s]+/", mail.outbox[0].body)


@pytest.mark.django_db
def test_new_user_lands_on_verify_page(client):
    response = client.post(URL, GOOD, follow=True)

    assert response.redirect_chain[-1][0] == reverse("accounts:verify_email_pending")
    assert b"Verify your email" in response.content


@pytest.mark.django_db
def test_email_taken_ignoring_case_is_a_field_error_and_saves_nothing(client):
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
