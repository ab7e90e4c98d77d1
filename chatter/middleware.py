"""Site-wide middleware. Each is async-capable: under ASGI no request hops to a thread for it."""

import asyncio
import codecs
import logging
import weakref
from collections.abc import Callable
from urllib.parse import unquote

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csp, csrf, security
from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.cache import patch_cache_control

from chatter import views
from chatter.logging import log_refusal

logger = logging.getLogger(__name__)

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# A body this large is checked in a worker thread, not in the event loop (~30 ms at the limit).
CHECK_INLINE_MAX_BYTES = 64 * 1024
# Content-Transfer-Encoding values under which a multipart part's bytes are its value.
# (Django decodes base64 parts, which no browser sends (RFC 7578 4.7); refused, so nothing
# reaches a field without passing the UTF-8 check.)
IDENTITY_TRANSFER_ENCODINGS = {b"7bit", b"8bit", b"binary"}


class _Middleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)


# Django's own middleware, without thread hops ------------------------------------------------
# Under ASGI, Django's MiddlewareMixin runs each process_request and process_response in a
# thread (sync_to_async): about fifteen hops a request for the list in MIDDLEWARE, each a trip
# through the event loop, and the loop is what a crowd of streams waits on. Most of those hooks
# only read and set headers, cookies and request attributes: these subclasses run them on the
# event loop. The hooks that can reach the database (saving a session, storing messages,
# refusing a CSRF token through the site's error page) still go to a thread, when they do.


class _InlineHooks:
    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(_InlineHooks, security.SecurityMiddleware):
    pass


class CommonMiddleware(_InlineHooks, common.CommonMiddleware):
    pass


class AuthenticationMiddleware(_InlineHooks, auth.AuthenticationMiddleware):
    """Sets the lazy request.user and request.auser; loading the user is up to whoever asks."""


class XFrameOptionsMiddleware(_InlineHooks, clickjacking.XFrameOptionsMiddleware):
    pass


class ContentSecurityPolicyMiddleware(_InlineHooks, csp.ContentSecurityPolicyMiddleware):
    pass


class SessionMiddleware(sessions.SessionMiddleware):
    """Saving a changed session is a query: in a thread. Otherwise (nearly every request) the
    response only gets its Vary header or a deleted cookie, on the event loop."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self.process_request(request)
        response = await self.get_response(request)
        session = request.session
        if (session.modified or settings.SESSION_SAVE_EVERY_REQUEST) and not session.is_empty():
            return await sync_to_async(self.process_response)(request, response)
        return self.process_response(request, response)


class MessageMiddleware(messages.MessageMiddleware):
    """Messages that were shown or added are stored (the session can be a query): in a thread."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self.process_request(request)
        response = await self.get_response(request)
        storage = getattr(request, "_messages", None)
        if storage is not None and (storage.used or storage.added_new):
            return await sync_to_async(self.process_response)(request, response)
        return response


class CsrfViewMiddleware(_InlineHooks, csrf.CsrfViewMiddleware):
    """A safe method (GET, HEAD...) is accepted on the event loop. An unsafe one is checked in a
    thread: a refusal renders the site's error page, which shows the signed-in user."""

    def __init__(self, get_response: Callable) -> None:
        super().__init__(get_response)
        if self.async_mode:
            self.process_view = self._aprocess_view

    async def _aprocess_view(self, request, callback, callback_args, callback_kwargs) -> HttpResponse | None:
        check = super().process_view
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return check(request, callback, callback_args, callback_kwargs)
        return await sync_to_async(check)(request, callback, callback_args, callback_kwargs)


# chatter's own --------------------------------------------------------------------------------
class Utf8InputMiddleware(_Middleware):
    """Refuses with 400 (the site's error page, one WARNING line) a request whose query string or
    form body is not UTF-8, before anything reads request.GET or request.POST: Django would
    otherwise replace the bad bytes (U+FFFD) or read them as Latin-1, and save the result.

    It must come after every middleware that sets up the request (session, user, CSRF cookie,
    CSP nonce) so the error page renders as every other page does; no middleware reads
    request.GET, request.POST or the body before its view, so it is last in MIDDLEWARE.
    """

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        if cause := non_utf8_input(request):
            return self._refuse(request, cause)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if _may_need_a_check(request):
            if _small_or_no_body(request):
                cause = non_utf8_input(request)
            else:
                cause = await sync_to_async(non_utf8_input, thread_sensitive=False)(request)
            if cause:
                # The page shows the signed-in user: a database query, so in a thread as Django's own.
                return await sync_to_async(self._refuse)(request, cause)
        return await self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest, cause: str) -> HttpResponse:
        log_refusal(logger, status=400, cause=cause, method=request.method, path=request.path,
                    client=request.META.get("REMOTE_ADDR"))
        response = views.not_utf8(request)
        response._has_been_logged = True  # this line is the log of it: no "Bad Request" line from Django
        return response


