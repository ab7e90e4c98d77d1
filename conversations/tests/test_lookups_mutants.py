"""Web lookups (conversations/lookups.py) under mutation testing (make mutants, docs/mutants.md,
docs/mutants-lookups.md): each test here fails on a mutant that the rest of the suite let survive.
Against the real thing, as test_lookups.py: its local HTTP server (lookup_server.py) and its saved
samples, with answers edited where a test needs one the samples do not hold."""

import ipaddress
import json
import socket
import tracemalloc
import warnings
from collections.abc import Callable
from urllib.parse import quote

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from conversations import lookups
from conversations.lookups import (
    LookupKind,
    LookupRequest,
    lookup_checked,
    lookup_page,
    lookup_requested,
    lookup_search,
    lookup_weather,
)
from conversations.tests.lookup_server import PAGES, LookupServer
from conversations.tests.test_lookups import (  # noqa: F401 - the fixtures
    certificates,
    failure,
    fake_dns,
    private_server,
    server,
    tls_server,
)


def search_page(*blocks: str) -> bytes:
    """A results page in DuckDuckGo's markup (ddg_results.html's classes), of `blocks`."""
    return f'<html><body><div id="links" class="results">{"".join(blocks)}</div></body></html>'.encode()


def result_block(href: str, title: str, snippet: str | None = "") -> str:
    """A result; without a snippet element when `snippet` is None."""
    snippet_link = "" if snippet is None else f'<a class="result__snippet" href="{href}">{snippet}</a>'
    return (
        f'<div class="result results_links web-result"><h2 class="result__title">'
        f'<a rel="nofollow" class="result__a" href="{href}">{title}</a></h2>{snippet_link}</div>'
    )


def search_served(server, settings, page: bytes) -> None:
    settings.SEARCH_URL = server.serve("/ddg/edited", page, "text/html; charset=utf-8") + "?q={query}"


# lookup_requested: the lookup a message asks for ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("summarize https://example.com/a ?", LookupRequest(LookupKind.PAGE, "https://example.com/a")),
        ("https://example.com/page ??", LookupRequest(LookupKind.PAGE, "https://example.com/page")),
        ("search for SpaceX?", LookupRequest(LookupKind.SEARCH, "SpaceX")),
        ("weather in Xanthi X??", LookupRequest(LookupKind.WEATHER, "Xanthi X")),
    ],
)
def test_question_marks_and_spaces_after_a_trigger_are_not_part_of_it(text, asked):
    assert lookup_requested(text) == asked


def test_summary_of_a_page_other_than_http_is_refused_in_words_and_code():
    with pytest.raises(ValidationError) as caught:
        lookup_requested("summarize ftp://example.com/file")
    assert (caught.value.code, caught.value.messages) == ("scheme", ["Only http and https pages can be summarized."])


# lookup_checked, _controls_check, _url_check: why a lookup cannot be made -------------------------


@pytest.mark.parametrize(
    ("kind", "query", "code", "message"),
    [
        ("search", " ", "empty", "A web search cannot be empty."),
        ("weather", "", "empty", "A place name cannot be empty."),
        ("search", "x" * 201, "too_long", "A web search is at most 200 characters; this one is 201."),
        ("weather", "é" * 1234, "too_long", "A place name is at most 200 characters; this one is 1,234."),
        ("search", "cats\x07", "control", "A web search cannot contain control characters (tabs, line breaks…)."),
        ("weather", "Par\tis", "control", "A place name cannot contain control characters (tabs, line breaks…)."),
        ("search", "evil\u202egnp.exe", "bidi",
         "A web search cannot contain characters that change the direction of text."),
        ("weather", "Par\u2066is", "bidi", "A place name cannot contain characters that change the direction of text."),
        ("page", "https://example.com/" + "a" * 1990, "too_long",
         "A web address is at most 2,000 characters; this one is 2,010."),
        ("page", "https://exa\nmple.com/", "control",
         "A web address cannot contain control characters (tabs, line breaks…)."),
        ("page", "https://exa\u202emple.com/", "bidi",
         "A web address cannot contain characters that change the direction of text."),
        ("page", "https://[::1", "invalid", "That web address is not valid."),
        ("page", "https://example.com:99999/", "invalid", "That web address is not valid."),
        ("page", "file:///etc/passwd", "scheme", "Only http and https pages can be summarized."),
        ("page", "https://", "invalid", "That web address is not valid."),
        ("page", "https://exa mple.com/", "invalid", "That web address is not valid."),
    ],
)
def test_lookup_that_cannot_be_made_is_refused_in_words_and_code(kind, query, code, message):
    with pytest.raises(ValidationError) as caught:
        lookup_checked(kind=kind, query=query)
    assert (caught.value.code, caught.value.messages) == (code, [message])


