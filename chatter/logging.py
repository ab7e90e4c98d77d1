"""Logging for chatter: a request refused for what the client sent is one WARNING line.

Django logs a SuspiciousOperation (request body too large, too many fields, a malformed
multipart body, a disallowed Host...) on a django.security.<Name> logger at ERROR with the
whole traceback, and a BadRequest or an unparsable body on django.request with its traceback:
forty lines for something the client did, next to which a real error is easy to miss.
OneLineRefusals rewrites such a record, in place, as one WARNING line naming the cause, the
method, the path and the client's address (never the body). Every other record passes as it is:
a 5xx, or any exception that is not about the client's input, keeps its level and traceback.

settings.LOGGING attaches it to the loggers Django writes these records to (so every handler
sees the one line, including a test's caplog) and to each handler (so a django.security.*
logger not listed there is covered too).
"""

import logging

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http.multipartparser import MultiPartParserError

# Exceptions that mean "the client sent something we refuse", when answered with a 4xx.
# UnicodeDecodeError: Django's ASGI handler refuses a query string that is not UTF-8 with it.
CLIENT_INPUT_ERRORS = (SuspiciousOperation, BadRequest, MultiPartParserError, UnicodeDecodeError)

REFUSAL_FORMAT = "Request refused with %s (%s): %s %s from %s"


def _clean(value: object, limit: int = 300) -> str:
    """One line of ASCII: a client-chosen string can neither forge a log line nor flood one."""
    text = str(value).encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "..."


def refusal_args(status: int, cause: str, method: str, path: str, client: str | None) -> tuple:
    """The arguments for REFUSAL_FORMAT, cleaned."""
    return (status, _clean(cause.rstrip(".")), _clean(method, 16), _clean(path), _clean(client or "unknown", 64))


def log_refusal(logger: logging.Logger, *, status: int, cause: str, method: str, path: str,
                client: str | None) -> None:
    logger.warning(REFUSAL_FORMAT, *refusal_args(status, cause, method, path, client))


class OneLineRefusals(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exception = record.exc_info[1] if record.exc_info else None
        status = getattr(record, "status_code", None)
        if not (isinstance(exception, CLIENT_INPUT_ERRORS) and isinstance(status, int) and 400 <= status < 500):
            return True
        request = getattr(record, "request", None)
        cause = f"{type(exception).__name__}: {exception}"
        if request is not None:
            method, path, client = request.method, request.path, request.META.get("REMOTE_ADDR")
        else:
            method, path, client = "-", "-", None
        record.msg = REFUSAL_FORMAT
        record.args = refusal_args(status, cause, method or "-", path, client)
        record.levelno = min(record.levelno, logging.WARNING)
        record.levelname = logging.getLevelName(record.levelno)
        record.exc_info = None
        record.exc_text = None
        return True
