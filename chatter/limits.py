"""ASGI middleware around the Django application (chatter/asgi.py): what reaches Django.

Django's ASGIHandler reads the whole request body into a temporary file before any Django
middleware runs, and decodes the query string before any Django middleware runs, so these
two checks have to sit in front of it:

- RequestBodyLimit refuses a request body over settings.REQUEST_BODY_MAX_BYTES with 413: at
  once when Content-Length says so, without reading a byte of the body; otherwise (a chunked
  body) as soon as the bytes received pass the limit. One WARNING line says so.
- EscapeRawQueryBytes percent-escapes raw non-UTF-8 bytes in a query string, which Django's
  ASGIRequest cannot decode (it answers a bare 400 and logs a traceback). Escaped, they reach
  chatter.middleware.Utf8InputMiddleware, which refuses them with the site's 400 page. (uvicorn's
  HTTP parsers refuse a request line with raw non-ASCII bytes themselves; other servers may not.)
"""

import logging
import re

from django.conf import settings

from chatter.logging import log_refusal

logger = logging.getLogger(__name__)


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def _declared_length(scope: dict) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the HTTP server refuses a malformed Content-Length itself


class RequestBodyLimit:
    def __init__(self, app, *, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes  # None: settings.REQUEST_BODY_MAX_BYTES, read per request

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if self.max_bytes is not None else settings.REQUEST_BODY_MAX_BYTES
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, send, limit, f"Content-Length {declared:,} is over {limit:,} bytes")
            return

        received = 0
        refused = False
        response_started = False

        async def counting_receive() -> dict:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not response_started:
                        await self._refuse(scope, send, limit, f"body passed {limit:,} bytes without Content-Length")
                    # To the application the client is gone: Django stops reading and answers nothing.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal response_started
            if refused:
                return  # the 413 has been sent; the application's answer goes nowhere
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    @staticmethod
    async def _refuse(scope: dict, send, limit: int, cause: str) -> None:
        client = scope.get("client")
        log_refusal(logger, status=413, cause=cause, method=scope.get("method", "-"), path=scope.get("path", "-"),
                    client=client[0] if client else None)
        body = f"Request body too large: this site accepts at most {limit:,} bytes.\n".encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
                # The rest of the body is not wanted: the server closes the connection.
                (b"connection", b"close"),
            ],
        })
        await send({"type": "http.response.body", "body": body})


_NON_ASCII_BYTE = re.compile(rb"[\x80-\xff]")


class EscapeRawQueryBytes:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"")
            if not query.isascii():
                try:
                    query.decode("utf-8")
                except UnicodeDecodeError:
                    escaped = _NON_ASCII_BYTE.sub(lambda byte: b"%%%02X" % byte[0][0], query)
                    scope = {**scope, "query_string": escaped}
        await self.app(scope, receive, send)