# _search_results: the organic results of DuckDuckGo's page --------------------------------------


def test_search_block_without_a_result_link_is_passed_over(server, settings):
    # DuckDuckGo puts other div.result blocks among the results (a notice, related searches).
    search_served(server, settings, search_page(
        '<div class="result"><p>Including results for cgb awxp</p></div>',
        result_block("https://example.com/a", "First"),
        result_block("https://example.org/b", "Second"),
    ))
    assert [source.url for source in lookup_search(query="cgb").sources] == [
        "https://example.com/a", "https://example.org/b",
    ]


def test_search_result_met_twice_is_listed_once(server, settings):
    search_served(server, settings, search_page(
        result_block("https://example.com/a", "First", "One"),
        result_block("https://example.com/a", "First again", "Two"),
        result_block("https://example.org/b", "Second", "Three"),
    ))
    result = lookup_search(query="cgb")
    assert [(source.title, source.url) for source in result.sources] == [
        ("First", "https://example.com/a"), ("Second", "https://example.org/b"),
    ]
    assert result.text == "1. First\nhttps://example.com/a\nOne\n\n2. Second\nhttps://example.org/b\nThree"


def test_search_result_without_a_snippet_is_its_title_and_link(server, settings):
    search_served(server, settings, search_page(
        result_block("https://example.com/a", "First", None),
        result_block("https://example.org/b", "Second", "Three"),
    ))
    result = lookup_search(query="cgb")
    assert result.text == "1. First\nhttps://example.com/a\n\n2. Second\nhttps://example.org/b\nThree"


@pytest.mark.parametrize(
    "marker",
    [
        '<div class="anomaly-modal__modal"><p>Unfortunately, bots use DuckDuckGo too.</p></div>',
        '<form id="challenge-form" action="/anomaly.js" method="post"><input type="submit"></form>',
        '<form class="challenge-form" action="/anomaly.js" method="post"><input type="submit"></form>',
    ],
)
def test_search_refused_by_a_bot_challenge_says_so_whichever_of_its_marks_it_has(server, settings, marker):
    search_served(server, settings, search_page(marker))
    failed = failure(lambda: lookup_search(query="cats"))
    assert (failed.kind, failed.message) == (
        "blocked", "The web search refused to answer now (it asked to prove this is not a bot).",
    )


# _result_target and _duckduckgo: where a result's link leads ------------------------------------


@pytest.mark.parametrize(
    ("href", "target"),
    [
        ("//example.com/page?a=1", "https://example.com/page?a=1"),  # protocol-relative, not DuckDuckGo's
        ("https://example.com/l/page", "https://example.com/l/page"),  # /l/ of another site is no redirect
        ("//html.duckduckgo.com/l/?uddg=https%3A%2F%2Fexample.com%2Fx", "https://example.com/x"),  # a subdomain's
        ("https://help.duckduckgo.com/privacy", None),  # a page of DuckDuckGo's own, on a subdomain
        ("https://[example.com/broken", None),  # not a URL (urlsplit refuses it)
    ],
)
def test_search_result_link_leads_to_its_target(server, settings, href, target):
    search_served(server, settings, search_page(
        result_block(href, "Case"), result_block("https://example.net/last", "Last"),
    ))
    urls = [source.url for source in lookup_search(query="cgb").sources]
    assert urls == ([target] if target else []) + ["https://example.net/last"]


