"""Web lookups: a web search, the weather for a place, or the text of a page, fetched safely.

A user's message asks for one ("search for …", "what's the weather in …", "summarize <url>", or
just a URL: lookup_requested), or a model calls one as a tool. The results are plain text for the
model, with their sources, cached for CACHE_SECONDS (successes only).

Everything is fetched by one small fetcher (_fetch), because a URL a user or a model names is a
way into the server's own network. It fetches http and https only; it resolves the host once,
requires every address to be public (or inside settings.LOOKUP_ALLOWED_NETWORKS) and connects to
the address it checked, so a second DNS answer cannot point it elsewhere (DNS rebinding); it
follows at most MAX_REDIRECTS redirects by hand, each checked the same way; it gives up after
CONNECT_TIMEOUT, READ_TIMEOUT, or BODY_SECONDS for the whole body; it reads at most MAX_BYTES,
counted after decompression. settings.SEARCH_URL and WEATHER_URL are the operator's choice (a
mirror or a proxy of DuckDuckGo's HTML page and wttr.in's JSON, whose structure the parsers read),
so their own host is not checked; a redirect from them to another host is.

Nothing here logs a query or a URL (users' text stays out of logs): a failure is raised as
LookupFailed with a message for the user and a kind for the caller's log.
"""

from __future__ import annotations

import codecs
import hashlib
import ipaddress
import json
import re
import socket
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import SplitResult, parse_qs, quote, urljoin, urlsplit, urlunsplit

import idna
import requests
import urllib3.exceptions
from bs4 import BeautifulSoup, CData, NavigableString, Tag
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured, ValidationError

__all__ = [
    "BODY_SECONDS",
    "CACHE_SECONDS",
    "CONNECT_TIMEOUT",
    "MAX_BYTES",
    "MAX_REDIRECTS",
    "MAX_RESULTS",
    "QUERY_MAX_LENGTH",
    "READ_TIMEOUT",
    "RESULT_CHARACTERS",
    "URL_MAX_LENGTH",
    "LookupFailed",
    "LookupKind",
    "LookupRequest",
    "LookupResult",
    "Source",
    "lookup_checked",
    "lookup_page",
    "lookup_requested",
    "lookup_run",
    "lookup_search",
    "lookup_weather",
]

CONNECT_TIMEOUT = 3.0  # seconds to connect
READ_TIMEOUT = 10.0  # seconds of silence allowed while waiting for the answer
BODY_SECONDS = 10.0  # seconds for the whole body once the answer started: a server dripping bytes is cut off
MAX_BYTES = 2 * 1024 * 1024  # of body, counted after decompression
MAX_REDIRECTS = 3
CACHE_SECONDS = 600
MAX_RESULTS = 5  # sources of one lookup
RESULT_CHARACTERS = 4_000  # of text for the model, in all
QUERY_MAX_LENGTH = 200  # characters of a search query or a place
URL_MAX_LENGTH = 2_000

USER_AGENT: Final = "chatter/1.0 (+web lookups of a self-hosted chat app)"
CHUNK_BYTES: Final = 64 * 1024
CONNECT_ATTEMPTS: Final = 3  # addresses of a host tried in turn when one cannot be connected to
CACHE_PREFIX: Final = "lookups:v1:"
SCHEMES: Final = ("http", "https")
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
PAGE_TYPES: Final = frozenset({"text/html", "text/plain"})
WEATHER_TYPES: Final = PAGE_TYPES | {"application/json"}
# Bidirectional controls (category Cf) that can make text read differently from what it is.
BIDI_CONTROLS: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
DROPPED_ELEMENTS: Final = (
    "script", "style", "noscript", "template", "iframe", "svg", "canvas", "head", "object", "embed",
)
# Elements that start a line of their own in a page's text.
BLOCK_ELEMENTS: Final = (
    "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt", "figcaption", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "summary", "table", "td", "th", "tr", "ul",
)
LINE_MARK: Final = "\x00"  # marks a line break while a page's text is collected
HIDDEN_STYLE: Final = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)\s*(?:!important\s*)?(?:;|$)", re.I
)
META_CHARSET: Final = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


