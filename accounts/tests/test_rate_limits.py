"""Account actions that send email, or probe for accounts, are rate limited per client address
and per email address, and answer a friendly 429 page past the limit."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory

RESET = reverse("password_reset")
REGISTER = reverse("accounts:register")
RESEND = reverse("accounts:verify_email_resend")
CHANGE = reverse("accounts:verify_email_change")


def sign_up(client, n: int, ip: str = "10.0.0.1", **changes):
    data = {
        "username": f"person{n}",
        "email": f"person{n}@example.com",
        "password1": "Analytical-Engine-1843",
        "password2": "Analytical-Engine-1843",
        **changes,
    }
    return client.post(REGISTER, data, REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_ten_password_resets_for_one_address_send_only_the_allowance(client, user, settings):
    allowance = int(settings.RATE_LIMIT_EMAILS_PER_ADDRESS.split("/")[0])

    statuses = [client.post(RESET, {"email": user.email}).status_code for _ in range(10)]

    assert statuses == [302] * allowance + [429] * (10 - allowance)
    assert len(mail.outbox) == allowance


@pytest.mark.django_db
def test_the_refusal_is_a_friendly_page_that_says_when_to_come_back(client, user, settings):
    settings.RATE_LIMIT_EMAILS_PER_ADDRESS = "1/h"
    client.post(RESET, {"email": user.email})

    response = client.post(RESET, {"email": user.email})

    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many requests" in page
    assert "try again in" in page
    assert 0 < int(response["Retry-After"]) <= 3600


@pytest.mark.django_db
def test_the_address_allowance_counts_addresses_alike_whether_or_not_they_have_an_account(client, user, settings):
    settings.RATE_LIMIT_EMAILS_PER_ADDRESS = "2/h"
    known = [client.post(RESET, {"email": user.email}).status_code for _ in range(3)]
    unknown = [client.post(RESET, {"email": "nobody@example.com"}).status_code for _ in range(3)]

    assert known == unknown == [302, 302, 429]


@pytest.mark.django_db
def test_the_address_allowance_ignores_case(client, user, settings):
    settings.RATE_LIMIT_EMAILS_PER_ADDRESS = "1/h"
    client.post(RESET, {"email": user.email.lower()})

    assert client.post(RESET, {"email": user.email.upper()}).status_code == 429


@pytest.mark.django_db
def test_one_client_address_gets_its_allowance_of_actions_whatever_the_email(client, settings):
    settings.RATE_LIMIT_ACTIONS_PER_IP = "3/h"
    statuses = [
        client.post(RESET, {"email": f"n{n}@example.com"}, REMOTE_ADDR="10.1.1.1").status_code for n in range(4)
    ]

    assert statuses == [302, 302, 302, 429]
    assert client.post(RESET, {"email": "n9@example.com"}, REMOTE_ADDR="10.1.1.2").status_code == 302


@pytest.mark.django_db
def test_a_forged_forwarded_for_header_does_not_renew_the_allowance(client, settings):
    settings.RATE_LIMIT_ACTIONS_PER_IP = "1/h"
    client.post(RESET, {"email": "a@example.com"}, HTTP_X_FORWARDED_FOR="198.51.100.1")

    response = client.post(RESET, {"email": "b@example.com"}, HTTP_X_FORWARDED_FOR="198.51.100.2")

    assert response.status_code == 429


@pytest.mark.django_db
def test_sign_ups_from_one_address_are_limited_even_when_they_fail(client, settings):
    # Probing for taken usernames is a failed sign-up: it counts like the rest.
    settings.RATE_LIMIT_ACTIONS_PER_IP = "3/h"
    UserFactory(username="taken")
    statuses = [sign_up(client, n, username="taken").status_code for n in range(3)]

    assert statuses == [200, 200, 200]
    assert sign_up(client, 9).status_code == 429
    assert not User.objects.filter(username="person9").exists()


@pytest.mark.django_db
def test_sign_ups_naming_one_address_send_it_only_the_allowance(client, settings):
    settings.RATE_LIMIT_EMAILS_PER_ADDRESS = "2/h"
    UserFactory(email="owner@example.com")

    statuses = [sign_up(client, n, email="owner@example.com").status_code for n in range(4)]

    assert statuses == [302, 302, 429, 429]
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_new_links_are_limited_per_address(client, unverified_user, settings):
    settings.RATE_LIMIT_EMAILS_PER_ADDRESS = "2/h"
    settings.EMAIL_VERIFICATION_RESEND_SECONDS = 0
    client.force_login(unverified_user)

    statuses = [client.post(RESEND).status_code for _ in range(3)]

    assert statuses == [302, 302, 429]
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_address_changes_are_limited_per_client_address(client, unverified_user, settings):
    settings.RATE_LIMIT_ACTIONS_PER_IP = "2/h"
    settings.EMAIL_VERIFICATION_RESEND_SECONDS = 0
    client.force_login(unverified_user)

    statuses = [client.post(CHANGE, {"email": f"new{n}@example.com"}).status_code for n in range(3)]

    assert statuses == [302, 302, 429]
    unverified_user.refresh_from_db()
    assert unverified_user.pending_email == "new1@example.com"


@pytest.mark.django_db
def test_pages_are_not_counted_only_requests(client, settings):
    settings.RATE_LIMIT_ACTIONS_PER_IP = "1/h"
    for _ in range(3):
        assert client.get(RESET).status_code == 200

    assert client.post(RESET, {"email": "a@example.com"}).status_code == 302


@pytest.mark.django_db
def test_limits_can_be_turned_off(client, user, settings):
    settings.RATELIMIT_ENABLE = False
    settings.RATE_LIMIT_EMAILS_PER_ADDRESS = "1/h"

    statuses = [client.post(RESET, {"email": user.email}).status_code for _ in range(3)]

    assert statuses == [302, 302, 302]