# _weather: wttr.in's answer, or why there is none -----------------------------------------------


def weather_served(server, settings, body: bytes) -> None:
    settings.WEATHER_URL = server.serve("/wttr-edited", body, "application/json") + "?q={place}"


def wttr(edit: Callable[[dict], object]) -> bytes:
    """wttr_j1.json (Heideck's weather) changed by `edit`."""
    data = json.loads((PAGES / "wttr_j1.json").read_text())
    edit(data)
    return json.dumps(data).encode()


def test_weather_answer_that_is_not_json_says_so(server, settings):
    settings.WEATHER_URL = server.url("/pages/article.html?{place}")
    failed = failure(lambda: lookup_weather(place="Heideck"))
    assert (failed.kind, failed.message) == (
        "unparsable", "The weather service answered with something chatter cannot read.",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"Sunny"',
        b"null",
        # World Weather Online's error, passed on with the weather of some place it picked.
        wttr(lambda data: data.update(data={"error": [{"msg": "Unable to find any matching weather location"}]})),
    ],
)
def test_weather_json_that_is_no_weather_is_none_found(server, settings, body):
    weather_served(server, settings, body)
    failed = failure(lambda: lookup_weather(place="Atlantis"))
    assert (failed.kind, failed.message) == ("no_results", "No weather found for “Atlantis”.")


# _weather_text: the weather in words, from what wttr.in's answer holds ----------------------------

NOW = "Now: Overcast, 9 °C (feels like 8 °C), humidity 58%, wind 8 km/h SW."
DAYS = "2026-04-03: 1 to 11 °C\n2026-04-04: 6 to 9 °C\n2026-04-05: 5 to 19 °C"


def area(edit: Callable[[dict], object]) -> Callable[[dict], object]:
    return lambda data: edit(data["nearest_area"][0])


@pytest.mark.parametrize(
    ("edit", "text", "title"),
    [
        (area(lambda place: place.pop("region")), f"Weather in Heideck, Germany:\n{NOW}\n{DAYS}",
         "Weather in Heideck, Germany"),
        (area(lambda place: place.update(region=[])), f"Weather in Heideck, Germany:\n{NOW}\n{DAYS}",
         "Weather in Heideck, Germany"),
        (area(lambda place: place.update(region=["Bayern"])), f"Weather in Heideck, Germany:\n{NOW}\n{DAYS}",
         "Weather in Heideck, Germany"),
        (lambda data: data.pop("nearest_area"), f"Weather:\n{NOW}\n{DAYS}", "Weather"),
        (lambda data: data["current_condition"][0].pop("winddir16Point"),
         f"Weather in Heideck, Bayern, Germany:\n{NOW.removesuffix(' SW.')}.\n{DAYS}",
         "Weather in Heideck, Bayern, Germany"),
        (lambda data: data.update(weather=[{**data["weather"][0], "date": ""}, "2026-04-04", data["weather"][2]]),
         f"Weather in Heideck, Bayern, Germany:\n{NOW}\n2026-04-05: 5 to 19 °C",
         "Weather in Heideck, Bayern, Germany"),
    ],
    ids=["no-region", "empty-region", "region-not-an-object", "no-area", "no-wind-direction", "days-without-date"],
)
def test_weather_reads_what_there_is_of_an_answer_with_parts_missing(server, settings, edit, text, title):
    weather_served(server, settings, wttr(edit))
    result = lookup_weather(place="Heideck")
    assert result.text == text
    assert [source.title for source in result.sources] == [title]


# _page_text: a page's title and readable text ----------------------------------------------------