class LookupKind(StrEnum):
    SEARCH = "search"
    WEATHER = "weather"
    PAGE = "page"


@dataclass(frozen=True, slots=True)
class LookupRequest:
    kind: LookupKind
    query: str  # the search query, the place, or the URL (stripped)


@dataclass(frozen=True, slots=True)
class Source:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class LookupResult:
    request: LookupRequest
    text: str  # plain text for the model, at most RESULT_CHARACTERS
    sources: tuple[Source, ...]  # at most MAX_RESULTS

    def as_json(self) -> dict:
        """For storing with the reply (and in the cache)."""
        return {
            "kind": str(self.request.kind),
            "query": self.request.query,
            "text": self.text,
            "sources": [{"title": source.title, "url": source.url} for source in self.sources],
        }

    @classmethod
    def from_json(cls, data: dict) -> LookupResult:
        """The result as_json stored; ValueError when `data` is not one."""
        try:
            request = LookupRequest(LookupKind(data["kind"]), data["query"])
            sources = tuple(Source(title=source["title"], url=source["url"]) for source in data["sources"])
            text = data["text"]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"Not a stored lookup result: {error!r}") from None
        values = [request.query, text, *(value for source in sources for value in (source.title, source.url))]
        if not all(isinstance(value, str) for value in values):
            raise ValueError("Not a stored lookup result: a value is not text.")
        return cls(request=request, text=text, sources=sources)


