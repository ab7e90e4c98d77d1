"""Login lockout: django-axes' database handler, locking usernames and, more sparingly, addresses.

axes counts failures per lockout parameter against one limit. chatter locks a username after
AXES_FAILURE_LIMIT failures (AXES_LOCKOUT_PARAMETERS = ["username"]), and an address only when
failures for AXES_IP_USERNAME_LIMIT different usernames came from it within the cool-off:
someone trying many accounts, not one person mistyping behind an office's shared address.
"""

from axes.handlers.database import AxesDatabaseHandler
from axes.attempts import get_cool_off_threshold
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.http import HttpRequest


def usernames_failed_from(request: HttpRequest) -> int:
    """How many different usernames failed to log in from the request's address lately."""
    return (
        AccessAttempt.objects.filter(
            ip_address=request.axes_ip_address, attempt_time__gte=get_cool_off_threshold(request)
        )
        .values("username")
        .distinct()
        .count()
    )


class LockoutHandler(AxesDatabaseHandler):
    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        if usernames_failed_from(request) >= settings.AXES_IP_USERNAME_LIMIT:
            return max(failures, get_failure_limit(request, credentials))
        return failures