def test_page_with_nul_characters_reads_as_if_they_were_not_there(server):
    # NUL marks a line break while the text is collected: the page's own are dropped first.
    url = server.serve("/nul", "<html><head><title>Ti\x00tle</title></head><body><p>One\x00Two</p><p>Three</p>"
                       "</body></html>".encode(), "text/html; charset=utf-8")
    result = lookup_page(url=url)
    assert result.text == "Title\n\nOneTwo\nThree"


def test_text_after_a_block_inside_another_starts_a_line_of_its_own(server):
    url = server.serve("/nested", b"<html><body><div>Before<p>Inside</p>After</div>Outside</body></html>",
                       "text/html; charset=utf-8")
    assert lookup_page(url=url).text == "Before\nInside\nAfter\nOutside"


def test_element_typed_hidden_that_is_no_input_is_read(server):
    # type="hidden" hides an <input> only; browsers show any other element that has it.
    url = server.serve("/typed", b'<html><body><p type="hidden">Shown</p><span type="HIDDEN">Also shown</span>'
                       b"</body></html>", "text/html; charset=utf-8")
    assert lookup_page(url=url).text == "Shown\nAlso shown"


# _soup: the HTML parsed --------------------------------------------------------------------------


def test_page_is_parsed_by_the_parser_named_without_a_warning(server):
    # Without a parser named, BeautifulSoup picks the best one installed (lxml, html5lib…) and warns.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert lookup_page(url=server.url("/pages/article.html")).text
    assert [str(warning.message) for warning in caught] == []


def test_page_that_html_parser_rejects_says_so(server):
    url = server.serve("/rejected", b"<html><body><p>Text</p><![ ]]></body></html>", "text/html; charset=utf-8")
    failed = failure(lambda: lookup_page(url=url))
    assert (failed.kind, failed.message) == ("unparsable", "The page's HTML is too broken to read.")


# _cut: the text for the model, in at most RESULT_CHARACTERS (4,000) ---------------------------------


def test_text_of_exactly_result_characters_is_not_cut():
    text = "word " * 799 + "last!"
    assert len(text) == lookups.RESULT_CHARACTERS == 4_000
    assert lookups._cut(text) == text


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        # A word that ends at the 3,999th character is kept whole: the "…" is the 4,000th.
        ("x" * 3000 + " " + "y" * 998 + " " + "z" * 600, "x" * 3000 + " " + "y" * 998 + "…"),
        # A word that goes past it is left out: the text is cut at the last space or line break before it.
        ("x" * 3000 + " " + "y" * 999 + "z" * 600, "x" * 3000 + "…"),
        ("x" * 2500 + " " + "x" * 499 + " " + "y" * 1500, "x" * 2500 + " " + "x" * 499 + "…"),
        ("x" * 2500 + "\n" + "x" * 499 + "\n" + "y" * 1500, "x" * 2500 + "\n" + "x" * 499 + "…"),
        # Spaces before the cut are not kept.
        ("x" * 3000 + " " + "y" * 997 + "  " + "z" * 600, "x" * 3000 + " " + "y" * 997 + "…"),
        # A word longer than half the room (its space at 2,000 or before) is cut where the room ends.
        ("x" * 2000 + " " + "y" * 2500, "x" * 2000 + " " + "y" * 1998 + "…"),
        ("x" * 1500 + " " + "y" * 3000, "x" * 1500 + " " + "y" * 2498 + "…"),
    ],
    ids=["word-ending-at-the-limit", "word-across-the-limit", "last-space", "last-line-break", "spaces-before-the-cut",
         "space-at-half", "long-word"],
)
def test_long_text_is_cut_at_a_word_with_an_ellipsis(text, cut):
    assert lookups._cut(text) == cut
    assert len(cut) <= lookups.RESULT_CHARACTERS


# _allowed_networks: the operator's LOOKUP_ALLOWED_NETWORKS -----------------------------------------