class LookupFailed(Exception):
    """A lookup that could not be made: `message` is one line a user understands; `kind` a short
    word for logs (timeout, refused_address, redirects, too_large, content_type, http_status,
    connection, dns, tls, bad_url, invalid, unparsable, blocked, no_results, empty)."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


class _Deadline(Exception):
    """The body did not arrive within BODY_SECONDS."""


class _Unreachable(LookupFailed):
    """No connection to one address (the next may answer)."""


class _StatusFailed(LookupFailed):
    """An answer with an HTTP error status: a caller may take a status as an answer (wttr.in's 404)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, kind="http_status")
        self.status = status


# Triggers and validation -----------------------------------------------------------------------

_SEARCH_FOR = re.compile(r"search\s+for\s+(?P<query>.+)", re.I | re.S)
_SEARCH = re.compile(r"search\s+(?P<query>.+)", re.I | re.S)
_WEATHER = re.compile(r"(?:(?:what\s*['’]?\s*s|what\s+is)\s+the\s+)?weather\s+in\s+(?P<place>.+)", re.I | re.S)
_SUMMARIZE = re.compile(r"summari[sz]e\s+(?P<url>\S+)", re.I | re.S)
_WEB_URL = re.compile(r"https?://\S+", re.I | re.S)
_WEB_SCHEME = re.compile(r"https?://", re.I)
_OTHER_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*://|(?:file|data|javascript|vbscript|ftp|gopher|mailto):", re.I)


def lookup_requested(text: str) -> LookupRequest | None:
    """The lookup a user's message asks for, or None (the message is for the model). Raises
    ValidationError when it asks for one that cannot be made (too long, control characters, not an
    http or https URL): the form shows why."""
    text = text.strip()
    if len(text.splitlines()) > 1:
        return None
    text = text.rstrip("?").rstrip()
    if match := _SEARCH_FOR.fullmatch(text):
        return lookup_checked(kind=LookupKind.SEARCH, query=match["query"])
    if (match := _SEARCH.fullmatch(text)) and match["query"].strip().casefold() != "for":
        return lookup_checked(kind=LookupKind.SEARCH, query=match["query"])
    if match := _WEATHER.fullmatch(text):
        return lookup_checked(kind=LookupKind.WEATHER, query=match["place"])
    if match := _SUMMARIZE.fullmatch(text):
        url = match["url"]
        if _WEB_SCHEME.match(url):
            return lookup_checked(kind=LookupKind.PAGE, query=url)
        if _OTHER_SCHEME.match(url):
            raise ValidationError("Only http and https pages can be summarized.", code="scheme")
        return None
    if _WEB_URL.fullmatch(text):
        return lookup_checked(kind=LookupKind.PAGE, query=text)
    return None


def lookup_checked(*, kind: LookupKind | str, query: str) -> LookupRequest:
    """The lookup of `kind` for `query` (stripped) if it can be made; ValidationError saying why
    not otherwise. The same rules for a user's message and a model's tool call."""
    kind = LookupKind(kind)
    query = query.strip()
    if kind is LookupKind.PAGE:
        _url_check(query)
    else:
        what = "A web search" if kind is LookupKind.SEARCH else "A place name"
        if not query:
            raise ValidationError(f"{what} cannot be empty.", code="empty")
        if len(query) > QUERY_MAX_LENGTH:
            raise ValidationError(
                f"{what} is at most {QUERY_MAX_LENGTH:,} characters; this one is {len(query):,}.", code="too_long"
            )
        _controls_check(query, what=what)
    return LookupRequest(kind, query)


def _controls_check(value: str, *, what: str) -> None:
    for character in value:
        if unicodedata.category(character) == "Cc":
            raise ValidationError(f"{what} cannot contain control characters (tabs, line breaks…).", code="control")
        if character in BIDI_CONTROLS:
            raise ValidationError(
                f"{what} cannot contain characters that change the direction of text.", code="bidi"
            )


def _url_check(url: str) -> None:
    if len(url) > URL_MAX_LENGTH:
        raise ValidationError(
            f"A web address is at most {URL_MAX_LENGTH:,} characters; this one is {len(url):,}.", code="too_long"
        )
    _controls_check(url, what="A web address")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ValidationError("That web address is not valid.", code="invalid") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ValidationError("Only http and https pages can be summarized.", code="scheme")
    if not parts.hostname or any(character.isspace() for character in url):
        raise ValidationError("That web address is not valid.", code="invalid")


# The lookups -----------------------------------------------------------------------------------


def lookup_run(*, request: LookupRequest) -> LookupResult:
    """Runs `request` (sync: the caller runs it in a thread)."""
    match request.kind:
        case LookupKind.SEARCH:
            return lookup_search(query=request.query)
        case LookupKind.WEATHER:
            return lookup_weather(place=request.query)
        case LookupKind.PAGE:
            return lookup_page(url=request.query)
    raise ValueError(f"Not a lookup kind: {request.kind!r}")


def lookup_search(*, query: str) -> LookupResult:
    """The top results of a web search at settings.SEARCH_URL (DuckDuckGo's HTML page)."""
    request = _request(LookupKind.SEARCH, query)
    return _cached(request, lambda: _search(request))


def lookup_weather(*, place: str) -> LookupResult:
    """The current weather and the forecast for a place, from settings.WEATHER_URL (wttr.in's j1 JSON)."""
    request = _request(LookupKind.WEATHER, place)
    return _cached(request, lambda: _weather(request))


def lookup_page(*, url: str) -> LookupResult:
    """The title and readable text of a web page."""
    request = _request(LookupKind.PAGE, url)
    return _cached(request, lambda: _page(request))


def _request(kind: LookupKind, query: str) -> LookupRequest:
    try:
        return lookup_checked(kind=kind, query=query)
    except ValidationError as error:
        raise LookupFailed(" ".join(error.messages), kind="bad_url" if kind is LookupKind.PAGE else "invalid") from None


def _cache_key(request: LookupRequest) -> str:
    digest = hashlib.sha256(f"{request.kind}\x00{request.query}".encode()).hexdigest()
    return CACHE_PREFIX + digest


def _cached(request: LookupRequest, run: Callable[[], LookupResult]) -> LookupResult:
    key = _cache_key(request)
    stored = cache.get(key)
    if isinstance(stored, dict):
        try:
            return LookupResult.from_json(stored)
        except ValueError:
            pass
    result = run()
    cache.set(key, result.as_json(), timeout=CACHE_SECONDS)
    return result


def _operator_url(template: str, value: str) -> str:
    for placeholder in ("{query}", "{place}"):
        template = template.replace(placeholder, quote(value, safe=""))
    return template


@dataclass(frozen=True, slots=True)
class _Names:
    """How messages name who answers and what they sent."""

    who: str
    body: str


NAMES: Final = {
    LookupKind.SEARCH: _Names(who="The web search", body="The web search's answer"),
    LookupKind.WEATHER: _Names(who="The weather service", body="The weather service's answer"),
    LookupKind.PAGE: _Names(who="The page", body="The page"),
}


def _search(request: LookupRequest) -> LookupResult:
    fetched = _fetch(
        _operator_url(settings.SEARCH_URL, request.query), names=NAMES[LookupKind.SEARCH], types=PAGE_TYPES,
        trusted=True,
    )
    results = _search_results(fetched.text)
    lines = []
    for number, (title, url, snippet) in enumerate(results, start=1):
        lines.append("\n".join(part for part in (f"{number}. {title}", url, snippet) if part))
    sources = tuple(Source(title=title, url=url) for title, url, _ in results)
    return LookupResult(request=request, text=_cut("\n\n".join(lines)), sources=sources)


def _search_results(html: str) -> list[tuple[str, str, str]]:
    """(title, URL, snippet) of the organic results of DuckDuckGo's HTML page: div.result blocks
    (ads are result--ad, and point at duckduckgo.com/y.js), each with a.result__a, whose href is
    the target or DuckDuckGo's redirect //duckduckgo.com/l/?uddg=<target>, and .result__snippet."""
    soup = _soup(html)
    results: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for block in soup.select("div.result"):
        classes = block.get("class") or []
        if any(name.startswith("result--ad") for name in classes):
            continue
        link = block.select_one("a.result__a")
        if link is None:
            continue
        url = _result_target(str(link.get("href") or ""))
        title = _plain(link.get_text())
        if not url or not title or url in seen:
            continue
        snippet = block.select_one(".result__snippet")
        results.append((title, url, _plain(snippet.get_text()) if snippet else ""))
        seen.add(url)
        if len(results) == MAX_RESULTS:
            break
    if results:
        return results
    if soup.select_one(".no-results, .result--no-result"):
        raise LookupFailed("The web search found nothing.", kind="no_results")
    if soup.select_one(".anomaly-modal__modal, #challenge-form, .challenge-form"):
        raise LookupFailed(
            "The web search refused to answer now (it asked to prove this is not a bot).", kind="blocked"
        )
    raise LookupFailed("The web search answered with a page chatter cannot read.", kind="unparsable")


def _result_target(href: str) -> str:
    """The http(s) URL a result link leads to, unwrapped from DuckDuckGo's redirect; "" for an ad
    (a link to duckduckgo.com/y.js, wrapped or not) or anything else."""
    href = href.strip()
    if href.startswith("//"):
        href = "https:" + href
    try:
        parts = urlsplit(href)
        if _duckduckgo(parts) and parts.path.startswith("/l/"):
            href = (parse_qs(parts.query).get("uddg") or [""])[0]
            parts = urlsplit(href)
        if parts.scheme.lower() not in SCHEMES or not parts.hostname or _duckduckgo(parts):
            return ""
    except ValueError:
        return ""
    return href


def _duckduckgo(parts: SplitResult) -> bool:
    host = (parts.hostname or "").lower()
    return host == "duckduckgo.com" or host.endswith(".duckduckgo.com")


def _weather(request: LookupRequest) -> LookupResult:
    place = request.query
    not_found = LookupFailed(f"No weather found for “{place}”.", kind="no_results")
    try:
        fetched = _fetch(
            _operator_url(settings.WEATHER_URL, place), names=NAMES[LookupKind.WEATHER], types=WEATHER_TYPES,
            trusted=True,
        )
    except _StatusFailed as failure:
        if failure.status == 404:  # wttr.in's answer for a place it does not know
            raise not_found from None
        raise
    try:
        data = json.loads(fetched.text)
    except ValueError:
        if "unknown location" in fetched.text.casefold():  # wttr.in says so in text, with status 200
            raise not_found from None
        raise LookupFailed(
            "The weather service answered with something chatter cannot read.", kind="unparsable"
        ) from None
    if not isinstance(data, dict) or (isinstance(data.get("data"), dict) and data["data"].get("error")):
        raise not_found  # World Weather Online's error answer, which wttr.in may pass on
    try:
        text, title = _weather_text(data)
    except (KeyError, IndexError, TypeError, AttributeError):
        raise not_found from None
    return LookupResult(request=request, text=_cut(text), sources=(Source(title=title, url=fetched.url),))


def _weather_text(data: dict[str, Any]) -> tuple[str, str]:
    """The weather as text, and its source's title, from wttr.in's j1 JSON: current_condition[0]
    (temp_C, FeelsLikeC, weatherDesc[0].value, humidity, windspeedKmph, winddir16Point),
    nearest_area[0] (areaName, region, country: [{"value"}]) and weather[] (one per day: date,
    mintempC, maxtempC)."""

    def value(entry: dict[str, Any], name: str) -> str:
        field = entry.get(name)
        if isinstance(field, list):
            field = field[0].get("value") if field and isinstance(field[0], dict) else ""
        return _plain(str(field or ""))

    now = data["current_condition"][0]
    areas = data.get("nearest_area") or [{}]
    names = [value(areas[0], name) for name in ("areaName", "region", "country")]
    where = ", ".join(dict.fromkeys(name for name in names if name))
    line = (
        f"Now: {value(now, 'weatherDesc')}, {value(now, 'temp_C')} °C (feels like {value(now, 'FeelsLikeC')} °C), "
        f"humidity {value(now, 'humidity')}%, wind {value(now, 'windspeedKmph')} km/h {value(now, 'winddir16Point')}"
    )
    lines = [f"Weather in {where}:" if where else "Weather:", line.rstrip() + "."]
    for day in data.get("weather") or []:
        if isinstance(day, dict) and day.get("date"):
            lines.append(f"{value(day, 'date')}: {value(day, 'mintempC')} to {value(day, 'maxtempC')} °C")
    return "\n".join(lines), f"Weather in {where}" if where else "Weather"


def _page(request: LookupRequest) -> LookupResult:
    fetched = _fetch(request.query, names=NAMES[LookupKind.PAGE], types=PAGE_TYPES, trusted=False)
    if fetched.content_type == "text/plain":
        title, body = "", _plain_lines(fetched.text)
    else:
        title, body = _page_text(fetched.text)
    if not body:
        raise LookupFailed("The page has no text to read.", kind="empty")
    text = f"{title}\n\n{body}" if title else body
    source = Source(title=title or fetched.url, url=fetched.url)
    return LookupResult(request=request, text=_cut(text), sources=(source,))


def _page_text(html: str) -> tuple[str, str]:
    """The title and the readable text of a page: no scripts, styles, head, embedded frames or
    images, nor what the page hides; a line for each block (paragraph, heading, item…).

    One pass over the tree, in document order, knowing each element's nearest block and whether
    it is hidden from its parent's: changing the tree instead (bs4's insert, decompose) costs as
    much as the nesting is deep, each time, and a page of deeply nested tags took minutes."""
    soup = _soup(html.replace(LINE_MARK, ""))
    title_tag = soup.find("title")
    title = _plain(title_tag.get_text()) if title_tag else ""
    states: dict[int, tuple[Tag | None, bool]] = {id(soup): (None, False)}  # element: (its block, hidden)
    parts: list[str] = []
    last_block: Tag | None = None
    for node in soup.descendants:
        if isinstance(node, Tag):
            block, hidden = states[id(node.parent)]
            if node.name in BLOCK_ELEMENTS:
                block = node
                parts.append(LINE_MARK)
            states[id(node)] = (block, hidden or node.name in DROPPED_ELEMENTS or _hidden(node))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes, scripts' text…
            block, hidden = states[id(node.parent)]
            if not hidden:
                if block is not last_block:
                    parts.append(LINE_MARK)
                    last_block = block
                parts.append(node)
    lines = (_plain(line) for line in "".join(parts).split(LINE_MARK))
    return title, "\n".join(line for line in lines if line)


def _hidden(tag: Tag) -> bool:
    attributes = tag.attrs
    return (
        "hidden" in attributes
        or str(attributes.get("aria-hidden", "")).strip().lower() == "true"
        or bool(HIDDEN_STYLE.search(str(attributes.get("style", ""))))
        or tag.name == "input" and str(attributes.get("type", "")).strip().lower() == "hidden"
    )


def _soup(html: str) -> BeautifulSoup:
    try:
        return BeautifulSoup(html, "html.parser")
    except Exception:  # html.parser gives up on some broken markup (bs4's ParserRejectedMarkup and others)
        raise LookupFailed("The page's HTML is too broken to read.", kind="unparsable") from None


def _plain(text: str) -> str:
    return " ".join(text.split())


def _plain_lines(text: str) -> str:
    return "\n".join(line for line in (_plain(line) for line in text.splitlines()) if line)


def _cut(text: str) -> str:
    """`text` in at most RESULT_CHARACTERS, cut at a word with "…"."""
    if len(text) <= RESULT_CHARACTERS:
        return text
    kept = text[: RESULT_CHARACTERS - 1]
    if not text[RESULT_CHARACTERS - 1].isspace():
        space = max(kept.rfind(" "), kept.rfind("\n"))
        if space > RESULT_CHARACTERS // 2:
            kept = kept[:space]
    return kept.rstrip() + "…"


# The fetcher -----------------------------------------------------------------------------------

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class _Fetched:
    url: str  # after redirects
    content_type: str
    text: str


class _PinnedAdapter(requests.adapters.HTTPAdapter):
    """Connects to the address in the request's URL (the one that was checked) while TLS sends
    `hostname` (SNI) and checks the certificate against it (the SSL context's check_hostname)."""

    def __init__(self, *, hostname: str) -> None:
        self._hostname = hostname
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str | None, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self._hostname
        return host_params, pool_kwargs


_VERIFY: str | bool = True  # certificates: the default CA bundle (tests point it at their own CA)


def _fetch(url: str, *, names: _Names, types: frozenset[str], trusted: bool) -> _Fetched:
    """GET `url` under the rules in the module's docstring, and its body as text. `trusted`: the
    operator's URL, whose host is not checked (its redirects to another host are)."""
    trusted_host = None
    for hop in range(MAX_REDIRECTS + 1):
        parts = _parts(url, names=names, redirected=hop > 0)
        hostname = parts.hostname or ""
        if trusted and hop == 0:
            trusted_host = hostname
        check = hostname != trusted_host
        addresses = _addresses(parts, names=names, check=check, redirected=hop > 0)
        with requests.Session() as session:
            session.trust_env = False  # no proxies nor .netrc from the environment: the address is the checked one
            session.mount("http://", _PinnedAdapter(hostname=hostname))
            session.mount("https://", _PinnedAdapter(hostname=hostname))
            response = _send(session, parts, addresses, names=names)
            with response:
                if response.status_code in REDIRECT_STATUSES and response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"].strip())
                    continue
                if not 200 <= response.status_code < 300:
                    raise _StatusFailed(f"{names.who} answered with an error (HTTP {response.status_code}).",
                                        status=response.status_code)
                content_type, charset = _content_type(response.headers.get("Content-Type", ""))
                if content_type not in types:
                    raise LookupFailed(
                        f"{names.body} is not a web page ({content_type or 'no type given'}).", kind="content_type"
                    )
                body = _body(response, names=names)
        text = _decoded(body, charset, html=content_type == "text/html")
        return _Fetched(url=url, content_type=content_type, text=text)
    raise LookupFailed(f"{names.who} redirected more than {MAX_REDIRECTS} times.", kind="redirects")


def _parts(url: str, *, names: _Names, redirected: bool) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise LookupFailed(f"{names.who} has an address that is not valid.", kind="bad_url") from None
    if parts.scheme.lower() not in SCHEMES:
        if redirected:
            raise LookupFailed(f"{names.who} redirected to something other than an http or https page.",
                               kind="bad_url")
        raise LookupFailed("Only http and https pages can be fetched.", kind="bad_url")
    if not parts.hostname:
        raise LookupFailed(f"{names.who} has an address that is not valid.", kind="bad_url")
    return parts


def _addresses(parts: SplitResult, *, names: _Names, check: bool, redirected: bool) -> list[Address]:
    """The addresses the URL's host resolves to, in the resolver's order; when `check`, every one
    must be allowed."""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        answers = socket.getaddrinfo(_ascii(parts.hostname or ""), port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, idna.IDNAError):
        raise LookupFailed(f"{names.who} could not be found (its address does not resolve).", kind="dns") from None
    addresses = [ipaddress.ip_address(str(answer[4][0]).split("%", 1)[0]) for answer in answers]
    if not addresses:
        raise LookupFailed(f"{names.who} could not be found (its address does not resolve).", kind="dns")
    if check:
        networks = _allowed_networks()
        if not all(_address_allowed(address, networks) for address in addresses):
            went = "redirected to" if redirected else "is on"
            raise LookupFailed(
                f"{names.who} {went} a private or local network address, which chatter does not fetch.",
                kind="refused_address",
            )
    return list(dict.fromkeys(addresses))


def _ascii(hostname: str) -> str:
    """The host name as DNS and the Host header take it (IDNA for a name that is not ASCII)."""
    return hostname if hostname.isascii() else idna.encode(hostname, uts46=True).decode("ascii")


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(str(cidr).strip(), strict=False) for cidr in settings.LOOKUP_ALLOWED_NETWORKS]
    except ValueError as error:
        raise ImproperlyConfigured(f"LOOKUP_ALLOWED_NETWORKS: {error}") from None


