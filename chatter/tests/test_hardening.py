"""What the app accepts and what it lets be kept:

- a request body over REQUEST_BODY_MAX_BYTES is refused with 413 before it is read (chatter.limits);
- a request refused for its input is one WARNING line, never a traceback (chatter.logging);
- input that is not UTF-8 is refused with 400 and nothing is saved (chatter.middleware);
- every dynamic response is Cache-Control: no-store unless it set its own; static files keep theirs.

The size limit is tested on the ASGI application itself, with a receive() that counts what the
application pulls, and through uvicorn; Django's own limit (the second line) through the test client.
"""

import asyncio
import logging
import re
import select
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from itertools import repeat
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from bs4 import BeautifulSoup
from django.conf import settings
from django.core.management import call_command
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from aimodels.tests.factories import AIModelFactory
from chatter import views
from chatter.asgi import application  # at import: setting Django up again (logging) inside a test would drop caplog
from chatter.middleware import NoStoreMiddleware
from chatter.tests.test_security import BASE_DIR, production_env
from conversations.models import Message
from conversations.tests.factories import ConversationFactory, MessageFactory

LIMIT = settings.REQUEST_BODY_MAX_BYTES
CHUNK = 64 * 1024
URLENCODED = "application/x-www-form-urlencoded"
BOUNDARY = "hardening-boundary-7f3a"
CSRF_SECRET = "a" * 32  # a CSRF cookie; the same value in X-CSRFToken passes the check
LONGEST_MESSAGE = "🎉" * settings.MESSAGE_MAX_LENGTH  # 4 bytes of UTF-8 a character: the costliest text
VALID_TEXT = "héllo 你好 🎉"


@pytest.fixture
def conversation(user):
    model = AIModelFactory(compatible=True, is_default=True)  # keyless: usable without an API key
    return ConversationFactory(user=user, model=model, system_prompt="")


def send_url(conversation) -> str:
    return reverse("conversations:message_create", args=[conversation.public_id])


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


# An ASGI connection, in process ---------------------------------------------------------------
class Connection:
    """The server's side of one request: receive() hands the application the body chunks (counting
    the calls and the bytes pulled), then waits, as a connection does, until the response is complete."""

    def __init__(self, chunks: Iterable[bytes] = ()) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._body_done = False
        self._response_complete = asyncio.Event()
        self.receive_calls = 0  # before the body ended: each one a read of the request body
        self.pulled_bytes = 0
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""

    async def receive(self) -> dict:
        if not self._body_done:
            self.receive_calls += 1
            chunk = next(self._chunks, None)
            if chunk is not None:
                self.pulled_bytes += len(chunk)
                return {"type": "http.request", "body": chunk, "more_body": True}
            self._body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._response_complete.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            assert self.status is None, "a second response"
            self.status = message["status"]
            self.headers = {name.decode().lower(): value.decode("latin-1") for name, value in message["headers"]}
        else:
            assert not self._response_complete.is_set(), "a message after the response ended"
            self.body += message.get("body", b"")
            if not message.get("more_body", False):
                self._response_complete.set()

    @property
    def text(self) -> str:
        return self.body.decode()


async def call_asgi(method: str, path: str, *, chunks: Iterable[bytes] = (), headers: dict[str, str] | None = None,
                    query: bytes = b"") -> Connection:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
        "method": method, "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
        "headers": [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())],
        "client": ("127.0.0.1", 50123), "server": ("testserver", 80),
    }
    connection = Connection(chunks)
    await application(scope, connection.receive, connection.send)
    assert connection._response_complete.is_set(), "the application returned without a complete response"
    return connection


@pytest.fixture
def auth_headers(user) -> dict[str, str]:
    """What htmx sends from a signed-in page: the session and CSRF cookies, the token header."""
    return {
        "cookie": f"sessionid={session_cookie(user)}; csrftoken={CSRF_SECRET}",
        "x-csrftoken": CSRF_SECRET,
        "hx-request": "true",
    }


