import html
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import PASSWORD, UserFactory

LOGIN = reverse("login")


def attempt(client, username, password="wrong-password", ip="10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def fail(client, username, times, ip="10.0.0.1"):
    """Fail `times` logins; the one that reaches the limit already answers with the lockout."""
    for n in range(1, times + 1):
        expected = 429 if n >= settings.AXES_FAILURE_LIMIT else 200
        assert attempt(client, username, ip=ip).status_code == expected


@pytest.mark.django_db
def test_wrong_password_shows_a_clear_error(client, user):
    response = attempt(client, user.username)

    assert response.status_code == 200
    assert "don't match an account" in html.unescape(response.content.decode())


@pytest.mark.django_db
def test_four_failures_do_not_lock(client, user):
    fail(client, user.username, 4)

    assert attempt(client, user.username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_five_failures_for_a_username_lock_it_even_with_the_right_password(client, user):
    fail(client, user.username, 5)

    response = attempt(client, user.username, PASSWORD, ip="10.0.0.2")

    assert response.status_code == 429
    assert "locked for 15 minutes" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_failures_for_many_usernames_from_one_address_lock_that_address(client, user, settings):
    for n in range(settings.AXES_IP_USERNAME_LIMIT):
        attempt(client, f"nobody{n}", ip="10.9.9.9")

    assert attempt(client, user.username, PASSWORD, ip="10.9.9.9").status_code == 429
    assert attempt(client, user.username, PASSWORD, ip="10.0.0.3").status_code == 302


@pytest.mark.django_db
def test_failures_for_fewer_usernames_leave_the_address_open(client, user, settings):
    for n in range(settings.AXES_IP_USERNAME_LIMIT - 1):
        attempt(client, f"nobody{n}", ip="10.9.9.9")

    assert attempt(client, user.username, PASSWORD, ip="10.9.9.9").status_code == 302


@pytest.mark.django_db
def test_one_locked_username_does_not_lock_out_others_behind_the_same_address(client, user):
    colleague = UserFactory()
    fail(client, colleague.username, 5, ip="192.0.2.10")  # an office behind one NAT address

    assert attempt(client, colleague.username, PASSWORD, ip="192.0.2.10").status_code == 429
    assert attempt(client, user.username, PASSWORD, ip="192.0.2.10").status_code == 302


@pytest.mark.django_db
def test_the_address_limit_is_a_setting(client, user, settings):
    settings.AXES_IP_USERNAME_LIMIT = 3
    for n in range(3):
        attempt(client, f"nobody{n}", ip="10.9.9.9")

    assert attempt(client, user.username, PASSWORD, ip="10.9.9.9").status_code == 429


class Clock:
    """The time as axes and Django read it (django.utils.timezone.now, and the copies of it that
    axes imported), set by the test instead of passing."""

    def __init__(self, monkeypatch) -> None:
        self.now = timezone.now()
        for where in ("django.utils.timezone.now", "axes.handlers.proxy.now", "axes.attempts.now"):
            monkeypatch.setattr(where, lambda: self.now)

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.mark.django_db
@pytest.mark.parametrize("later, locked", [({"minutes": 14, "seconds": 59}, True), ({"minutes": 15, "seconds": 1}, False)])
def test_a_lockout_lasts_15_minutes(client, user, clock, later, locked):
    fail(client, user.username, 5)
    clock.advance(**later)

    response = attempt(client, user.username, PASSWORD)

    assert response.status_code == (429 if locked else 302)


@pytest.mark.django_db
def test_failures_more_than_15_minutes_apart_do_not_add_up(client, user, clock):
    fail(client, user.username, 4)
    clock.advance(minutes=15, seconds=1)

    assert attempt(client, user.username).status_code == 200  # the fifth failure, but the first in 15 minutes
    assert attempt(client, user.username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_five_failures_within_15_minutes_lock(client, user, clock):
    for _ in range(4):
        assert attempt(client, user.username).status_code == 200
        clock.advance(minutes=3, seconds=44)  # the fifth comes 14 min 56 s after the first

    assert attempt(client, user.username).status_code == 429
    assert attempt(client, user.username, PASSWORD).status_code == 429


@pytest.mark.django_db
def test_five_failures_each_within_15_minutes_of_the_one_before_lock(client, user, clock):
    # As the README says: the count goes on while each failure comes within 15 minutes of the
    # one before (django-axes' cool-off runs from the last failure), here over 56 minutes.
    for _ in range(4):
        assert attempt(client, user.username).status_code == 200
        clock.advance(minutes=14)

    assert attempt(client, user.username).status_code == 429
    assert attempt(client, user.username, PASSWORD).status_code == 429


@pytest.mark.django_db
def test_limit_is_a_setting(client, user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    fail(client, user.username, 2)

    assert attempt(client, user.username, PASSWORD).status_code == 429


@pytest.mark.django_db
def test_staff_see_and_clear_a_lockout_in_the_admin(client, user):
    fail(client, user.username, 5)
    staff = UserFactory(staff=True)
    admin = type(client)()
    admin.force_login(staff)
    changelist = admin.get(reverse("admin:axes_accessattempt_changelist"))
    assert changelist.status_code == 200
    assert user.username in changelist.content.decode()

    ids = list(AccessAttempt.objects.values_list("pk", flat=True))
    admin.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )

    assert not AccessAttempt.objects.exists()
    assert attempt(client, user.username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_a_forged_forwarded_for_header_does_not_dodge_the_address_lockout(client, user, settings):
    for n in range(settings.AXES_IP_USERNAME_LIMIT):
        client.post(
            LOGIN, {"username": f"guess{n}", "password": "x"}, REMOTE_ADDR="10.7.7.7",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        )

    response = client.post(
        LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.7.7.7",
        HTTP_X_FORWARDED_FOR="198.51.100.200",
    )

    assert response.status_code == 429


@pytest.mark.django_db
def test_rotating_user_agents_does_not_dodge_either_lockout(client, user, settings):
    def attempt_as(username, agent, password="wrong-password", ip="10.4.4.4"):
        return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)

    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt_as(user.username, f"agent/{n}", ip=f"10.5.5.{n}")
    assert attempt_as(user.username, "agent/new", PASSWORD, ip="10.5.5.99").status_code == 429

    for n in range(settings.AXES_IP_USERNAME_LIMIT):
        attempt_as(f"nobody{n}", f"agent/{n}")
    other = UserFactory()
    assert attempt_as(other.username, "agent/fresh", PASSWORD).status_code == 429


@pytest.mark.django_db
def test_a_password_reset_through_the_emailed_link_lifts_the_lockout(client, user):
    import re

    from django.core import mail

    fail(client, user.username, 5)
    client.post(reverse("password_reset"), {"email": user.email})
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    client.post(form_page.redirect_chain[-1][0], {"new_password1": "Brand-New-Pass-77", "new_password2": "Brand-New-Pass-77"})

    assert attempt(client, user.username, "Brand-New-Pass-77").status_code == 302


@pytest.mark.django_db
def test_the_lockout_page_offers_the_reset_that_lifts_it(client, user):
    response = fail(client, user.username, 5) or attempt(client, user.username)

    assert "reset your password" in response.content.decode()
    assert reverse("password_reset") in response.content.decode()