def test_allowed_network_written_with_its_host_bits_set_is_its_network(server, settings):
    settings.LOOKUP_ALLOWED_NETWORKS = [" 127.0.0.9/24 "]  # 127.0.0.0/24, which holds the server's 127.0.0.2
    assert lookup_page(url=server.url("/pages/article.html")).text
    assert server.paths() == ["/pages/article.html"]


def test_allowed_network_that_is_none_is_a_configuration_error_naming_the_setting(server, settings):
    settings.LOOKUP_ALLOWED_NETWORKS = ["intranet"]
    with pytest.raises(ImproperlyConfigured) as caught:
        lookup_page(url=server.url("/pages/article.html"))
    assert str(caught.value).startswith("LOOKUP_ALLOWED_NETWORKS: ")
    assert "'intranet'" in str(caught.value)
    assert server.hits == []


# _address_allowed: which addresses a lookup may connect to ----------------------------------------


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),  # public IPv4
        ("2606:4700:4700::1111", True),  # public IPv6, whose last 32 bits read as IPv4 would be 0.0.17.17
        ("fec0::1", False),  # site-local (deprecated), which ipaddress counts as global
        ("::808:808", False),  # IPv4-compatible (deprecated, reserved), which ipaddress counts as global
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo, carrying 65.54.227.120 and 192.0.2.45
    ],
)
def test_address_is_allowed_when_public_only(address, allowed):
    assert lookups._address_allowed(ipaddress.ip_address(address), []) is allowed


# _chunks: the body read within BODY_SECONDS ---------------------------------------------------------


def test_server_that_stops_sending_its_body_is_cut_off_when_the_body_time_is_up(server, monkeypatch):
    # Every wait for the socket is cut to what is left of BODY_SECONDS. Silence alone would be
    # allowed for READ_TIMEOUT, here longer than the server's stall (WAIT_SECONDS, 60 s): a fetch
    # that waited for it would end with the server breaking off instead.
    monkeypatch.setattr(lookups, "BODY_SECONDS", 0.5)
    monkeypatch.setattr(lookups, "READ_TIMEOUT", 120.0)
    failed = failure(lambda: lookup_page(url=server.url("/stall-body")))
    assert (failed.kind, failed.message) == ("timeout", "The page took more than 0.5 seconds to arrive.")


def test_gzip_bomb_is_refused_without_being_inflated_whole(server):
    # The body is read and inflated 64 KB at a time (CHUNK_BYTES), so no more than MAX_BYTES and a
    # piece are ever held. The server's bomb is made before the memory is traced.
    tracemalloc.start()
    try:
        failed = failure(lambda: lookup_page(url=server.url("/gzip/bomb")))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (failed.kind, failed.message) == ("too_large", "The page is larger than 2 MB.")
    assert peak < 8 * 1024 * 1024, f"{peak:,} bytes held at once: the whole bomb (8 MB)"


# _body: at most MAX_BYTES (2 MB) --------------------------------------------------------------------


def test_body_of_exactly_two_megabytes_is_read(server):
    url = server.serve("/two-megabytes", b"a" * lookups.MAX_BYTES, "text/plain; charset=utf-8")
    assert lookup_page(url=url).text == "a" * 3_999 + "…"


@pytest.mark.parametrize(
    ("path", "kind", "message"),
    [
        ("/gzip/broken", "unparsable", "The page could not be decompressed."),
        ("/broken-off", "connection", "The page broke off its answer."),
    ],
)
def test_body_that_cannot_be_read_says_why(server, path, kind, message):
    failed = failure(lambda: lookup_page(url=server.url(path)))
    assert (failed.kind, failed.message) == (kind, message)
    assert str(failed) == message  # what a traceback or a log of the exception shows


# _seconds: a time in the words of a message -------------------------------------------------------


@pytest.mark.parametrize(("seconds", "words"), [(1, "1 second"), (1.0, "1 second"), (2, "2 seconds"),
                                                (0.5, "0.5 seconds"), (10.0, "10 seconds")])
def test_time_in_words(seconds, words):
    assert lookups._seconds(seconds) == words