def oversized(chunk: bytes = b"x" * CHUNK, total: int = 4 * LIMIT) -> Iterator[bytes]:
    """A body well over the limit, in chunks; finite, so a broken limit fails the test, not the disk."""
    return repeat(chunk, total // len(chunk) + 1)


# (4) Request body size ---------------------------------------------------------------------------
def test_default_limit_fits_the_longest_message_urlencoded():
    body = urlencode({"content": LONGEST_MESSAGE, "csrfmiddlewaretoken": "x" * 64}).encode()

    assert settings.MESSAGE_MAX_LENGTH * 12 < LIMIT < settings.MESSAGE_MAX_LENGTH * 12 + 64 * 1024
    assert len(body) <= LIMIT
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == LIMIT


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous-login", "signed-in-send"])
@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_declared_oversized_body_is_refused_before_a_byte_is_read(signed_in, auth_headers, conversation):
    path = send_url(conversation) if signed_in else "/accounts/login/"
    headers = dict(auth_headers) if signed_in else {}
    headers.update({"content-type": URLENCODED, "content-length": str(50 * 1024 * 1024)})

    response = await call_asgi("POST", path, chunks=oversized(total=50 * 1024 * 1024), headers=headers)

    assert response.status == 413
    assert response.receive_calls == 0
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["connection"] == "close"
    assert f"at most {LIMIT:,} bytes" in response.text
    assert "Traceback" not in response.text
    assert await Message.objects.acount() == 0


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous-login", "signed-in-send"])
@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_chunked_oversized_body_is_refused_once_past_the_limit(signed_in, auth_headers, conversation):
    path = send_url(conversation) if signed_in else "/accounts/login/"
    headers = dict(auth_headers) if signed_in else {}
    headers["content-type"] = URLENCODED  # no Content-Length: the body is chunked

    response = await call_asgi("POST", path, chunks=oversized(b"content=" + b"x" * (CHUNK - 8)), headers=headers)

    assert response.status == 413
    assert LIMIT < response.pulled_bytes <= LIMIT + CHUNK  # read up to the limit, not one chunk more
    assert response.headers["connection"] == "close"
    assert await Message.objects.acount() == 0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_longest_message_is_accepted_and_saved(declared, auth_headers, conversation):
    body = urlencode({"content": LONGEST_MESSAGE}).encode()
    headers = {**auth_headers, "content-type": URLENCODED}
    if declared:
        headers["content-length"] = str(len(body))

    response = await call_asgi(
        "POST", send_url(conversation), chunks=[body[i:i + CHUNK] for i in range(0, len(body), CHUNK)], headers=headers
    )

    assert response.status == 200, response.text[:500]
    assert len(body) > LIMIT - 20 * 1024  # just under the limit
    question = await Message.objects.aget(role=Message.Role.USER)
    assert question.content == LONGEST_MESSAGE


@pytest.mark.django_db
def test_django_refuses_an_oversized_body_itself_too(client, user, conversation):
    # The second line of defence, for a server without the ASGI limit in front (the test client
    # here): DATA_UPLOAD_MAX_MEMORY_SIZE is the same limit.
    client.force_login(user)

    response = client.post(send_url(conversation), data=b"content=" + b"x" * LIMIT, content_type=URLENCODED)

    assert response.status_code == 400
    assert not Message.objects.exists()


# ... through uvicorn
@pytest.fixture
def server(transactional_db, settings):
    """uvicorn in its own process on the test database, as conversations' tests start it."""
    from conversations.tests.asgi_server import AsgiServer

    running = AsgiServer.for_test_database(secret_key=settings.SECRET_KEY)
    try:
        running.__enter__()
    except BaseException:
        if running.process is not None:  # it started but did not answer in time: not left behind
            running.process.kill()
            running.process.wait()
        raise
    try:
        yield running
    finally:
        running.__exit__(None, None, None)


def http_exchange(port: int, head: bytes, body: Iterable[bytes] = ()) -> bytes:
    """Send a request head, then body pieces until the server answers (or stops reading), and
    return everything the server sent until it closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there: stop sending
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        received, deadline = b"", time.monotonic() + 30  # and each recv waits at most 30 s
        try:
            while chunk := sock.recv(65536):  # until the server closes the connection
                received += chunk
                assert time.monotonic() < deadline, f"the server never closed the connection: {received[:500]!r}"
        except ConnectionResetError:
            pass  # closed on what we sent and it did not read; what it answered was read first
        return received


def request_head(method: str, path: str, **headers: str) -> bytes:
    fields = [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous-login", "signed-in-send"])
def test_uvicorn_refuses_a_declared_50_mb_body_without_asking_for_it(server, user, conversation, signed_in):
    path = send_url(conversation) if signed_in else "/accounts/login/"
    cookie = {"Cookie": f"sessionid={session_cookie(user)}; csrftoken={CSRF_SECRET}", "X_CSRFToken": CSRF_SECRET}

    # Expect: 100-continue: uvicorn sends "100 Continue" only when the application asks for the
    # body. The answer is the 413 alone: the body was never asked for.
    answer = http_exchange(server.port, request_head(
        "POST", path, Content_Type=URLENCODED, Content_Length=str(50 * 1024 * 1024), Expect="100-continue",
        **(cookie if signed_in else {}),
    ))

    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"100 Continue" not in answer
    assert b"Request body too large" in answer
    assert not Message.objects.exists()


def test_uvicorn_refuses_a_chunked_body_past_the_limit(server, user, conversation):
    head = request_head(
        "POST", send_url(conversation), Content_Type=URLENCODED, Transfer_Encoding="chunked",
        Cookie=f"sessionid={session_cookie(user)}; csrftoken={CSRF_SECRET}", X_CSRFToken=CSRF_SECRET,
    )
    piece = b"content=" + b"x" * (CHUNK - 8)
    frame = b"%x\r\n%s\r\n" % (len(piece), piece)

    answer = http_exchange(server.port, head, [frame] * (4 * LIMIT // CHUNK))

    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert not Message.objects.exists()


def test_uvicorn_accepts_the_longest_message(server, user, conversation):
    import requests

    http = requests.Session()
    http.cookies.set("sessionid", session_cookie(user))
    http.cookies.set("csrftoken", CSRF_SECRET)

    response = http.post(
        f"{server.url}{send_url(conversation)}", data={"content": LONGEST_MESSAGE},
        headers={"X-CSRFToken": CSRF_SECRET, "HX-Request": "true"}, timeout=60,
    )

    assert response.status_code == 200
    assert Message.objects.get(role=Message.Role.USER).content == LONGEST_MESSAGE


# (5) One WARNING line for a refused request ------------------------------------------------------
def assert_one_warning(caplog, *expected: str) -> logging.LogRecord:
    # Only the loggers a refusal can write to: others (asyncio reporting the SDK clients of earlier
    # tests' closed event loops, a reply or task of an earlier test ending in its own thread) can
    # write at random moments of a long run.
    records = [r for r in caplog.records if r.name.startswith(("chatter.", "django.request", "django.security"))]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    record = warnings[0]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "\n" not in message
    for text in expected:
        assert text in message, message
    return record


@pytest.mark.django_db
def test_too_many_fields_is_one_warning_line(client, caplog):
    fields = {f"field{n}": "private-value" for n in range(2000)}

    response = client.post(reverse("login"), fields)

    assert response.status_code == 400
    record = assert_one_warning(caplog, "TooManyFieldsSent", "POST /accounts/login/", "from 127.0.0.1")
    assert "private-value" not in record.getMessage()


@pytest.mark.django_db
def test_oversized_body_refused_by_django_is_one_warning_line(client, caplog):
    response = client.post(reverse("login"), data=b"username=" + b"p" * LIMIT, content_type=URLENCODED)

    assert response.status_code == 400
    record = assert_one_warning(caplog, "RequestDataTooBig", "POST /accounts/login/", "from 127.0.0.1")
    assert "ppp" not in record.getMessage()


@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_oversized_body_refused_by_the_asgi_limit_is_one_warning_line(caplog):
    response = await call_asgi("POST", "/accounts/login/", chunks=oversized(b"p" * CHUNK),
                               headers={"content-type": URLENCODED})

    assert response.status == 413
    assert_one_warning(caplog, "413", f"{LIMIT:,} bytes", "POST /accounts/login/", "from 127.0.0.1")


def test_refusals_reach_the_log_file_as_single_lines(tmp_path):
    """The real handlers, in a process configured as production is (but DEBUG, for the error page's
    static files without collectstatic): one line each, with no traceback anywhere, for the
    refusals Django logs; and one line in the file for a django.security logger the settings do
    not list (the handlers' own filter)."""
    log_file = tmp_path / "chatter.log"
    code = textwrap.dedent("""
        import logging, sys
        import django
        django.setup()
        from django.contrib.sessions.exceptions import SuspiciousSession
        from django.test import Client, RequestFactory

        client = Client()
        print(client.post("/accounts/login/", {f"f{n}": "private-value" for n in range(2000)}).status_code)
        print(client.post("/accounts/login/", b"username=" + b"p" * (2 * 1024 * 1024),
                          content_type="application/x-www-form-urlencoded").status_code)
        sys.stderr.write("--unlisted--\\n")
        try:
            raise SuspiciousSession("corrupted")
        except SuspiciousSession as exc:
            logging.getLogger("django.security.SuspiciousSession").error(
                "Session data corrupted", exc_info=exc,
                extra={"status_code": 400, "request": RequestFactory().get("/somewhere/")},
            )
    """)
    env = production_env(
        LOG_FILE=str(log_file), DJANGO_SETTINGS_MODULE="chatter.settings", ALLOWED_HOSTS="testserver", DEBUG="true",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )

    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                            timeout=120)

    assert result.stdout.split() == ["400", "400"], result.stderr
    lines = log_file.read_text().splitlines()
    assert len(lines) == 3, lines
    assert all(" WARNING " in line for line in lines), lines
    assert "TooManyFieldsSent" in lines[0] and "POST /accounts/login/ from 127.0.0.1" in lines[0]
    assert "RequestDataTooBig" in lines[1]
    assert "SuspiciousSession" in lines[2] and "GET /somewhere/" in lines[2]
    refusals_on_the_console = result.stderr.split("--unlisted--")[0]
    assert "Traceback" not in refusals_on_the_console  # Django's own console handler (DEBUG) included
    assert "private-value" not in result.stderr + log_file.read_text()


@pytest.mark.django_db
def test_a_server_error_keeps_its_traceback(client, user, caplog, monkeypatch, settings):
    # The filter rewrites refusals only: a 500 is still an ERROR with its traceback.
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    client.raise_request_exception = False
    client.force_login(user)
    monkeypatch.setattr("conversations.views.render", lambda *args, **kwargs: 1 / 0)

    response = client.get(reverse("conversations:new"))

    assert response.status_code == 500
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name != "asyncio"]
    assert len(errors) == 1 and errors[0].exc_info and errors[0].exc_info[0] is ZeroDivisionError


