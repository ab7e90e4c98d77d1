import logging

from django.conf import settings
from django.core.mail import send_mail
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import User

logger = logging.getLogger(__name__)


def verification_email_send(*, user: User, request: HttpRequest) -> None:
    """Email the user a signed link that confirms their address."""
    link = request.build_absolute_uri(
        reverse("accounts:verify_email_confirm", kwargs={"token": user.make_verification_token()})
    )
    hours = settings.EMAIL_VERIFICATION_MAX_AGE // 3600
    context = {"user": user, "link": link, "site_name": "chatter", "hours": hours}
    send_mail(
        subject="Confirm your email address for chatter",
        message=render_to_string("accounts/email/verify_email.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )
    logger.info("Verification email sent to user %s", user.pk)