# _decoded: the body as text ------------------------------------------------------------------------

META_PAST_4096 = (
    b"<html><head><!--" + b"x" * 4057 + b'--><meta charset="cp1252"></head><body><p>Caf\xe9</p></body></html>'
)


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        # A byte its charset lacks (0x81 in windows-1252) is replaced; the rest is read in that charset.
        ("text/html; charset=windows-1252", b"<p>Caf\xe9 \x81 cr\xe8me</p>", "Café \ufffd crème"),
        # The header's parameter name in any case.
        ("Text/HTML; CHARSET=ISO-8859-1", b"<p>Caf\xe9</p>", "Café"),
        # A charset Python does not know, in the header: the meta tag's is next.
        ("text/html; charset=x-nonsense", b'<html><head><meta charset="iso-8859-1"></head><body><p>Caf\xe9</p>'
                                          b"</body></html>", "Café"),
        # A meta tag is looked for in the first 4,096 bytes only: there the charset reads "cp125".
        ("text/html", META_PAST_4096, "Caf\ufffd"),
    ],
    ids=["byte-the-charset-lacks", "header-in-capitals", "unknown-header-charset", "meta-past-4096-bytes"],
)
def test_page_is_decoded_in_the_charset_it_declares(server, content_type, body, text):
    assert lookup_page(url=server.serve("/charset", body, content_type)).text == text


# _send_to: the request ------------------------------------------------------------------------------


def test_request_asks_for_web_pages_and_a_closed_connection(server):
    lookup_page(url=server.url("/pages/article.html"))
    (hit,) = server.hits
    assert hit.headers["accept"] == "text/html,text/plain;q=0.9,application/json;q=0.8,*/*;q=0.1"
    assert hit.headers["connection"] == "close"


def test_address_without_a_path_asks_for_the_root(server):
    server.serve("/", b"<html><body><p>The root</p></body></html>", "text/html; charset=utf-8")
    assert lookup_page(url=server.url("")).text == "The root"
    assert server.paths() == ["/"]


def test_address_without_a_port_goes_to_port_80(server):
    try:
        web = LookupServer("127.0.0.2", port=80)
    except OSError as error:  # not allowed (not root), or taken
        pytest.skip(f"port 80 of 127.0.0.2 cannot be listened on here: {error}")
    with web:
        assert lookup_page(url="http://127.0.0.2/pages/plain.txt").text
    (hit,) = web.hits
    assert hit.headers["host"] == "127.0.0.2"