# (6) UTF-8 only --------------------------------------------------------------------------------
def multipart(*parts: bytes) -> bytes:
    return b"".join(b"--%s\r\n%s\r\n" % (BOUNDARY.encode(), part) for part in parts) + b"--%s--\r\n" % BOUNDARY.encode()


def field(name: str, value: bytes, *headers: bytes) -> bytes:
    head = b"\r\n".join([b'Content-Disposition: form-data; name="%s"' % name.encode(), *headers])
    return head + b"\r\n\r\n" + value


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"

NOT_UTF8_REQUESTS = {
    "raw bytes in a urlencoded body": ("", b"content=\xff\xfe\xc3(typed", URLENCODED),
    "percent-escapes in a urlencoded body": ("", b"content=%FF%FEtyped", URLENCODED),
    "a cut-off sequence in a urlencoded body": ("", b"content=caf%C3", URLENCODED),
    "percent-escapes in the query string": ("?next=%FF%FE", b"content=fine", URLENCODED),
    "raw bytes in a multipart field": ("", multipart(field("content", b"\xff\xfe\xc3(typed")), MULTIPART),
    "a base64 multipart field": (
        "", multipart(field("content", b"//7DKHR5cGVk", b"Content-Transfer-Encoding: base64")), MULTIPART
    ),
    # Valid UTF-8, but Django would decode it as the declared charset: "cafÃ©".
    "a Latin-1 charset on a multipart body": (
        "", multipart(field("content", "café".encode())), f"{MULTIPART}; charset=latin-1"
    ),
    "a Latin-1 charset on a urlencoded body": ("", b"content=caf%C3%A9", f"{URLENCODED}; charset=latin-1"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("query, body, content_type", NOT_UTF8_REQUESTS.values(), ids=NOT_UTF8_REQUESTS.keys())
def test_input_that_is_not_utf8_is_refused_and_nothing_saved(client, user, conversation, caplog, query, body,
                                                             content_type):
    client.force_login(user)

    # generic(): the body's bytes as they are (post() re-encodes a body to a declared charset).
    response = client.generic("POST", send_url(conversation) + query, data=body, content_type=content_type)

    assert response.status_code == 400
    soup = BeautifulSoup(response.content, "html.parser")
    assert soup.find("a", class_="brand"), "the site's error page"
    assert views.NOT_UTF8 in soup.get_text()
    assert not Message.objects.exists()
    record = assert_one_warning(caplog, "400", f"POST {send_url(conversation)} from 127.0.0.1")
    assert record.name == "chatter.middleware"
    assert "typed" not in record.getMessage()  # what was sent is not logged (a UUID can hold "bad")


@pytest.mark.django_db
def test_a_page_with_a_query_string_that_is_not_utf8_is_refused(client, user):
    client.force_login(user)

    response = client.get(reverse("conversations:new") + "?q=%FF%FE")

    assert response.status_code == 400
    assert views.NOT_UTF8 in response.content.decode()


@pytest.mark.django_db
def test_the_400_page_is_a_full_page_of_the_site(client, user, conversation):
    client.force_login(user)

    response = client.post(send_url(conversation), data=b"content=%FF", content_type=URLENCODED)

    assert response.status_code == 400
    assert user.username in response.content.decode()  # signed in, as on every page
    assert "'nonce-" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_htmx_gets_the_error_banner(client, user, conversation):
    client.force_login(user)

    response = client.post(send_url(conversation), data=b"content=%FF", content_type=URLENCODED,
                           headers={"HX-Request": "true"})

    assert response.status_code == 400
    assert response["HX-Retarget"] == "#error-banner"
    assert views.NOT_UTF8 in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart", "query string"])
def test_valid_non_ascii_text_is_accepted(client, user, conversation, encoding):
    client.force_login(user)
    url = send_url(conversation)

    if encoding == "urlencoded":
        response = client.post(url, data=urlencode({"content": VALID_TEXT}), content_type=URLENCODED)
    elif encoding == "multipart":
        response = client.post(url, {"content": VALID_TEXT})  # the test client's multipart, UTF-8
    else:
        response = client.post(url + "?" + urlencode({"note": VALID_TEXT}), {"content": VALID_TEXT})

    assert response.status_code == 200
    assert Message.objects.get(role=Message.Role.USER).content == VALID_TEXT


@pytest.mark.parametrize("query", [b"q=\xff\xfe\xc3(bad", b"q=%FF%FE"], ids=["raw-bytes", "percent-escapes"])
@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_query_string_that_is_not_utf8_gets_the_site_page_under_asgi(query, caplog):
    # Django's ASGIRequest cannot decode raw bytes (a bare 400 and a traceback): chatter.limits
    # escapes them, so they meet the same check as escaped ones.
    response = await call_asgi("GET", "/accounts/login/", query=query)

    assert response.status == 400
    assert views.NOT_UTF8 in response.text
    assert_one_warning(caplog, "query string is not UTF-8", "GET /accounts/login/")


@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_valid_non_ascii_is_accepted_under_asgi(auth_headers, conversation):
    body = urlencode({"content": VALID_TEXT}).encode()
    headers = {**auth_headers, "content-type": URLENCODED, "content-length": str(len(body))}

    response = await call_asgi("POST", send_url(conversation), chunks=[body], headers=headers,
                               query=urlencode({"note": VALID_TEXT}).encode())

    assert response.status == 200
    assert (await Message.objects.aget(role=Message.Role.USER)).content == VALID_TEXT


@pytest.mark.usefixtures("close_thread_connections")
@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("padding", [0, 100_000], ids=["small-checked-inline", "large-checked-in-a-thread"])
async def test_raw_bytes_in_a_body_are_refused_under_asgi(auth_headers, conversation, padding):
    body = b"content=" + b"a" * padding + b"\xff\xfe\xc3(typed"
    headers = {**auth_headers, "content-type": URLENCODED, "content-length": str(len(body))}

    response = await call_asgi("POST", send_url(conversation), chunks=[body], headers=headers)

    assert response.status == 400
    assert response.headers["hx-retarget"] == "#error-banner"
    assert await Message.objects.acount() == 0


# (8) Cache-Control ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_signed_in_pages_are_no_store(client, user, conversation):
    client.force_login(user)

    for url in [reverse("conversations:new"), conversation.get_absolute_url(), reverse("accounts:profile")]:
        response = client.get(url)
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"], url
        assert "private" in response["Cache-Control"], url


@pytest.mark.django_db
def test_anonymous_pages_redirects_and_errors_are_no_store(client):
    login = client.get(reverse("login"))
    redirect = client.get(reverse("conversations:new"))
    missing = client.get("/no/such/page/")

    assert login.status_code == 200 and "no-store" in login["Cache-Control"]
    assert redirect.status_code == 302 and "no-store" in redirect["Cache-Control"]
    assert missing.status_code == 404 and "no-store" in missing["Cache-Control"]


@pytest.mark.parametrize("is_async", [False, True])
def test_a_cache_control_the_view_set_is_kept(is_async):
    def view_response(request):
        response = HttpResponse("public")
        response["Cache-Control"] = "public, max-age=60"
        return response

    async def async_view_response(request):
        return view_response(request)

    if is_async:
        response = asyncio.run(NoStoreMiddleware(async_view_response)(None))
    else:
        response = NoStoreMiddleware(view_response)(None)

    assert response["Cache-Control"] == "public, max-age=60"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_the_reply_stream_is_no_store(async_client, user, conversation):
    reply = await sync_to_async(MessageFactory)(conversation=conversation, reply=True)  # complete: no provider call
    await async_client.aforce_login(user)

    response = await async_client.get(reverse("conversations:reply_stream", args=[conversation.public_id, reply.pk]))
    [_ async for _ in response.streaming_content]

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_static_files_keep_their_long_caching(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()  # a new handler, so servestatic reads the collected files
    css_url = re.search(r'href="(/static/css/chatter\.[0-9a-f]+\.css)"', client.get(reverse("login")).content.decode())

    response = client.get(css_url.group(1))

    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert "no-store" not in response["Cache-Control"]


def test_uvicorn_sends_no_store_on_pages_but_not_on_static_files(server):
    import requests

    page = requests.get(f"{server.url}/accounts/login/", timeout=30)
    static = requests.get(f"{server.url}/static/css/chatter.css", timeout=30)

    assert "no-store" in page.headers["Cache-Control"]
    assert static.status_code == 200
    assert "public" in static.headers["Cache-Control"]  # servestatic's own (max-age=0 under DEBUG)
    assert "no-store" not in static.headers["Cache-Control"]
