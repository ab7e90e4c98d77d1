"""Site-wide views: the error pages.

An error during an HTMX request answers with a small partial that base.html shows in its
#error-banner region (HX-Retarget), instead of a whole page swapped into a fragment.
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import requires_csrf_token

from chatter.logging import log_refusal

logger = logging.getLogger(__name__)

ERRORS = {
    400: ("Bad request", "The request could not be understood. Reload the page and try again."),
    403: (
        "Not allowed",
        "You don't have permission to do that. If you were signed out in another tab, reload the page.",
    ),
    404: ("Not found", "There is nothing here. It may have been deleted, or the link is wrong."),
    500: ("Something went wrong", "An error on our side stopped this. It has been logged; try again."),
    503: ("chatter is busy", "More people are using it than it can serve right now. Try again in a moment."),
}
# Seconds a client is asked to wait (Retry-After) when chatter is too busy to answer.
BUSY_RETRY_AFTER_SECONDS = 5


NOT_UTF8 = (
    "Part of what was sent is not valid UTF-8 text, so it was refused and nothing was saved. "
    "Reload the page and try again."
)


def _error(
    request: HttpRequest, status: int, message: str | None = None, *, page: str = "errors/error.html"
) -> HttpResponse:
    title, default_message = ERRORS[status]
    message = message or default_message
    context = {"status": status, "title": title, "message": message}
    with _closing_the_connection_it_opens():
        if request.headers.get("HX-Request") == "true":
            # The partial alone: nothing of base.html (so no user, no database) is rendered.
            response = render(request, "errors/error.html#error-banner", context, status=status)
            response["HX-Retarget"] = "#error-banner"
            response["HX-Reswap"] = "innerHTML"
            return response
        return render(request, page, context, status=status)


@contextmanager
def _closing_the_connection_it_opens() -> Iterator[None]:
    """Under ASGI, Django renders the page for an exception in a worker thread that is not the
    request's (sync_to_async(thread_sensitive=False)), where nothing ever closes a database
    connection: the layout's query for the signed-in user would keep one of the pool's
    connections for as long as that thread lives. So a connection opened while rendering is
    closed (given back to the pool) once the page is rendered."""
    opened_here = connection.connection is None
    try:
        yield
    finally:
        if opened_here and connection.connection is not None and not connection.in_atomic_block:
            connection.close()


@requires_csrf_token
def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 400)


@requires_csrf_token
def not_utf8(request: HttpRequest) -> HttpResponse:
    """400 for input that is not UTF-8 (chatter.middleware.Utf8InputMiddleware)."""
    return _error(request, 400, NOT_UTF8)


@requires_csrf_token
def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _error(request, 403)


@requires_csrf_token
def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404)


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its handling of the exception, so sys.exc_info() holds it; it
    # sees every exception a request raised, in a middleware (where most requests first touch
    # the database: the session) as in a view, sync or async. (With DEBUG on, Django shows its
    # debug page instead and never calls this.)
    if database_busy(sys.exc_info()[1]):
        return busy(request)
    try:
        return _error(request, 500)
    except Exception:  # the layout itself failed: fall back to plain text, never a traceback
        return HttpResponse(
            "Something went wrong on our side.", status=500, content_type="text/plain"
        )


def database_busy(error: BaseException | None) -> bool:
    """Whether `error` is the database pool's timeout: no connection freed up within
    DB_POOL_TIMEOUT. psycopg_pool raises PoolTimeout, and Django re-raises it as
    django.db.OperationalError from it (wrap_database_errors, around every connect). Any other
    OperationalError (the server down, a refused login, a lost connection) is not: a 500."""
    try:
        from psycopg_pool import PoolTimeout
    except ImportError:  # no pool without psycopg_pool
        return False
    return isinstance(error, PoolTimeout) or (
        isinstance(error, OperationalError) and isinstance(error.__cause__, PoolTimeout)
    )


def busy(request: HttpRequest, *, cause: str = "") -> HttpResponse:
    """503 with Retry-After when no database connection freed up in time (server_error) or a
    request waited too long for its turn (chatter.middleware.SyncViewsAtOnceMiddleware), and
    one WARNING line. Nothing here touches the database: the page stands alone (not on the
    layout, which shows the user), and an HTMX request gets the #error-banner partial."""
    if not cause:
        pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool") or {}
        cause = f"no database connection free within {pool.get('timeout', '?')} s, pool of {pool.get('max_size', '?')}"
    log_refusal(
        logger, status=503, cause=cause,
        method=request.method, path=request.path, client=request.META.get("REMOTE_ADDR"),
    )
    try:
        response = _error(request, 503, page="errors/busy.html")
    except Exception:  # never a traceback for being busy
        title, message = ERRORS[503]
        response = HttpResponse(f"{title}. {message}", status=503, content_type="text/plain")
    response["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
    response._has_been_logged = True  # that line is the log of it: no ERROR and traceback from Django
    return response
