"""Rate limits on account actions (django-ratelimit counters in the default cache).

Two allowances, both settings: RATE_LIMIT_ACTIONS_PER_IP counts every sign-up, password reset,
new link and address change asked for from one client address; RATE_LIMIT_EMAILS_PER_ADDRESS
counts the emails those actions would send to one address, whether or not it has an account
(so the answer says nothing about accounts). Past either, the client gets a 429 page.
"""

import logging
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage
from redis import RedisError

logger = logging.getLogger(__name__)

ACTIONS = "accounts.actions-per-ip"
EMAILS = "accounts.emails-per-address"


def seconds_to_wait(request: HttpRequest, *, group: str, rate: str, key: Callable | str) -> int | None:
    """Count this request; the seconds until the allowance renews when it is used up, else None.
    A cache that cannot be reached (Redis down) counts nothing and refuses nothing: one log line,
    not an error page (lockouts live in the database and still hold)."""
    try:
        usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    except (OSError, RedisError) as error:  # Redis's, when the cache is Redis
        logger.warning("Rate limit not counted, the cache is unreachable: group=%s error=%s", group, type(error).__name__)
        return None
    if usage is None or not usage["should_limit"]:
        return None
    return max(usage["time_left"], 1)


def refusal(request: HttpRequest, seconds: int) -> HttpResponse:
    minutes = max(1, -(-seconds // 60))
    response = render(request, "accounts/rate_limited.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(seconds)
    return response


def emails_to(request: HttpRequest, address: str) -> HttpResponse | None:
    """A 429 page when `address` has been sent too many emails lately, else None (and counted)."""
    seconds = seconds_to_wait(
        request, group=EMAILS, rate=settings.RATE_LIMIT_EMAILS_PER_ADDRESS, key=lambda group, r: address.lower()
    )
    return refusal(request, seconds) if seconds else None


def actions_per_ip(view: Callable) -> Callable:
    """Each POST to the view counts against the client address's allowance of account actions."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            seconds = seconds_to_wait(request, group=ACTIONS, rate=settings.RATE_LIMIT_ACTIONS_PER_IP, key="ip")
            if seconds:
                return refusal(request, seconds)
        return view(request, *args, **kwargs)

    return wrapped
