"""chatter's system checks.

Django's deploy checks security.W001, W002 and W003 look for its own middleware by its path
in MIDDLEWARE. MIDDLEWARE names chatter's async subclasses of those classes instead
(chatter.middleware), so settings silences the three and they are checked here by class.

The web lookups' settings are checked when the server starts, not at a user's first lookup."""

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.module_loading import import_string

REQUIRED_MIDDLEWARE = [
    ("W001", SecurityMiddleware, "HSTS, nosniff, the referrer policy and the HTTPS redirect are not applied"),
    ("W002", XFrameOptionsMiddleware, "pages are not served with an X-Frame-Options header"),
    ("W003", CsrfViewMiddleware, "forms are not protected against cross-site request forgery"),
]


@register(Tags.security, deploy=True)
def required_middleware(app_configs, **kwargs) -> list[Warning]:
    installed = [import_string(path) for path in settings.MIDDLEWARE]
    return [
        Warning(
            f"MIDDLEWARE has no {required.__module__}.{required.__qualname__} or subclass of it: {effect}.",
            id=f"chatter.{code}",
        )
        for code, required, effect in REQUIRED_MIDDLEWARE
        if not any(isinstance(cls, type) and issubclass(cls, required) for cls in installed)
    ]


LOOKUP_ADDRESSES = [("SEARCH_URL", "{query}"), ("WEATHER_URL", "{place}")]


@register()
def lookups_configured(app_configs, **kwargs) -> list[Error]:
    if not settings.WEB_LOOKUPS:
        return []
    errors = [
        Error(f"{name} must be an http or https address with {placeholder} in it (got {address!r}).",
              id="chatter.E001")
        for name, placeholder in LOOKUP_ADDRESSES
        if placeholder not in (address := getattr(settings, name))
        or urlsplit(address).scheme not in ("http", "https") or not urlsplit(address).hostname
    ]
    for cidr in settings.LOOKUP_ALLOWED_NETWORKS:
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            errors.append(Error(f"LOOKUP_ALLOWED_NETWORKS: {cidr!r} is not a network (e.g. 10.1.2.0/24).",
                                id="chatter.E002"))
    return errors
