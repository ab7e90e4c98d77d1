import re
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail, signing
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import UserFactory

PENDING = reverse("accounts:verify_email_pending")
RESEND = reverse("accounts:verify_email_resend")


def confirm_url(token: str) -> str:
    return reverse("accounts:verify_email_confirm", kwargs={"token": token})


@pytest.mark.django_db
@pytest.mark.parametrize("url", [reverse("conversations:index"), reverse("accounts:profile"), reverse("password_change")])
def test_unverified_user_sees_only_the_verify_page(client, unverified_user, url):
    client.force_login(unverified_user)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == PENDING


@pytest.mark.django_db
def test_unverified_htmx_request_is_sent_to_verify_page_as_full_reload(client, unverified_user):
    client.force_login(unverified_user)

    response = client.get(reverse("conversations:index"), headers={"HX-Request": "true"})

    assert response["HX-Redirect"] == PENDING


@pytest.mark.django_db
def test_verify_page_names_the_address_and_offers_resend(client, unverified_user):
    client.force_login(unverified_user)

    response = client.get(PENDING)

    assert response.status_code == 200
    assert unverified_user.email in response.content.decode()
    assert RESEND in response.content.decode()


@pytest.mark.django_db
def test_unverified_user_can_log_out(client, unverified_user):
    client.force_login(unverified_user)

    client.post(reverse("logout"))

    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_valid_link_verifies_and_opens_the_app(client, unverified_user):
    client.force_login(unverified_user)

    response = client.get(confirm_url(unverified_user.make_verification_token()))

    assert response["Location"] == reverse("conversations:index")
    unverified_user.refresh_from_db()
    assert unverified_user.email_verified_at is not None
    assert client.get(reverse("conversations:index")).status_code == 200


@pytest.mark.django_db
def test_valid_link_works_without_being_signed_in(client, unverified_user):
    response = client.get(confirm_url(unverified_user.make_verification_token()))

    assert response["Location"] == reverse("login")
    unverified_user.refresh_from_db()
    assert unverified_user.email_verified


@pytest.mark.django_db
def test_expired_link_is_refused_and_says_so(client, unverified_user, settings):
    issued = timezone.now().timestamp() - settings.EMAIL_VERIFICATION_MAX_AGE - 5
    with mock.patch("django.core.signing.time.time", return_value=issued):
        token = unverified_user.make_verification_token()

    response = client.get(confirm_url(token))

    assert response.status_code == 400
    assert b"This link has expired" in response.content
    unverified_user.refresh_from_db()
    assert unverified_user.email_verified_at is None


@pytest.mark.django_db
def test_link_just_inside_its_lifetime_still_works(client, unverified_user, settings):
    issued = timezone.now().timestamp() - settings.EMAIL_VERIFICATION_MAX_AGE + 30
    with mock.patch("django.core.signing.time.time", return_value=issued):
        token = unverified_user.make_verification_token()

    client.get(confirm_url(token))

    unverified_user.refresh_from_db()
    assert unverified_user.email_verified