def _address_allowed(address: Address, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Public (global, and none of the special ranges), or inside one of the allowed networks. An
    IPv6 address that carries an IPv4 one (mapped, 6to4, NAT64, Teredo) is judged by that too."""
    if any(address.version == network.version and address in network for network in networks):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo:
            embedded.extend(address.teredo)
        if address in NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.ipv4_mapped is not None:
            return _address_allowed(address.ipv4_mapped, networks)
        if any(inner is not None and not _address_allowed(inner, networks) for inner in embedded):
            return False
    return address.is_global and not (
        address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
        or isinstance(address, ipaddress.IPv6Address) and address.is_site_local
        or isinstance(address, ipaddress.IPv4Address) and address in ipaddress.IPv4Network("100.64.0.0/10")
    )


def _send(
    session: requests.Session, parts: SplitResult, addresses: list[Address], *, names: _Names
) -> requests.Response:
    """GET the URL's path at the first of `addresses` that can be reached (they are tried in turn,
    up to CONNECT_ATTEMPTS, as a browser would), with the URL's host in the Host header."""
    unreachable = None
    for address in addresses[:CONNECT_ATTEMPTS]:
        try:
            return _send_to(session, parts, address, names=names)
        except _Unreachable as failure:
            unreachable = failure
    assert unreachable is not None  # _addresses gives at least one
    raise unreachable


