"""The emails of account actions, sent as tasks (Django's tasks framework), off the request path
and queued only once the response has gone (enqueue_after): a request takes as long whether or
not it sends anything, so its timing says nothing about which addresses have accounts.
Arguments are plain values (ids, addresses, the site's base URL), so any backend carries them."""

import logging
from functools import wraps
from urllib.parse import urljoin

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.core.mail import send_mail
from django.db import close_old_connections, connection
from django.http import HttpResponse
from django.tasks import Task, task
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import User

logger = logging.getLogger(__name__)


def enqueue_after(response: HttpResponse, task: Task, **kwargs) -> HttpResponse:
    """Enqueue `task` once `response` has been sent: the server closes a response after its last
    byte, and Django then runs its closers. Even a task run at once in this process (the thread
    pool) then takes no time from the response it belongs to."""

    def enqueue() -> None:
        try:
            task.enqueue(**kwargs)
        except Exception:  # Django ignores a closer's exceptions: say what was lost
            logger.exception("Could not queue %s", task.name)

    response._resource_closers.append(enqueue)
    return response


def _closing_connections(func):
    """A task run in a pool thread closes its database connection afterwards, as a request does;
    not when run inside a transaction (an immediate backend runs it in the caller's)."""

    @wraps(func)
    def wrapped(**kwargs) -> None:
        try:
            func(**kwargs)
        finally:
            if not connection.in_atomic_block:
                close_old_connections()

    return wrapped


def _mail(*, subject: str, template: str, context: dict, to: str) -> None:
    send_mail(subject=subject, message=render_to_string(template, context), from_email=None, recipient_list=[to])


@task
@_closing_connections
def verification_email_send(*, user_id: int, base_url: str) -> None:
    """Email the user a signed link that confirms the address they are verifying."""
    user = User.objects.get(pk=user_id)
    path = reverse("accounts:verify_email_confirm", kwargs={"token": user.make_verification_token()})
    context = {
        "user": user,
        "address": user.address_to_verify,
        "link": urljoin(base_url, path),
        "site_name": "chatter",
        "hours": settings.EMAIL_VERIFICATION_MAX_AGE // 3600,
    }
    _mail(
        subject="Confirm your email address for chatter",
        template="accounts/email/verify_email.txt",
        context=context,
        to=user.address_to_verify,
    )
    logger.info("Verification email sent to user %s", user.pk)


@task
@_closing_connections
def address_taken_notice_send(*, address: str, base_url: str) -> None:
    """Tell the owner of `address` that someone tried to use it for another account, instead of
    telling that someone the address has an account."""
    owner = User.objects.filter(email__iexact=address).first()
    if owner is None:  # the account went away since: nothing to say
        return
    context = {
        "user": owner,
        "login_link": urljoin(base_url, reverse("login")),
        "reset_link": urljoin(base_url, reverse("password_reset")),
        "site_name": "chatter",
    }
    _mail(
        subject="Someone tried to use your address on chatter",
        template="accounts/email/address_taken.txt",
        context=context,
        to=owner.email,
    )
    logger.info("Address-taken notice sent to user %s", owner.pk)


@task
@_closing_connections
def password_reset_email_send(*, email: str, domain: str, use_https: bool) -> None:
    """Django's password reset email, to each active account with this address (none: nothing)."""
    form = PasswordResetForm({"email": email})
    if form.is_valid():
        form.save(domain_override=domain, use_https=use_https)
