"""Login (and a verified email) required everywhere, except views marked otherwise.

Async-capable: under ASGI the user is loaded in one trip to a thread (the session, then the
user), where request.auser() takes two; request.auser() then answers from it.
"""

from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import get_user
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect


def verification_not_required(view: Callable) -> Callable:
    """Open to signed-in users whose email is not verified yet (verify page, logout)."""
    view.verification_required = False
    return view


class AccessMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)
            self.process_view = self._aprocess_view

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if not getattr(view_func, "login_required", True):
            return None
        return self._check(request, request.user, view_func)

    async def _aprocess_view(self, request, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if not getattr(view_func, "login_required", True):
            return None
        if not hasattr(request, "_acached_user"):  # where request.auser() keeps the user it loaded
            request._acached_user = await sync_to_async(get_user)(request)
        return self._check(request, await request.auser(), view_func)

    def _check(self, request: HttpRequest, user, view_func) -> HttpResponse | None:
        if not user.is_authenticated:
            return self._redirect(request, redirect_to_login(request.get_full_path(), settings.LOGIN_URL))
        if getattr(view_func, "verification_required", True) and user.needs_verification:
            return self._redirect(request, redirect("accounts:verify_email_pending"))
        return None

    @staticmethod
    def _redirect(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # An HTMX request must reload the whole page, not swap the login form into a fragment.
        if request.headers.get("HX-Request") == "true":
            return HttpResponseClientRedirect(response["Location"])
        return response