def _send_to(session: requests.Session, parts: SplitResult, address: Address, *, names: _Names) -> requests.Response:
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port else host
    target = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
    hostname = _ascii(parts.hostname or "")
    host_header = f"[{hostname}]" if ":" in hostname else hostname
    headers = {
        "Host": f"{host_header}:{parts.port}" if parts.port else host_header,
        "User-Agent": USER_AGENT,
        "Accept": "text/html,text/plain;q=0.9,application/json;q=0.8,*/*;q=0.1",
        "Connection": "close",
    }
    prepared = session.prepare_request(requests.Request("GET", target, headers=headers))
    try:
        return session.send(
            prepared, stream=True, allow_redirects=False, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), verify=_VERIFY
        )
    except requests.exceptions.ConnectTimeout:
        raise _Unreachable(f"{names.who} could not be reached within {_seconds(CONNECT_TIMEOUT)}.",
                           kind="timeout") from None
    except requests.exceptions.ReadTimeout:
        raise LookupFailed(f"{names.who} did not answer within {_seconds(READ_TIMEOUT)}.", kind="timeout") from None
    except requests.exceptions.SSLError:
        raise LookupFailed(f"{names.who} has a security certificate that is not valid for its address.",
                           kind="tls") from None
    except requests.exceptions.ConnectionError:
        raise _Unreachable(f"{names.who} could not be reached.", kind="connection") from None
    except ValueError:  # requests parses a redirect's Location even when it does not follow it (Response.next)
        raise LookupFailed(f"{names.who} has an address that is not valid.", kind="bad_url") from None