class SigningClock:
    """Stands in for the `time` module that django.core.signing reads the time from: the
    moment a link is signed, and the moment it is checked, are what the test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


HOUR = 60 * 60


def link_emailed_at_sign_up(client) -> str:
    response = client.post(
        reverse("accounts:register"),
        {"username": "newcomer", "email": "newcomer@example.com", "password1": "Tr1cky-Passw0rd!", "password2": "Tr1cky-Passw0rd!"},
    )
    assert response.status_code == 302
    [message] = mail.outbox
    assert "The link works for 48 hours." in message.body
    return re.search(r"https?://\S+/verify/\S+", message.body).group(0)


@pytest.mark.django_db
@pytest.mark.parametrize("opened_after, verified", [(47 * HOUR + 59 * 60, True), (48 * HOUR + 1, False)])
def test_the_emailed_link_works_for_48_hours_and_not_a_second_more(client, opened_after, verified):
    clock = SigningClock(1_800_000_000.0)
    with mock.patch("django.core.signing.time", clock):
        link = link_emailed_at_sign_up(client)
        clock.now += opened_after

        response = client.get(link)

    user = User.objects.get(username="newcomer")
    assert user.email_verified is verified
    if not verified:
        assert response.status_code == 400
        assert b"This link has expired" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature altered
        lambda t: "x" + t,  # payload altered
        lambda t: t.split(":")[0],  # signature removed
        lambda t: "garbage",
    ],
)
def test_tampered_link_is_refused(client, unverified_user, tamper):
    response = client.get(confirm_url(tamper(unverified_user.make_verification_token())))

    assert response.status_code == 400
    assert b"This link is not valid" in response.content
    unverified_user.refresh_from_db()
    assert unverified_user.email_verified_at is None


@pytest.mark.django_db
def test_link_forged_for_another_user_is_refused(client, unverified_user):
    victim = UserFactory(unverified=True)
    forged = signing.dumps({"u": victim.pk, "e": unverified_user.email}, salt="accounts.email-verification")

    client.get(confirm_url(forged))

    victim.refresh_from_db()
    assert victim.email_verified_at is None


@pytest.mark.django_db
def test_link_for_a_previous_address_stops_working(client, unverified_user):
    token = unverified_user.make_verification_token()
    unverified_user.email = "changed@example.com"
    unverified_user.save()

    response = client.get(confirm_url(token))

    assert response.status_code == 400
    unverified_user.refresh_from_db()
    assert unverified_user.email_verified_at is None


@pytest.mark.django_db
def test_resend_sends_a_working_link(client, unverified_user):
    client.force_login(unverified_user)

    client.post(RESEND)

    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/verify/\S+/)", mail.outbox[0].body).group(1)
    client.get(link)
    unverified_user.refresh_from_db()
    assert unverified_user.email_verified


@pytest.mark.django_db
def test_resend_is_rate_limited(client, unverified_user):
    client.force_login(unverified_user)
    client.post(RESEND)

    response = client.post(RESEND, follow=True)

    assert len(mail.outbox) == 1
    assert "You can ask for another in" in response.content.decode()


@pytest.mark.django_db
def test_resend_works_again_after_the_interval(client, unverified_user, settings):
    client.force_login(unverified_user)
    client.post(RESEND)
    User.objects.filter(pk=unverified_user.pk).update(
        verification_sent_at=timezone.now() - timedelta(seconds=settings.EMAIL_VERIFICATION_RESEND_SECONDS + 1)
    )

    client.post(RESEND)

    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_resend_needs_post(client, unverified_user):
    client.force_login(unverified_user)

    assert client.get(RESEND).status_code == 405
    assert mail.outbox == []


@pytest.mark.django_db
def test_verification_can_be_turned_off(client, unverified_user, settings):
    settings.EMAIL_VERIFICATION_REQUIRED = False
    client.force_login(unverified_user)

    assert client.get(reverse("conversations:index")).status_code == 200


@pytest.mark.django_db
def test_sign_up_without_verification_sends_no_email(client, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_VERIFICATION_REQUIRED = False
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("accounts:register"),
            {"username": "bob", "email": "bob@example.com",
             "password1": "Kettle-Whistle-77", "password2": "Kettle-Whistle-77"},
            follow=True,
        )

    assert response.redirect_chain[-1][0] == reverse("conversations:index")
    assert mail.outbox == []


@pytest.mark.django_db
def test_createsuperuser_counts_as_verified():
    call_command("createsuperuser", username="root", email="root@example.com", interactive=False, verbosity=0)

    assert User.objects.get(username="root").email_verified


CHANGE = reverse("accounts:verify_email_change")


@pytest.mark.django_db
def test_a_mistyped_address_can_be_corrected_and_the_link_goes_there(client, unverified_user):
    old_link = unverified_user.make_verification_token()
    client.force_login(unverified_user)

    response = client.post(CHANGE, {"email": "Right@Example.com"})

    assert response["Location"] == PENDING
    unverified_user.refresh_from_db()
    assert unverified_user.pending_email == "right@example.com"
    assert "right@example.com" in client.get(PENDING).content.decode()
    assert [m.to for m in mail.outbox] == [["right@example.com"]]
    assert client.get(confirm_url(old_link)).status_code == 400  # the old address's link is dead
    new_link = re.search(r"http://testserver(/accounts/verify/\S+/)", mail.outbox[0].body).group(1)
    client.get(new_link)
    unverified_user.refresh_from_db()
    assert unverified_user.email_verified
    assert (unverified_user.email, unverified_user.pending_email) == ("right@example.com", "")


@pytest.mark.django_db
def test_changing_to_a_taken_address_looks_the_same_and_tells_its_owner(client, unverified_user):
    owner = UserFactory(email="taken@example.com")
    before = unverified_user.email
    client.force_login(unverified_user)

    response = client.post(CHANGE, {"email": "Taken@Example.com"}, follow=True)

    assert response.redirect_chain[-1][0] == PENDING
    page = response.content.decode()
    assert "We sent a new link to taken@example.com" in page
    assert "already" not in page
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert "/accounts/verify/" not in mail.outbox[0].body
    unverified_user.refresh_from_db()
    assert unverified_user.email == before
    assert not unverified_user.email_verified


@pytest.mark.django_db
def test_a_link_for_an_address_taken_since_it_was_sent_says_so(client, unverified_user):
    client.force_login(unverified_user)
    client.post(CHANGE, {"email": "new@example.com"})
    link = re.search(r"http://testserver(/accounts/verify/\S+/)", mail.outbox[0].body).group(1)
    UserFactory(email="NEW@example.com")

    response = client.get(link)

    assert response.status_code == 409
    assert "already in use" in response.content.decode()
    unverified_user.refresh_from_db()
    assert not unverified_user.email_verified


@pytest.mark.django_db
def test_changing_back_to_the_original_address_sends_the_link_there(client, unverified_user):
    original = unverified_user.email
    unverified_user.switch_address("typo@example.com")
    client.force_login(unverified_user)

    client.post(CHANGE, {"email": original})

    unverified_user.refresh_from_db()
    assert unverified_user.pending_email == ""
    assert [m.to for m in mail.outbox] == [[original]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "email, error",
    [
        ("not-an-address", "Enter a valid email address."),
        ("", "This field is required."),
    ],
)
def test_a_bad_new_address_is_refused_beside_the_field(client, unverified_user, email, error):
    before = unverified_user.email
    client.force_login(unverified_user)

    response = client.post(CHANGE, {"email": email})

    assert response.status_code == 422
    assert error in " ".join(response.context["email_form"].errors["email"])
    unverified_user.refresh_from_db()
    assert (unverified_user.email, unverified_user.pending_email) == (before, "")
    assert mail.outbox == []


@pytest.mark.django_db
def test_changing_the_address_is_rate_limited_like_a_resend(client, unverified_user):
    client.force_login(unverified_user)
    client.post(RESEND)

    response = client.post(CHANGE, {"email": "other@example.com"})

    assert response.status_code == 422
    assert "A link was sent moments ago" in " ".join(response.context["email_form"].errors["email"])
    unverified_user.refresh_from_db()
    assert unverified_user.pending_email == ""
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_verified_user_cannot_use_the_address_change(client, user):
    client.force_login(user)

    response = client.post(CHANGE, {"email": "elsewhere@example.com"})

    assert response["Location"] == reverse("conversations:index")
    user.refresh_from_db()
    assert user.email != "elsewhere@example.com"
