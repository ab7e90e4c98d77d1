"""Field rules for AIModel. Each raises a ValidationError that names the rule, never the value
(an API key pasted into the wrong field must not be echoed back)."""

import ipaddress
import re
from datetime import date
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

NAME_RE = r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,49}\Z"
DEPLOYMENT_RE = r"\A[A-Za-z0-9._:/-]{1,128}\Z"
API_VERSION_RE = re.compile(r"\A(\d{4})-(\d{2})-(\d{2})(-preview)?\Z")
ENV_NAME_RE = r"\A[A-Z_][A-Z0-9_]{0,99}\Z"

validate_name = RegexValidator(
    NAME_RE,
    "Use 1-50 letters, digits, '.', '_' or '-', starting with a letter or digit.",
    code="invalid_name",
)
validate_deployment_name = RegexValidator(
    DEPLOYMENT_RE,
    "Use 1-128 letters, digits, '.', '_', '-', ':' or '/' (e.g. gpt-4.1-mini, llama3.2:3b, org/Model-7B).",
    code="invalid_deployment",
)
validate_api_key_env = RegexValidator(
    ENV_NAME_RE,
    "Enter the NAME of an environment variable (capital letters, digits and '_', e.g. OPENAI_API_KEY), "
    "never the key itself.",
    code="invalid_env_name",
)


def validate_api_version(value: str) -> None:
    """YYYY-MM-DD or YYYY-MM-DD-preview, a real date, and one of settings.AZURE_API_VERSIONS."""
    match = API_VERSION_RE.match(value)
    if match:
        try:
            date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            match = None
    if not match:
        raise ValidationError("Use the form YYYY-MM-DD or YYYY-MM-DD-preview.", code="invalid_api_version")
    allowed = settings.AZURE_API_VERSIONS
    if not allowed:
        raise ValidationError(
            "No Azure API version is allowed yet: list the allowed versions in the AZURE_API_VERSIONS setting.",
            code="api_version_not_allowed",
        )
    if value not in allowed:
        raise ValidationError(
            "This API version is not allowed here. Allowed: %(allowed)s (set by AZURE_API_VERSIONS).",
            code="api_version_not_allowed",
            params={"allowed": ", ".join(allowed)},
        )


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_api_endpoint(value: str) -> None:
    """https, or plain http to a loopback address (localhost, 127.0.0.0/8, ::1); no credentials,
    query or fragment in the URL (keys belong in the environment). Leaves malformed URLs to the
    URL validator."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        return
    if not host:
        return
    if parts.scheme == "http":
        if not is_loopback_host(host):
            raise ValidationError(
                "Use https. Plain http is allowed only to this machine (localhost, 127.0.0.1, ::1).",
                code="insecure_endpoint",
            )
    elif parts.scheme != "https":
        raise ValidationError("Use an https URL (or http to localhost).", code="invalid_scheme")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            "Remove the user name and password from the URL; the key goes in the environment variable "
            "named in the API key variable field.",
            code="credentials_in_url",
        )
    if parts.query or parts.fragment:
        raise ValidationError(
            "Remove the query string (?...) and fragment (#...) from the URL.", code="query_in_url"
        )


def validate_plain_text(value: str) -> None:
    """No control characters other than tab and line breaks."""
    if any(ord(c) < 32 and c not in "\t\n\r" or ord(c) == 127 for c in value):
        raise ValidationError("Use plain text without control characters.", code="control_characters")
