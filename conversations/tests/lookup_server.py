"""A local HTTP server for the web lookups' tests: the saved sample pages, and scripted misbehaviour
by path (redirects, a server that stalls or drips, huge and lying bodies, wrong types, errors).

It runs in daemon threads (ThreadingHTTPServer) on a loopback address of the test's choosing (IPv4 or IPv6) and
records every request it gets (`hits`), so a test can prove that a refused address was never
connected to. A test may add answers of its own: server.serve(path, body, content_type).
Handlers that wait (stall, drip) wait on `released`, which close() sets, so no thread outlives
its test.

Paths (query strings in brackets):
    /pages/<file>                    a file of lookup_pages/, typed by its suffix
    /ddg/results, /ddg/none          DuckDuckGo's results page, its "No results." page (any query)
    /ddg/challenge                   DuckDuckGo's bot challenge, with status 202 as it comes
    /wttr/<place>                    wttr.in's j1 JSON; places "Nowhere-404" and "Nowhere-200" get
                                     the answers wttr.in gives for places it does not know
    /gate/<path>                     <path>'s answer, once the test sets `gate` (a lookup seen running)
    /redirect[?to=<url>&status=302]  a redirect to `to`
    /chain/<n>                       n redirects in a row, then the article
    /stall-headers, /stall-body      no answer at all; headers, then no body
    /drip                            a body of one byte every 20 ms, forever
    /huge/declared                   Content-Length above 2 MB, then no body
    /huge/undeclared                 3 MB with no Content-Length (until the connection closes)
    /huge/chunked                    3 MB chunked
    /huge/lying                      Content-Length: 100, then 3 MB
    /gzip/bomb                       a few KB of gzip that inflate to 8 MB
    /gzip/page                       the article, gzip-encoded
    /gzip/broken                     a body said to be gzip that is not
    /located                         a page (200) with a Location header, which only redirects mean
    /broken-off                      Content-Length: 1000, then a few bytes and the connection closed
    /type/<a>/<b>                    bytes typed a/b (/type/none: no Content-Type)
    /status/<code>                   that status, with a short HTML body
    /long-text                       text/plain of 20,000 words
    /many-tags                       HTML of 3,000 paragraphs full of tags
    /latin1/header, /latin1/meta     ISO-8859-1 text, declared in the header or in a meta tag
"""

from __future__ import annotations

