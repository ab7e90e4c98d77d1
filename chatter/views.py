"""Site-wide views: the error pages.

An error during an HTMX request answers with a small partial that base.html shows in its
#error-banner region (HX-Retarget), instead of a whole page swapped into a fragment.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import requires_csrf_token

ERRORS = {
    400: ("Bad request", "The request could not be understood. Reload the page and try again."),
    403: (
        "Not allowed",
        "You don't have permission to do that. If you were signed out in another tab, reload the page.",
    ),
    404: ("Not found", "There is nothing here. It may have been deleted, or the link is wrong."),
    500: ("Something went wrong", "An error on our side stopped this. It has been logged; try again."),
}


NOT_UTF8 = (
    "Part of what was sent is not valid UTF-8 text, so it was refused and nothing was saved. "
    "Reload the page and try again."
)


def _error(request: HttpRequest, status: int, message: str | None = None) -> HttpResponse:
    title, default_message = ERRORS[status]
    message = message or default_message
    context = {"status": status, "title": title, "message": message}
    if request.headers.get("HX-Request") == "true":
        response = render(request, "errors/error.html#error-banner", context, status=status)
        response["HX-Retarget"] = "#error-banner"
        response["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "errors/error.html", context, status=status)


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
    try:
        return _error(request, 500)
    except Exception:  # the layout itself failed: fall back to plain text, never a traceback
        return HttpResponse(
            "Something went wrong on our side.", status=500, content_type="text/plain"
        )