def _may_need_a_check(request: HttpRequest) -> bool:
    return bool(request.META.get("QUERY_STRING")) or request.content_type in (URLENCODED, MULTIPART)


def _small_or_no_body(request: HttpRequest) -> bool:
    if request.content_type not in (URLENCODED, MULTIPART):
        return True  # only the query string is checked
    try:
        return int(request.META["CONTENT_LENGTH"]) <= CHECK_INLINE_MAX_BYTES
    except (KeyError, ValueError):
        return False  # chunked: its size is not known up front


def non_utf8_input(request: HttpRequest) -> str | None:
    """What in the request is not UTF-8, in words for the log; None when all of it is."""
    if not _may_need_a_check(request):
        return None
    if request.encoding and codecs.lookup(request.encoding).name != "utf-8":
        # Django would decode the query string and the form with it.
        return f"declared charset {request.encoding}, not UTF-8"
    if not _percent_decoded_is_utf8(_raw_query_string(request)):
        return "query string is not UTF-8"
    if request.content_type == URLENCODED and not _percent_decoded_is_utf8(request.body):
        return "form body is not UTF-8"
    if request.content_type == MULTIPART and not _multipart_is_utf8(
        request.body, request.content_params.get("boundary", "")
    ):
        return "multipart body is not UTF-8"
    return None


def _raw_query_string(request: HttpRequest) -> bytes:
    environ = getattr(request, "environ", None)
    if environ is not None:  # WSGI: the server's bytes, carried as Latin-1
        return get_bytes_from_wsgi(environ, "QUERY_STRING", "")
    # ASGI: Django decoded the bytes as UTF-8 (chatter.limits escaped any it could not).
    return request.META.get("QUERY_STRING", "").encode()


def _percent_decoded_is_utf8(data: bytes) -> bool:
    """Whether data, and every %XX escape in it decoded to its byte, is UTF-8. Checking the
    whole string checks each name and value: '&' and '=' are ASCII, which never continues or
    starts a multi-byte sequence."""
    try:
        text = data.decode("utf-8")
        if "%" in text:
            unquote(text, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def _multipart_is_utf8(body: bytes, boundary: str) -> bool:
    """No form here takes files, so the whole body must be UTF-8, with no part sent in an
    encoding (base64) that would hide its bytes from that check."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if not boundary:
        return True  # Django refuses a multipart body without a boundary itself
    for part in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        head = part.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-transfer-encoding" and (
                value.strip().lower() not in IDENTITY_TRANSFER_ENCODINGS
            ):
                return False
    return True


class NoStoreMiddleware(_Middleware):
    """Cache-Control: no-store, private on every response that has no Cache-Control of its own,
    so no browser or proxy keeps a page (the back button on a shared computer shows nothing after
    logout). Static files never get here: servestatic answers them earlier, with long caching.
    A response that set its own Cache-Control keeps it."""

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        return _no_store(self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        return _no_store(await self.get_response(request))


def _no_store(response: HttpResponse) -> HttpResponse:
    if not response.has_header("Cache-Control"):
        patch_cache_control(response, no_store=True, private=True)
    return response


class SyncViewsAtOnceMiddleware(_Middleware):
    """Under ASGI, at most SYNC_VIEWS_AT_ONCE requests for synchronous views (every page and
    form; each holds a database connection while it runs, in a thread of its own) run at once;
    the others wait their turn, in order, holding nothing, and one that waited
    SYNC_VIEWS_WAIT seconds is answered 503 (chatter.views.busy). Without it a crowd starts a
    thread for each of its requests at once: they share the CPU, so each takes longer, holds its
    connection longer, and the pool's short wait runs out for the rest. Async views (a reply's
    stream, the title's watch), which wait on the network rather than the database, pass."""

    def __init__(self, get_response: Callable) -> None:
        super().__init__(get_response)
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        return self.get_response(request)  # WSGI: its server's threads are the limit

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if _async_view(request.path_info, getattr(request, "urlconf", None)):
            return await self.get_response(request)
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop) or self._turns.setdefault(loop, asyncio.Semaphore(settings.SYNC_VIEWS_AT_ONCE))
        try:
            async with asyncio.timeout(settings.SYNC_VIEWS_WAIT):
                await turns.acquire()
        except TimeoutError:
            return views.busy(request, cause=f"{settings.SYNC_VIEWS_AT_ONCE} requests ahead for {settings.SYNC_VIEWS_WAIT:g} s")
        try:
            return await self.get_response(request)
        finally:
            turns.release()


def _async_view(path: str, urlconf: str | None) -> bool:
    try:
        return iscoroutinefunction(resolve(path, urlconf).func)
    except Resolver404:
        return False