import gzip
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PAGES = Path(__file__).resolve().parent / "lookup_pages"
TYPES = {".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".json": "application/json"}
HUGE_BYTES = 3 * 1024 * 1024
WAIT_SECONDS = 60.0  # the longest a handler waits for `released`: a forgotten close() ends anyway

# wttr.in's answers for a place it does not know: 404 with the weather of a place it picked
# (chubin/wttr.in#1134), or 200 with a line of text typed as JSON (chubin/wttr.in#591).
WTTR_UNKNOWN_404 = b'{"current_condition": [{"temp_C": "27", "weatherDesc": [{"value": "Sunny"}]}], ' \
                   b'"nearest_area": [{"areaName": [{"value": "New Found Out"}]}]}'
WTTR_UNKNOWN_200 = b"Unknown location; please try ~-82.1081821,34.37824"
GZIP_BOMB = gzip.compress(b" " * (8 * 1024 * 1024))  # a few KB that inflate to 8 MB, made once


@dataclass(frozen=True)
class Hit:
    path: str  # as requested, still quoted
    headers: dict[str, str]


class LookupServer:
    """Start with `with LookupServer(host) as server:`; server.url(path) is the address of a path."""

    def __init__(self, host: str = "127.0.0.2", *, port: int = 0, ssl_context: Any = None) -> None:
        self.host = host
        self.hits: list[Hit] = []
        self.released = threading.Event()
        self.gate = threading.Event()  # what /gate/<path> waits for before it answers as <path>
        self.custom: dict[str, tuple[int, bytes, str | None]] = {}
        self._lock = threading.Lock()
        self.errors: list[str] = []  # what went wrong in handlers (a client refusing our certificate, say)
        self._httpd = (_Server6 if ":" in host else _Server)((host, port), _handler_for(self))
        self._httpd.owner = self
        if ssl_context is not None:  # the handshake happens in the handler's thread, at its first read
            self._httpd.socket = ssl_context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if ssl_context is not None else "http"
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> LookupServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.released.set()
        self.gate.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def url(self, path: str, *, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def serve(self, path: str, body: bytes, content_type: str | None, *, status: int = 200) -> str:
        """Answers `path` (whatever the query string) with `body`; its URL."""
        self.custom[path] = (status, body, content_type)
        return self.url(path)

    def record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def paths(self) -> list[str]:
        with self._lock:
            return [hit.path for hit in self.hits]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LookupServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner.errors.append(repr(sys.exc_info()[1]))


class _Server6(_Server):
    address_family = socket.AF_INET6


def _handler_for(server: LookupServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: LookupServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.owner.record(Hit(path=self.path, headers={name.lower(): value for name, value in self.headers.items()}))
        self.close_connection = True
        parts = urlsplit(self.path)
        try:
            if parts.path in self.owner.custom:
                status, body, content_type = self.owner.custom[parts.path]
                self._send(status, body, content_type)
            else:
                self._route([unquote(part) for part in parts.path.strip("/").split("/")], parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client gave up: what several tests want

    def _route(self, segments: list[str], query: dict[str, list[str]]) -> None:
        match segments:
            case ["gate", *rest]:
                self.owner.gate.wait(WAIT_SECONDS)
                self._route(rest, query)
            case ["pages", name]:
                path = PAGES / name
                self._send(200, path.read_bytes(), TYPES[path.suffix])
            case ["ddg", "results"]:
                self._send(200, (PAGES / "ddg_results.html").read_bytes(), TYPES[".html"])
            case ["ddg", "none"]:
                self._send(200, (PAGES / "ddg_no_results.html").read_bytes(), TYPES[".html"])
            case ["ddg", "challenge"]:
                self._send(202, (PAGES / "ddg_challenge.html").read_bytes(), TYPES[".html"])
            case ["wttr", "Nowhere-404"]:
                self._send(404, WTTR_UNKNOWN_404, "application/json")
            case ["wttr", "Nowhere-200"]:
                self._send(200, WTTR_UNKNOWN_200, "application/json")
            case ["wttr", _]:
                self._send(200, (PAGES / "wttr_j1.json").read_bytes(), "application/json")
            case ["redirect"]:
                status = int(query.get("status", ["302"])[0])
                self._send(status, b"", "text/html", headers={"Location": query["to"][0]})
            case ["chain", count]:
                left = int(count)
                location = f"/chain/{left - 1}" if left > 1 else "/pages/article.html"
                self._send(302, b"", "text/html", headers={"Location": location})
            case ["stall-headers"]:
                self.owner.released.wait(WAIT_SECONDS)
            case ["stall-body"]:
                self._head(200, "text/html", length=1000)
                self.owner.released.wait(WAIT_SECONDS)
            case ["drip"]:
                self._head(200, "text/plain")
                while not self.owner.released.wait(0.02):
                    self.wfile.write(b"x")
                    self.wfile.flush()
            case ["huge", "declared"]:
                self._head(200, "text/html", length=HUGE_BYTES)
                self.owner.released.wait(WAIT_SECONDS)
            case ["huge", "undeclared"]:
                self._head(200, "text/html")
                self._pour(HUGE_BYTES)
            case ["huge", "chunked"]:
                self._head(200, "text/html", headers={"Transfer-Encoding": "chunked"})
                piece = b"<p>" + b"a" * 65_000 + b"</p>\n"
                for _ in range(HUGE_BYTES // len(piece) + 1):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            case ["huge", "lying"]:
                self._head(200, "text/plain", length=100)
                self._pour(HUGE_BYTES)
            case ["gzip", "bomb"]:
                self._send(200, GZIP_BOMB, "text/html", headers={"Content-Encoding": "gzip"})
            case ["gzip", "page"]:
                self._send(200, gzip.compress((PAGES / "article.html").read_bytes()), TYPES[".html"],
                           headers={"Content-Encoding": "gzip"})
            case ["gzip", "broken"]:
                self._send(200, b"<p>not gzip at all</p>", TYPES[".html"], headers={"Content-Encoding": "gzip"})
            case ["located"]:
                self._send(200, b"<html><body><p>Right here</p></body></html>", TYPES[".html"],
                           headers={"Location": "/pages/plain.txt"})
            case ["broken-off"]:
                self._head(200, TYPES[".html"], length=1000)
                self.wfile.write(b"<p>The beginning")
            case ["type", "none"]:
                self._send(200, b"no type", None)
            case ["type", major, minor]:
                self._send(200, b"\x89PNG\r\n\x1a\n not really", f"{major}/{minor}")
            case ["status", code]:
                self._send(int(code), b"<html><body><h1>Something went wrong</h1></body></html>", TYPES[".html"])
            case ["long-text"]:
                self._send(200, " ".join(f"word{number}" for number in range(20_000)).encode(), TYPES[".txt"])
            case ["many-tags"]:
                paragraphs = "".join(
                    f'<p class="x{number}"><b>Bold {number}</b> <a href="/{number}">link</a> <i>italic</i></p>'
                    for number in range(3_000)
                )
                self._send(200, f"<html><head><title>Tags</title></head><body>{paragraphs}</body></html>".encode(),
                           TYPES[".html"])
            case ["latin1", "header"]:
                self._send(200, "<html><body><p>Café crème à Zürich</p></body></html>".encode("latin-1"),
                           "text/html; charset=ISO-8859-1")
            case ["latin1", "meta"]:
                body = '<html><head><meta charset="iso-8859-1"><title>Déjà vu</title></head>' \
                       "<body><p>Café crème à Zürich</p></body></html>"
                self._send(200, body.encode("latin-1"), "text/html")
            case _:
                self._send(404, b"<html><body>Not here</body></html>", TYPES[".html"])

    def _head(self, status: int, content_type: str | None, *, length: int | None = None,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()

    def _send(
        self, status: int, body: bytes, content_type: str | None, *, headers: dict[str, str] | None = None
    ) -> None:
        self._head(status, content_type, length=len(body), headers=headers)
        self.wfile.write(body)

    def _pour(self, size: int) -> None:
        piece = b"<p>" + b"a" * 65_000 + b"</p>\n"
        sent = 0
        while sent < size and not self.owner.released.is_set():
            self.wfile.write(piece)
            sent += len(piece)