def _seconds(seconds: float) -> str:
    return "1 second" if seconds == 1 else f"{seconds:g} seconds"


def _content_type(header: str) -> tuple[str, str]:
    """The media type (lower case) and the charset of a Content-Type header."""
    media_type, _, parameters = header.partition(";")
    charset = ""
    if match := re.search(r"""charset\s*=\s*["']?([^"';\s]+)""", parameters, re.I):
        charset = match[1]
    return media_type.strip().lower(), charset


def _body(response: requests.Response, *, names: _Names) -> bytes:
    """The body, decompressed, read within BODY_SECONDS and refused past MAX_BYTES."""
    too_large = LookupFailed(f"{names.body} is larger than {MAX_BYTES / 1024 / 1024:g} MB.", kind="too_large")
    try:
        if int(response.headers.get("Content-Length", "0")) > MAX_BYTES:
            raise too_large
    except ValueError:
        pass
    body = bytearray()
    try:
        for chunk in _chunks(response, deadline=time.monotonic() + BODY_SECONDS):
            body += chunk
            if len(body) > MAX_BYTES:
                raise too_large
    except _Deadline:
        raise LookupFailed(f"{names.who} took more than {_seconds(BODY_SECONDS)} to arrive.", kind="timeout") from None
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
        raise LookupFailed(f"{names.who} stopped answering for {_seconds(READ_TIMEOUT)}.", kind="timeout") from None
    except urllib3.exceptions.DecodeError:
        raise LookupFailed(f"{names.body} could not be decompressed.", kind="unparsable") from None
    except (urllib3.exceptions.HTTPError, OSError):
        raise LookupFailed(f"{names.who} broke off its answer.", kind="connection") from None
    return bytes(body)


