"""Rules of the accounts app that mutation testing (make mutants, docs/mutants.md) found untested:
each test here fails on a mutant that the rest of the suite let survive."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.forms import EmailChangeForm, ResetPasswordForm
from accounts.models import User
from accounts.tests.factories import UserFactory
from accounts.validators import CharacterClassValidator

# The help text the sign-up page shows under the password, word for word.
KINDS = "lower case letters, upper case letters, digits and symbols."


def test_a_validator_made_without_options_asks_for_three_kinds_of_character():
    # Django builds the configured validators once per process, so only a fresh one shows its default.
    validator = CharacterClassValidator()
    validator.validate("abcDEF123")  # three kinds
    with pytest.raises(ValidationError) as raised:
        validator.validate("abcdefDEF")  # two
    assert raised.value.code == "password_too_simple"
    assert raised.value.message % raised.value.params == (
        "This password must mix at least 3 of: lower case letters, upper case letters, digits and symbols "
        "(it has lower case letters, upper case letters)."
    )


def test_a_validator_keeps_the_number_of_kinds_it_was_given():
    validator = CharacterClassValidator(min_classes=4)
    with pytest.raises(ValidationError) as raised:
        validator.validate("abcDEF123")
    assert raised.value.params["min"] == 4
    validator.validate("abcDEF123!")


def test_a_password_of_no_kind_at_all_says_so():
    with pytest.raises(ValidationError) as raised:
        CharacterClassValidator(min_classes=1).validate("")
    assert raised.value.code == "password_too_simple"
    assert raised.value.params == {"min": 1, "used": "none of them"}


def test_the_help_text_names_the_number_and_the_kinds():
    assert CharacterClassValidator(min_classes=3).get_help_text() == (
        f"Your password must mix at least 3 kinds of character: {KINDS}"
    )


def test_the_help_text_for_one_kind_is_singular():
    assert CharacterClassValidator(min_classes=1).get_help_text() == (
        f"Your password must mix at least 1 kind of character: {KINDS}"
    )


# accounts.models -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_superuser_gets_the_email_and_password_given_and_a_verified_address():
    root = User.objects.create_superuser("root", "root@example.com", "Root-Password-42")

    root.refresh_from_db()
    assert root.email == "root@example.com"
    assert root.check_password("Root-Password-42")
    assert root.is_superuser and root.is_staff
    assert root.email_verified_at is not None


@pytest.mark.django_db
def test_asking_to_switch_address_writes_only_the_address_kept_aside():
    user = UserFactory(theme=User.Theme.SYSTEM)
    stale = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).update(theme=User.Theme.DARK)  # changed meanwhile, elsewhere

    stale.switch_address("new@example.com")

    user.refresh_from_db()
    assert user.pending_email == "new@example.com"
    assert user.theme == User.Theme.DARK


# accounts.forms ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_correcting_to_the_address_the_link_went_to_is_refused_whatever_its_case():
    user = UserFactory(unverified=True, email="ada@example.com")

    form = EmailChangeForm(data={"email": "ADA@Example.com"}, user=user)

    assert not form.is_valid()
    assert [(e.code, e.message) for e in form.errors.as_data()["email"]] == [
        ("unchanged", "That is the address we already sent the link to.")
    ]


@pytest.mark.django_db
def test_a_new_password_lifts_the_lockout_of_that_username_only(client):
    locked, other = UserFactory(), UserFactory()
    for username in (locked.username, other.username):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            client.post(reverse("login"), {"username": username, "password": "wrong"}, REMOTE_ADDR="10.0.0.1")
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {locked.username, other.username}

    form = ResetPasswordForm(locked, {"new_password1": "Fresh-Password-77", "new_password2": "Fresh-Password-77"})
    assert form.is_valid(), form.errors
    form.save()

    assert list(AccessAttempt.objects.values_list("username", flat=True)) == [other.username]


@pytest.mark.django_db
def test_following_the_link_to_a_new_address_writes_only_the_address_fields():
    user = UserFactory(unverified=True, email="old@example.com", pending_email="new@example.com")
    stale = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).update(theme=User.Theme.DARK)  # changed meanwhile, elsewhere

    stale.mark_email_verified()

    user.refresh_from_db()
    assert (user.email, user.pending_email) == ("new@example.com", "")
    assert user.email_verified_at is not None
    assert user.theme == User.Theme.DARK


@pytest.fixture
def frozen_now(monkeypatch):
    """timezone.now() answers one fixed moment, which the test moves on by hand."""
    from django.utils import timezone

    clock = {"now": timezone.now()}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    return clock


@pytest.mark.django_db
def test_the_wait_before_another_link_counts_down_from_the_interval(frozen_now, settings):
    settings.EMAIL_VERIFICATION_RESEND_SECONDS = 60
    user = UserFactory(unverified=True)
    assert user.seconds_until_resend() == 0  # never sent

    user.verification_sent_at = frozen_now["now"]
    assert user.seconds_until_resend() == 60
    frozen_now["now"] += timedelta(seconds=30.5)
    assert user.seconds_until_resend() == 30  # rounded up: never "0 seconds" while still refused
    frozen_now["now"] += timedelta(seconds=29.499)
    assert user.seconds_until_resend() == 1
    frozen_now["now"] += timedelta(seconds=0.001)
    assert user.seconds_until_resend() == 0  # the interval is over: another link can be sent
    assert user.claim_verification_send()


@pytest.mark.django_db
def test_a_claimed_send_is_known_at_once_to_the_user_that_claimed_it(frozen_now, settings):
    settings.EMAIL_VERIFICATION_RESEND_SECONDS = 60
    user = UserFactory(unverified=True)

    assert user.claim_verification_send()

    assert user.verification_sent_at == frozen_now["now"]
    assert user.seconds_until_resend() == 60
    assert not user.claim_verification_send()


@pytest.mark.django_db
def test_the_link_for_a_long_address_stays_short_and_still_names_the_user():
    # A link is a line in an email: some mail programs break long lines, and a broken link fails.
    user = UserFactory(unverified=True, email="x" * 200 + "@example.com")

    token = user.make_verification_token()

    assert len(token) < 150
    assert User.from_verification_token(token) == user


# accounts.views ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_notice_to_a_taken_address_links_to_this_site_in_full(client):
    UserFactory(email="ada@example.com")
    mail.outbox.clear()

    client.post(
        reverse("accounts:register"),
        {"username": "ada2", "email": "ada@example.com", "password1": "Analytical-Engine-1843",
         "password2": "Analytical-Engine-1843"},
    )

    [notice] = mail.outbox
    assert f"http://testserver{reverse('login')}" in notice.body
    assert f"http://testserver{reverse('password_reset')}" in notice.body


@pytest.mark.django_db
def test_the_notice_sent_when_a_correction_names_a_taken_address_links_to_this_site_in_full(client, settings):
    settings.EMAIL_VERIFICATION_REQUIRED = True
    UserFactory(email="owner@example.com")
    client.force_login(UserFactory(unverified=True))
    mail.outbox.clear()

    client.post(reverse("accounts:verify_email_change"), {"email": "owner@example.com"})

    [notice] = mail.outbox
    assert notice.to == ["owner@example.com"]
    assert f"http://testserver{reverse('login')}" in notice.body


@pytest.mark.django_db
def test_the_lockout_page_offers_the_login_form_again_with_the_username_filled_in(client):
    user = UserFactory()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(reverse("login"), {"username": user.username, "password": "wrong"})

    assert response.status_code == 429
    page = response.content.decode()
    assert f'name="username" value="{user.username}"' in page
    assert 'name="password"' in page
    assert 'name="csrfmiddlewaretoken"' in page  # rendered with the request: the form can be sent


@pytest.mark.django_db
def test_the_account_page_shows_the_settings_form_and_the_usage_period(client, user):
    client.force_login(user)

    response = client.get(reverse("accounts:profile"))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="default_system_prompt"' in page
    assert "Usage in the last 30 days" in page


@pytest.mark.django_db
def test_saved_settings_say_so_and_refused_ones_answer_422(client, user):
    client.force_login(user)

    saved = client.post(reverse("accounts:profile"), {"default_system_prompt": "Be brief."}, follow=True)
    refused = client.post(reverse("accounts:profile"), {"default_system_prompt": "x" * 8001})

    assert saved.status_code == 200
    assert [str(m) for m in saved.context["messages"]] == ["Your settings are saved."]
    assert refused.status_code == 422
    user.refresh_from_db()
    assert user.default_system_prompt == "Be brief."


@pytest.mark.django_db
def test_the_waiting_page_counts_down_to_the_next_link(client, settings):
    settings.EMAIL_VERIFICATION_REQUIRED = True
    user = UserFactory(unverified=True)
    client.force_login(user)
    assert user.claim_verification_send()

    page = client.get(reverse("accounts:verify_email_pending")).content.decode()

    assert 'id="resend-wait" data-countdown="' in page