def test_ipv6_address_is_in_brackets_in_the_host_header(settings):
    settings.LOOKUP_ALLOWED_NETWORKS = ["::1/128"]
    try:
        web = LookupServer("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with web:
        lookup_page(url=web.url("/pages/plain.txt", host="[::1]"))
    (hit,) = web.hits
    assert hit.headers["host"] == f"[::1]:{web.port}"


def test_server_that_never_takes_the_connection_is_unreachable_within_the_connect_timeout(server, monkeypatch):
    monkeypatch.setattr(lookups, "CONNECT_TIMEOUT", 1.0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # Its queue filled and never accepted: the kernel drops the next connection's SYN, as a
        # firewall that drops does.
        queued = [socket.socket() for _ in range(3)]
        try:
            for connection in queued:
                connection.setblocking(False)
                connection.connect_ex(("127.0.0.2", port))
            failed = failure(lambda: lookup_page(url=f"http://127.0.0.2:{port}/"))
        finally:
            for connection in queued:
                connection.close()
    assert (failed.kind, failed.message) == ("timeout", "The page could not be reached within 1 second.")


def test_https_certificate_for_another_name_is_refused_in_words(tls_server, fake_dns):
    fake_dns.names["other.example"] = ["127.0.0.2"]
    failed = failure(lambda: lookup_page(url=tls_server.url("/pages/article.html", host="other.example")))
    assert (failed.kind, failed.message) == (
        "tls", "The page has a security certificate that is not valid for its address.",
    )


def test_closed_port_is_unreachable_in_words(server):
    with LookupServer("127.0.0.2") as gone:
        url = gone.url("/pages/article.html")
    failed = failure(lambda: lookup_page(url=url))
    assert (failed.kind, failed.message) == ("connection", "The page could not be reached.")


# _fetch and _parts: the address fetched, and each redirect ----------------------------------------


def test_redirect_to_something_other_than_http_is_refused_in_words(server):
    failed = failure(lambda: lookup_page(url=server.url("/redirect?to=ftp%3A%2F%2F127.0.0.2%2F")))
    assert (failed.kind, failed.message) == (
        "bad_url", "The page redirected to something other than an http or https page.",
    )


@pytest.mark.parametrize("target", ["http://127.0.0.2:99999/", "http://[127.0.0.2/", "http://:80/page"])
def test_redirect_to_an_address_that_is_not_valid_is_refused_in_words(server, target):
    failed = failure(lambda: lookup_page(url=server.url("/redirect?to=" + quote(target, safe=""))))
    assert (failed.kind, failed.message) == ("bad_url", "The page has an address that is not valid.")


def test_search_service_address_other_than_http_is_refused_in_words(server, settings):
    settings.SEARCH_URL = "ftp://127.0.0.2/{query}"
    failed = failure(lambda: lookup_search(query="cats"))
    assert (failed.kind, failed.message) == ("bad_url", "Only http and https pages can be fetched.")


def test_proxy_of_the_environment_is_not_used(server, private_server, monkeypatch):
    # A proxy would connect to the address instead of us: the checked address is the one connected to.
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", private_server.url(""))
    monkeypatch.setenv("http_proxy", private_server.url(""))
    assert lookup_page(url=server.url("/pages/plain.txt")).text
    assert server.paths() == ["/pages/plain.txt"]
    assert private_server.hits == []


def test_location_header_of_an_answer_that_is_no_redirect_is_not_followed(server):
    assert lookup_page(url=server.url("/located")).text == "Right here"
    assert server.paths() == ["/located"]


def test_multiple_choices_is_an_error(server):
    # 300: not one of the redirects followed (301, 302, 303, 307, 308), nor a page.
    failed = failure(lambda: lookup_page(url=server.url("/status/300")))
    assert (failed.kind, failed.message) == ("http_status", "The page answered with an error (HTTP 300).")


# _addresses: the host's addresses -------------------------------------------------------------------


@pytest.mark.parametrize("resolves", ["nothing", "an error"])
def test_name_that_does_not_resolve_says_so_in_words(server, fake_dns, resolves):
    if resolves == "nothing":
        fake_dns.names["nowhere.example"] = []
        url = "http://nowhere.example/"
    else:
        url = "http://nowhere.invalid/"  # .invalid never resolves (RFC 6761): the resolver raises
    failed = failure(lambda: lookup_page(url=url))
    assert (failed.kind, failed.message) == ("dns", "The page could not be found (its address does not resolve).")


# _ascii: a host name that is not ASCII, as DNS and the Host header take it ----------------------------


def test_host_name_that_is_not_ascii_is_looked_up_and_sent_in_idna(server, fake_dns):
    fake_dns.names["xn--bcher-kva.example"] = ["127.0.0.2"]
    # A full-width "ｂ", which UTS 46 maps to "b" (IDNA 2008 alone refuses it).
    assert lookup_page(url=f"http://ｂücher.example:{server.port}/pages/plain.txt").text
    (hit,) = server.hits
    assert hit.headers["host"] == f"xn--bcher-kva.example:{server.port}"


# _request: a lookup that cannot be made fails with why -----------------------------------------------


def test_lookup_that_cannot_be_made_fails_with_the_reason_in_words(server):
    failed = failure(lambda: lookup_search(query="x" * 201))
    assert (failed.kind, failed.message) == ("invalid", "A web search is at most 200 characters; this one is 201.")
    assert server.hits == []