def _chunks(response: requests.Response, *, deadline: float) -> Iterator[bytes]:
    """The decompressed body in pieces as they arrive (read1: a server's slow trickle is seen
    between pieces), each wait for the socket at most what is left before `deadline` (_Deadline
    when that is what ran out)."""
    raw = response.raw
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Deadline
        # The socket under the response's file (http.client's fp, a SocketIO; None once the body is
        # read). Not the connection's: http.client drops it there when the answer ends the connection,
        # which every answer here does (each request asks Connection: close).
        sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
        if sock is not None:
            sock.settimeout(min(READ_TIMEOUT, left))
        try:
            chunk = raw.read1(CHUNK_BYTES, decode_content=True)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            if left < READ_TIMEOUT:
                raise _Deadline from None
            raise
        if not chunk:
            return
        yield chunk


def _decoded(body: bytes, charset: str, *, html: bool) -> str:
    """The body as text: in the header's charset, else the one a meta tag names, else UTF-8 (bytes
    that are not replaced)."""
    candidates = [charset]
    if html and (match := META_CHARSET.search(body[:4096])):
        candidates.append(match[1].decode("ascii", "replace"))
    for candidate in candidates:
        try:
            if candidate:
                return body.decode(codecs.lookup(candidate).name, errors="replace")
        except LookupError:
            continue
    return body.decode("utf-8", errors="replace")
