"""Field rules for AIModel. Each raises a ValidationError that names the rule, never the value
(an API key pasted into the wrong field must not be echoed back)."""

import ipaddress
import re
import unicodedata
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
    """No control characters (Unicode's Cc: C0, DEL and C1) other than tab and line breaks."""
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in value):
        raise ValidationError("Use plain text without control characters.", code="control_characters")


# The token budget of one request ------------------------------------------------------------
# What the chat keeps free in every request on top of the reply's reservation (conversations.context
# uses this number). Token counts are exact for the models tiktoken knows, but OpenAI calls its
# formula an estimate that may change between model versions, providers may add a few tokens of their
# own, and models tiktoken does not know (local models behind an OpenAI-compatible API) are counted
# with o200k_base, which is close but not their tokenizer. 256 tokens is under 0.2% of a 128k window
# and about 6% of a 4k one: enough for the drift, cheap everywhere.
CONTEXT_MARGIN = 256
# The smallest prompt (system prompt, messages and reply priming) a model's window must leave room
# for once the reply and the margin are set aside: below this a model cannot take a real message.
MIN_PROMPT_TOKENS = 256


def validate_token_budget(*, context_window: int, max_completion_tokens: int) -> None:
    """The context window holds the longest reply, the chat's margin and a prompt of at least
    MIN_PROMPT_TOKENS. The error goes beside the field to change, with the numbers: the window when
    it is too small for any reply, otherwise the reply limit."""
    reserved = CONTEXT_MARGIN + MIN_PROMPT_TOKENS
    if context_window - reserved < 1:
        raise ValidationError(
            {
                "context_window": ValidationError(
                    "At least %(smallest)s tokens: the chat keeps %(margin)s tokens spare in every request and "
                    "needs room for a prompt of at least %(prompt)s tokens and a reply of at least 1.",
                    code="window_too_small",
                    params={"smallest": f"{reserved + 1:,}", "margin": CONTEXT_MARGIN, "prompt": MIN_PROMPT_TOKENS},
                )
            }
        )
    most = context_window - reserved
    if max_completion_tokens > most:
        raise ValidationError(
            {
                "max_completion_tokens": ValidationError(
                    "At most %(most)s with a context window of %(window)s tokens: the window must hold the reply, "
                    "the %(margin)s tokens the chat keeps spare and a prompt of at least %(prompt)s tokens. Lower "
                    "the reply limit, or raise the context window to at least %(needed)s.",
                    code="no_room_for_prompt",
                    params={
                        "most": f"{most:,}",
                        "window": f"{context_window:,}",
                        "margin": CONTEXT_MARGIN,
                        "prompt": MIN_PROMPT_TOKENS,
                        "needed": f"{max_completion_tokens + reserved:,}",
                    },
                )
            }
        )
