"""Web lookups: the triggers in a message, DuckDuckGo's and wttr.in's answers read from saved
samples, page text, and the fetcher's safety rules, over real HTTP to a local server.

The local server (lookup_server.py) listens on 127.0.0.2, which tests allow through
LOOKUP_ALLOWED_NETWORKS, so that 127.0.0.1 and localhost are still refused; a second server on
127.0.0.1 stands for a private service and must never be reached. Made-up host names resolve
through a DNS test double (fake_dns); nothing of requests is mocked.

The samples in lookup_pages/ and where they come from:
- ddg_results.html: a real page of html.duckduckgo.com/html/?q=cgb-awxp-eur-1 saved in
  KULeuven-Diepenbeek/appdev-course, examples/kotlin/howlongtobeat/app/src/test/java/be/kuleuven/
  howlongtobeat/cartridges/DuckDuckGoResultParserTest.kt (its regions list and last results
  trimmed), with two ads added in front in DuckDuckGo's ad markup: class result--ad and a link
  through //duckduckgo.com/l/?uddg= to duckduckgo.com/y.js?ad_domain=…, and class result--ad--small
  (what SearXNG's and ddgs's DuckDuckGo engines skip: searx/engines/duckduckgo.py,
  ddgs/engines/duckduckgo.py).
- ddg_no_results.html: the same page with its results replaced by DuckDuckGo's "No  results."
  item (div.result--no-result > div.no-results), as SearXNG and duckduckgo_search recognise it.
- ddg_challenge.html: DuckDuckGo's bot challenge (status 202, an anomaly-modal in
  #challenge-form), reduced to its markers.
- wttr_j1.json: wttr.in's format=j1 answer for Heideck saved in chubin/wttr.in,
  internal/renderer/v1/testdata/weather.json, with one hourly entry kept a day.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
from django.core.cache import CacheKeyWarning, caches
from django.core.cache.backends import locmem
from django.core.exceptions import ValidationError

from conversations import lookups
from conversations.lookups import (
    LookupFailed,
    LookupKind,
    LookupRequest,
    LookupResult,
    Source,
    lookup_checked,
    lookup_page,
    lookup_requested,
    lookup_run,
    lookup_search,
    lookup_weather,
)
from conversations.tests.lookup_server import PAGES, LookupServer

DDG_FIRST_FIVE = [
    Source(
        title="Get information and compare prices of Mario Golf for Game Boy | VGDb",
        url="https://vgdb.uk/mario-golf/game/48484",
    ),
    Source(
        title="Mario Golf - Nintendo Game Boy color / Advance GBC GBA... | eBay",
        url="https://www.ebay.de/itm/Mario-Golf-Nintendo-Game-Boy-color-Advance-GBC-GBA-CGB-AWXP-EUR/264853273128"
        "?epid=167015543&hash=item3daa7c3a28:g:0U0AAOSwC-5fUT36",
    ),
    Source(title="passat.neostrada.pl/zabikt/GB.txt", url="http://passat.neostrada.pl/zabikt/GB.txt"),
    Source(
        title="Convert 1 Euro to CFP Franc - EUR to XPF Exchange Rates | Xe",
        url="https://www.xe.com/currencyconverter/convert/?Amount=1&From=EUR&To=XPF",
    ),
    Source(
        title="Евро сдувается: когда пора бежать в обменник - ПРАЙМ, 18.08.2021",
        url="https://1prime.ru/Financial_market/20210818/834477683.html",
    ),
]
ARTICLE_HIDDEN = [
    "HEAD-META-TEXT", "STYLE-TEXT", "SCRIPT-IN-HEAD", "COMMENT-TEXT", "SCRIPT-JSON-LD", "NOSCRIPT-TEXT",
    "TEMPLATE-TEXT", "IFRAME-TEXT", "SVG-TITLE", "SVG-TEXT", "CANVAS-TEXT", "HIDDEN-ATTRIBUTE-TEXT",
    "ARIA-HIDDEN-TEXT", "DISPLAY-NONE-TEXT", "VISIBILITY-HIDDEN-TEXT", "INPUT-HIDDEN-VALUE", "INPUT-TEXT-VALUE",
    "SCRIPT-IN-BODY", "window.analytics", "font-family",
]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def server(settings):
    """The local server on 127.0.0.2 (allowed), and the search and weather services pointed at it."""
    settings.LOOKUP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    with LookupServer("127.0.0.2") as server:
        settings.SEARCH_URL = server.url("/ddg/results?q={query}")
        settings.WEATHER_URL = server.url("/wttr/{place}?format=j1")
        yield server


@pytest.fixture
def private_server():
    """A private service on 127.0.0.1 that no lookup may reach."""
    with LookupServer("127.0.0.1") as server:
        yield server


class FakeDns:
    """A DNS test double for socket.getaddrinfo: a name it knows resolves to its addresses (a list,
    or a function of how many times the name was asked for); other names resolve as usual."""

    def __init__(self, real: Callable) -> None:
        self.real = real
        self.names: dict[str, list[str] | Callable[[int], list[str]]] = {}
        self.asked: Counter[str] = Counter()

    def getaddrinfo(self, host: str | bytes | None, port: int | str | None, *args: Any, **kwargs: Any) -> list:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.names:
            return self.real(host, port, *args, **kwargs)
        self.asked[name] += 1
        answer = self.names[name]
        addresses = answer(self.asked[name]) if callable(answer) else answer
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port or 0, 0, 0)) if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))
            for address in addresses
        ]


@pytest.fixture
def fake_dns(monkeypatch):
    dns = FakeDns(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns


def failure(call: Callable[[], object]) -> LookupFailed:
    with pytest.raises(LookupFailed) as caught:
        call()
    return caught.value


# --- triggers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "query"),
    [
        ("search for cats", LookupKind.SEARCH, "cats"),
        ("search cats", LookupKind.SEARCH, "cats"),
        ("SEARCH FOR Black Holes", LookupKind.SEARCH, "Black Holes"),
        ("  Search for  cats and dogs ??  ", LookupKind.SEARCH, "cats and dogs"),
        ("what's the weather in Paris", LookupKind.WEATHER, "Paris"),
        ("What’s the weather in Paris?", LookupKind.WEATHER, "Paris"),
        ("whats the weather in New York??", LookupKind.WEATHER, "New York"),
        ("What is the weather in São Paulo?", LookupKind.WEATHER, "São Paulo"),
        ("weather in Oslo", LookupKind.WEATHER, "Oslo"),
        ("WEATHER IN oslo", LookupKind.WEATHER, "oslo"),
        ("summarize https://example.com/a?b=1", LookupKind.PAGE, "https://example.com/a?b=1"),
        ("Summarise http://example.com/", LookupKind.PAGE, "http://example.com/"),
        ("SUMMARIZE HTTPS://EXAMPLE.COM", LookupKind.PAGE, "HTTPS://EXAMPLE.COM"),
        ("https://example.com/page", LookupKind.PAGE, "https://example.com/page"),
        ("  HTTP://example.com/x  ", LookupKind.PAGE, "HTTP://example.com/x"),
    ],
)
def test_trigger_asks_for_its_lookup(text, kind, query):
    assert lookup_requested(text) == LookupRequest(kind, query)


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "",
        "search",
        "search for",
        "search for??",
        "Search?",
        "searching for meaning",
        "research cats",
        "weather",
        "what's the weather like in Paris",
        "is it raining in Paris",
        "summarize",
        "summarize this article for me",
        "summarize example.com",
        "tell me about https://example.com",
        "example.com",
        "www.example.com",
        "search for cats\nand dogs",
        "search for cats\r\nplease",
        "search for cats\rplease",
        "what's the weather in\nParis",
        "https://example.com\nsummarize it",
    ],
)
def test_message_for_the_model_is_no_lookup(text):
    assert lookup_requested(text) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("search for " + "x" * 201, "A web search is at most 200 characters; this one is 201."),
        ("search " + "é" * 243, "A web search is at most 200 characters; this one is 243."),
        ("weather in " + "x" * 201, "A place name is at most 200 characters; this one is 201."),
        ("search for cats\x07", "control characters"),
        ("search for cats\x00dogs", "control characters"),
        ("weather in Paris\x1b[31m", "control characters"),
        ("search for evil\u202egnp.exe", "change the direction of text"),
        ("weather in Par\u2066is", "change the direction of text"),
        ("summarize ftp://example.com/file", "Only http and https pages can be summarized."),
        ("summarize file:///etc/passwd", "Only http and https pages can be summarized."),
        ("summarize javascript:alert(1)", "Only http and https pages can be summarized."),
        ("summarize gopher://example.com/", "Only http and https pages can be summarized."),
        ("https://example.com/" + "a" * 1990, "A web address is at most 2,000 characters; this one is 2,010."),
        ("summarize https://", "That web address is not valid."),
        ("https://[::1", "That web address is not valid."),
        ("https://example.com:99999/", "That web address is not valid."),
        ("https://exa\u202emple.com/", "change the direction of text"),
    ],
)
def test_lookup_that_cannot_be_made_is_refused_with_its_reason(text, message):
    with pytest.raises(ValidationError) as caught:
        lookup_requested(text)
    assert message in " ".join(caught.value.messages)


def test_query_of_exactly_200_characters_is_a_search():
    assert lookup_requested("search for " + "x" * 200) == LookupRequest(LookupKind.SEARCH, "x" * 200)


def test_address_of_exactly_2000_characters_is_a_page():
    url = "https://example.com/" + "a" * 1980
    assert lookup_requested(url) == LookupRequest(LookupKind.PAGE, url)


def test_tool_call_follows_the_rules_of_a_message():
    assert lookup_checked(kind="search", query="  cats ") == LookupRequest(LookupKind.SEARCH, "cats")
    with pytest.raises(ValidationError, match="at most 200 characters"):
        lookup_checked(kind=LookupKind.WEATHER, query="x" * 201)
    with pytest.raises(ValidationError, match="Only http and https"):
        lookup_checked(kind=LookupKind.PAGE, query="file:///etc/passwd")


def test_lookup_with_a_refused_query_fails_without_a_request(server):
    assert failure(lambda: lookup_search(query="x" * 201)).kind == "invalid"
    assert failure(lambda: lookup_weather(place="Paris\x00")).kind == "invalid"
    assert failure(lambda: lookup_page(url="ftp://127.0.0.2/")).kind == "bad_url"
    assert server.hits == []


# --- results ------------------------------------------------------------------------------------


def test_result_survives_json():
    result = LookupResult(
        request=LookupRequest(LookupKind.PAGE, "https://example.com/"),
        text="Text «quoted»",
        sources=(Source(title="Example", url="https://example.com/"),),
    )
    stored = json.loads(json.dumps(result.as_json()))
    assert LookupResult.from_json(stored) == result


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"kind": "nope", "query": "q", "text": "", "sources": []},
        {"kind": "search", "query": 3, "text": "", "sources": []},
        {"kind": "search", "query": "q", "text": "", "sources": [{"title": "t"}]},
    ],
)
def test_stored_result_that_is_not_one_is_refused(data):
    with pytest.raises(ValueError):
        LookupResult.from_json(data)


def test_lookup_run_runs_each_kind(server):
    for kind, query in [(LookupKind.SEARCH, "cats"), (LookupKind.WEATHER, "Heideck"),
                        (LookupKind.PAGE, server.url("/pages/article.html"))]:
        result = lookup_run(request=LookupRequest(kind, query))
        assert result.request == LookupRequest(kind, query)
    assert [urlsplit(path).path for path in server.paths()] == ["/ddg/results", "/wttr/Heideck", "/pages/article.html"]


# --- search -------------------------------------------------------------------------------------


def test_search_reads_titles_and_unwrapped_links_of_duckduckgos_page(server):
    result = lookup_search(query="cgb-awxp-eur-1")
    assert result.sources == tuple(DDG_FIRST_FIVE)
    assert result.request == LookupRequest(LookupKind.SEARCH, "cgb-awxp-eur-1")


def test_search_text_has_each_result_with_its_snippet(server):
    text = lookup_search(query="cgb-awxp-eur-1").text
    assert text.startswith(
        "1. Get information and compare prices of Mario Golf for Game Boy | VGDb\n"
        "https://vgdb.uk/mario-golf/game/48484\n"
        "045496730963. MPN. CGB-AWXP-EUR-1. Release Date.\n\n"
        "2. Mario Golf"
    )
    assert "Get live mid-market exchange rates, historical rates and data & currency charts for EUR to XPF " \
           "with Xe's free Currency Converter." in text
    assert "CGB-AW8A-EUR DMG-A03-10" in text  # highlighted words stay joined to their neighbours
    assert "\n\n5. Евро сдувается" in text


def test_search_skips_ads(server):
    result = lookup_search(query="cgb-awxp-eur-1")
    assert "Game Boy Cartridges" not in result.text
    assert "Retro Carts Outlet" not in result.text
    assert "Sponsored" not in result.text
    assert not any("duckduckgo.com" in source.url or "retro-carts" in source.url for source in result.sources)


def test_search_skips_links_into_duckduckgo_even_without_the_ad_class(server, settings):
    page = (PAGES / "ddg_results.html").read_text().replace(" result--ad ", " ")
    settings.SEARCH_URL = server.serve("/ddg/unmarked", page.encode(), "text/html; charset=utf-8") + "?q={query}"
    sources = lookup_search(query="cgb").sources
    assert not any("duckduckgo.com" in source.url for source in sources)
    assert sources[0] == DDG_FIRST_FIVE[0]


def test_search_keeps_at_most_five_results(server):
    result = lookup_search(query="cgb-awxp-eur-1")
    assert len(result.sources) == lookups.MAX_RESULTS == 5
    assert "6. " not in result.text
    assert "ESPAGNE" not in result.text


def test_search_keeps_only_web_links(server, settings):
    page = (PAGES / "ddg_results.html").read_text()
    page = page.replace("uddg=https%3A%2F%2Fvgdb.uk%2Fmario%2Dgolf%2Fgame%2F48484", "uddg=javascript%3Aalert(1)")
    page = page.replace("uddg=http%3A%2F%2Fpassat.neostrada.pl%2Fzabikt%2FGB.txt", "uddg=ftp%3A%2F%2Fpassat.example%2F")
    settings.SEARCH_URL = server.serve("/ddg/edited", page.encode(), "text/html; charset=utf-8") + "?q={query}"
    sources = lookup_search(query="cgb").sources
    assert [source.url for source in sources] == [
        DDG_FIRST_FIVE[1].url, DDG_FIRST_FIVE[3].url, DDG_FIRST_FIVE[4].url,
        "https://www.cgb.fr/espagne-serie-euro-brillant-universel-2002-bu,EA_102_101_117_95_54_57_48_52_52_51,a.html",
        "https://www.chamber-international.com/exporting-chamber-international/documentation-for-export-and-import"
        "/eur-1-certificates/",
    ]


def test_search_that_finds_nothing_says_so(server, settings):
    settings.SEARCH_URL = server.url("/ddg/none?q={query}")
    failed = failure(lambda: lookup_search(query="zqxjv plorth wibblequark"))
    assert (failed.kind, failed.message) == ("no_results", "The web search found nothing.")


def test_search_refused_by_a_bot_challenge_says_so(server, settings):
    settings.SEARCH_URL = server.url("/ddg/challenge?q={query}")
    assert failure(lambda: lookup_search(query="cats")).kind == "blocked"


def test_search_answer_that_is_not_duckduckgos_page_is_unparsable(server, settings):
    settings.SEARCH_URL = server.url("/pages/article.html?q={query}")
    failed = failure(lambda: lookup_search(query="cats"))
    assert (failed.kind, failed.message) == ("unparsable", "The web search answered with a page chatter cannot read.")


def test_search_query_reaches_the_service_as_one_parameter(server):
    query = "cats & dogs? #1 / 50% + ünï=code"
    lookup_search(query=query)
    (path,) = server.paths()
    assert parse_qs(urlsplit(path).query, keep_blank_values=True) == {"q": [query]}


# --- weather ------------------------------------------------------------------------------------


def test_weather_reads_wttr_ins_answer(server):
    result = lookup_weather(place="Heideck")
    assert result.text == (
        "Weather in Heideck, Bayern, Germany:\n"
        "Now: Overcast, 9 °C (feels like 8 °C), humidity 58%, wind 8 km/h SW.\n"
        "2026-04-03: 1 to 11 °C\n"
        "2026-04-04: 6 to 9 °C\n"
        "2026-04-05: 5 to 19 °C"
    )
    source = Source(title="Weather in Heideck, Bayern, Germany", url=server.url("/wttr/Heideck?format=j1"))
    assert result.sources == (source,)


def test_weather_place_reaches_the_service_as_one_path_segment(server):
    place = "São Paulo/../admin?x=1#y & z"
    lookup_weather(place=place)
    (path,) = server.paths()
    parts = urlsplit(path)
    assert parts.query == "format=j1"
    prefix, segment = parts.path.rsplit("/", 1)
    assert (prefix, unquote(segment)) == ("/wttr", place)


@pytest.mark.parametrize("place", ["Nowhere-404", "Nowhere-200"])
def test_weather_for_a_place_wttr_in_does_not_know_says_so(server, place):
    failed = failure(lambda: lookup_weather(place=place))
    assert (failed.kind, failed.message) == ("no_results", f"No weather found for “{place}”.")


def test_weather_error_answer_says_no_weather_found(server, settings):
    body = b'{"data": {"error": [{"msg": "Unable to find any matching weather location to the query submitted!"}]}}'
    settings.WEATHER_URL = server.serve("/wwo/error", body, "application/json") + "?q={place}"
    assert failure(lambda: lookup_weather(place="Atlantis")).message == "No weather found for “Atlantis”."


def test_weather_answer_that_is_not_json_is_unparsable(server, settings):
    settings.WEATHER_URL = server.url("/pages/article.html?{place}")
    assert failure(lambda: lookup_weather(place="Heideck")).kind == "unparsable"


# --- pages --------------------------------------------------------------------------------------


def test_page_text_is_what_a_reader_sees(server):
    url = server.url("/pages/article.html")
    result = lookup_page(url=url)
    assert result.text == (
        "The Amber Lighthouse & Its Keepers\n\n"
        "Home About\n"
        "The Amber Lighthouse\n"
        "Built in 1871 on the northern cape, the Amber Lighthouse guided ships through the strait for over a century.\n"
        "Its keepers logged every storm.\n"
        "The last keeper left in 1984.\n"
        "Height: 31 metres\n"
        "Range: 22 nautical miles\n"
        "A restoration began in 2019 and the lamp was lit again in 2023.\n"
        "© 2026 Coastal Heritage Society"
    )
    assert result.sources == (Source(title="The Amber Lighthouse & Its Keepers", url=url),)


@pytest.mark.parametrize("hidden", ARTICLE_HIDDEN)
def test_page_text_leaves_out_scripts_styles_and_what_the_page_hides(server, hidden):
    assert hidden not in lookup_page(url=server.url("/pages/article.html")).text


def test_page_text_and_title_have_no_html(server):
    for path in ("/pages/article.html", "/many-tags", "/pages/malformed.html"):
        result = lookup_page(url=server.url(path))
        assert "<" not in result.text and ">" not in result.text
        assert all("<" not in source.title for source in result.sources)


def test_plain_text_page_is_taken_as_it_is(server):
    url = server.url("/pages/plain.txt")
    result = lookup_page(url=url)
    assert result.text == (PAGES / "plain.txt").read_text().strip().replace("\n\n", "\n")
    assert result.sources == (Source(title=url, url=url),)


def test_malformed_html_gives_the_text_there_is(server):
    result = lookup_page(url=server.url("/pages/malformed.html"))
    assert result.sources[0].title == "Broken page"
    assert "First paragraph that never closes" in result.text
    assert "Cell one\nCell two" in result.text
    assert "MALFORMED-SCRIPT" not in result.text


@pytest.mark.timeout(60)  # reading it used to take minutes (bs4's changes of the tree cost its depth each)
def test_deeply_nested_page_is_read(server):
    url = server.serve("/deep", ("<div><span>" * 25_000 + "deep text").encode(), "text/html")
    assert lookup_page(url=url).text == "deep text"


def test_page_without_text_is_refused(server):
    url = server.serve("/empty", b"<html><head><title></title></head><body><script>x()</script></body></html>",
                       "text/html")
    failed = failure(lambda: lookup_page(url=url))
    assert (failed.kind, failed.message) == ("empty", "The page has no text to read.")


def test_page_source_is_the_address_after_redirects(server):
    result = lookup_page(url=server.url("/redirect?to=/pages/article.html"))
    assert result.sources[0].url == server.url("/pages/article.html")


@pytest.mark.parametrize("path", ["/latin1/header", "/latin1/meta"])
def test_page_is_read_in_its_declared_charset(server, path):
    assert "Café crème à Zürich" in lookup_page(url=server.url(path)).text


def test_page_in_invalid_utf8_is_read_with_replacements(server):
    url = server.serve("/bad-bytes", b"<p>caf\xe9 ok</p>", "text/html")
    assert lookup_page(url=url).text == "caf\ufffd ok"


def test_gzip_encoded_page_is_decompressed(server):
    assert "The last keeper left in 1984." in lookup_page(url=server.url("/gzip/page")).text


# --- caps ---------------------------------------------------------------------------------------


def test_long_page_is_cut_at_a_word_within_result_characters(server):
    text = lookup_page(url=server.url("/long-text")).text
    assert len(text) <= lookups.RESULT_CHARACTERS == 4_000
    assert len(text) > 3_900
    assert text.endswith("…")
    last_word = text[:-1].split()[-1]
    assert last_word == f"word{int(last_word.removeprefix('word'))}"
    assert f"{last_word} " in (" ".join(f"word{number}" for number in range(20_000)) + " ")


def test_search_text_is_cut_within_result_characters(server, monkeypatch):
    monkeypatch.setattr(lookups, "RESULT_CHARACTERS", 300)
    text = lookup_search(query="cgb").text
    assert len(text) <= 300
    assert text.endswith("…")


# --- where lookups may go -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "http://127.0.0.1:{port}/pages/article.html",
        "http://localhost:{port}/pages/article.html",
        "http://LOCALHOST:{port}/pages/article.html",
        "http://[::1]:{port}/pages/article.html",
        "http://[::ffff:127.0.0.1]:{port}/pages/article.html",
        "http://[::ffff:7f00:1]:{port}/pages/article.html",
        "http://0.0.0.0:{port}/pages/article.html",
        "http://2130706433:{port}/pages/article.html",
        "http://0x7f.1:{port}/pages/article.html",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[fd12:3456::1]/",
        "http://[::]/",
        "http://[2002:7f00:1::1]/",
        "http://[64:ff9b::a00:1]/",
    ],
)
def test_private_or_local_address_is_refused_and_never_connected_to(server, private_server, address):
    failed = failure(lambda: lookup_page(url=address.format(port=private_server.port)))
    assert (failed.kind, failed.message) == (
        "refused_address", "The page is on a private or local network address, which chatter does not fetch."
    )
    assert private_server.hits == []


def test_ipv4_mapped_address_is_judged_by_its_ipv4_address(server, fake_dns):
    try:
        with socket.create_connection(("::ffff:127.0.0.2", server.port), timeout=5):
            pass
    except OSError:
        pytest.skip("IPv6 sockets cannot reach IPv4 addresses here")
    server.hits.clear()
    fake_dns.names["mapped.example"] = ["::ffff:127.0.0.2"]  # inside LOOKUP_ALLOWED_NETWORKS' 127.0.0.2/32
    assert lookup_page(url=f"http://mapped.example:{server.port}/pages/article.html").text
    assert server.paths() == ["/pages/article.html"]


def test_name_that_resolves_to_a_private_address_is_refused(server, fake_dns):
    fake_dns.names["intranet.example"] = ["10.0.0.5"]
    assert failure(lambda: lookup_page(url="http://intranet.example/wiki")).kind == "refused_address"


def test_name_with_one_private_address_among_public_ones_is_refused(server, private_server, fake_dns):
    fake_dns.names["mixed.example"] = ["93.184.216.34", "127.0.0.1"]
    failed = failure(lambda: lookup_page(url=f"http://mixed.example:{private_server.port}/"))
    assert failed.kind == "refused_address"
    assert private_server.hits == []


def test_name_that_does_not_resolve_says_so(server, fake_dns):
    fake_dns.names["nowhere.example"] = []
    assert failure(lambda: lookup_page(url="http://nowhere.example/")).kind == "dns"


def test_allowed_network_lets_its_private_addresses_through(server, settings):
    url = server.url("/pages/article.html")
    settings.LOOKUP_ALLOWED_NETWORKS = []
    assert failure(lambda: lookup_page(url=url)).kind == "refused_address"
    settings.LOOKUP_ALLOWED_NETWORKS = ["127.0.0.0/30"]
    assert lookup_page(url=url).sources[0].url == url


def test_search_and_weather_services_are_the_operators_and_not_checked(server, settings):
    settings.LOOKUP_ALLOWED_NETWORKS = []
    assert lookup_search(query="cats").sources
    assert lookup_weather(place="Heideck").sources


def test_redirect_to_a_private_address_is_refused_and_not_followed(server, private_server):
    target = f"http://127.0.0.1:{private_server.port}/pages/article.html"
    failed = failure(lambda: lookup_page(url=server.url("/redirect?to=" + quote(target, safe=""))))
    assert (failed.kind, failed.message) == (
        "refused_address", "The page redirected to a private or local network address, which chatter does not fetch."
    )
    assert len(server.hits) == 1
    assert private_server.hits == []


def test_redirect_from_the_search_service_to_another_host_is_checked(server, private_server, settings):
    settings.LOOKUP_ALLOWED_NETWORKS = []
    target = f"http://localhost:{private_server.port}/ddg/results"
    settings.SEARCH_URL = server.url("/redirect?to=" + quote(target, safe="") + "&q={query}")
    assert failure(lambda: lookup_search(query="cats")).kind == "refused_address"
    assert private_server.hits == []


def test_redirect_from_the_search_service_to_itself_is_followed(server, settings):
    settings.LOOKUP_ALLOWED_NETWORKS = []
    settings.SEARCH_URL = server.url("/redirect?to=%2Fddg%2Fresults&q={query}")
    assert len(lookup_search(query="cats").sources) == 5


def test_three_redirects_are_followed(server):
    result = lookup_page(url=server.url("/chain/3"))
    assert result.sources[0].url == server.url("/pages/article.html")


def test_more_than_three_redirects_are_refused(server):
    failed = failure(lambda: lookup_page(url=server.url("/chain/4")))
    assert (failed.kind, failed.message) == ("redirects", "The page redirected more than 3 times.")
    assert len(server.hits) == 4


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://127.0.0.2/", "gopher://127.0.0.2:70/", "javascript:alert(1)", "data:,hi"]
)
def test_redirect_to_something_other_than_http_is_refused(server, target):
    failed = failure(lambda: lookup_page(url=server.url("/redirect?to=" + quote(target, safe=""))))
    assert failed.kind == "bad_url"


def test_dns_rebinding_cannot_send_the_fetch_elsewhere(settings, fake_dns):
    """The name resolves to an allowed address first and to 127.0.0.1 afterwards: the fetch
    connects to the address it checked, and the 127.0.0.1 server on the same port gets nothing."""
    settings.LOOKUP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    for _ in range(5):  # a port free on both addresses
        with LookupServer("127.0.0.2") as allowed:
            try:
                private = LookupServer("127.0.0.1", port=allowed.port)
            except OSError:
                continue
            with private:
                fake_dns.names["rebind.example"] = lambda asked: ["127.0.0.2"] if asked == 1 else ["127.0.0.1"]
                result = lookup_page(url=f"http://rebind.example:{allowed.port}/pages/article.html")
                assert result.text.startswith("The Amber Lighthouse")
                assert allowed.paths() == ["/pages/article.html"]
                assert private.hits == []
                assert fake_dns.asked["rebind.example"] == 1
                return
    pytest.fail("No port was free on both 127.0.0.1 and 127.0.0.2.")


def test_request_names_the_host_and_chatter(server, fake_dns):
    fake_dns.names["lookup.example"] = ["127.0.0.2"]
    lookup_page(url=f"http://lookup.example:{server.port}/pages/article.html")
    (hit,) = server.hits
    assert hit.headers["host"] == f"lookup.example:{server.port}"
    assert hit.headers["user-agent"].startswith("chatter/")


# --- https --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    """A test CA and a certificate it signed for secure.example (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*arguments: str) -> None:
        subprocess.run(["openssl", *arguments], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=chatter test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
            "-subj", "/CN=secure.example")
    (folder / "leaf.ext").write_text(
        "subjectAltName=DNS:secure.example\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    return folder


@pytest.fixture
def tls_server(settings, certificates: Path, monkeypatch):
    settings.LOOKUP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    monkeypatch.setattr(lookups, "_VERIFY", str(certificates / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")
    with LookupServer("127.0.0.2", ssl_context=context) as server:
        yield server


def test_https_connects_to_the_checked_address_and_verifies_the_name(tls_server, fake_dns):
    fake_dns.names["secure.example"] = ["127.0.0.2"]
    url = tls_server.url("/pages/article.html", host="secure.example")
    assert lookup_page(url=url).sources == (Source(title="The Amber Lighthouse & Its Keepers", url=url),)
    assert tls_server.hits[0].headers["host"] == f"secure.example:{tls_server.port}"


@pytest.mark.parametrize("host", ["other.example", "127.0.0.2"])
def test_https_certificate_for_another_name_is_refused(tls_server, fake_dns, host):
    fake_dns.names["other.example"] = ["127.0.0.2"]
    failed = failure(lambda: lookup_page(url=tls_server.url("/pages/article.html", host=host)))
    assert failed.kind == "tls"
    assert tls_server.hits == []


# --- time and size ------------------------------------------------------------------------------


def test_the_limits_are_those_the_readme_names():
    # The tests around here shorten or use these; a change of the values themselves shows here.
    assert (lookups.CONNECT_TIMEOUT, lookups.READ_TIMEOUT, lookups.BODY_SECONDS) == (3, 10, 10)  # seconds
    assert lookups.MAX_BYTES == 2 * 1024 * 1024 and lookups.MAX_REDIRECTS == 3


def test_server_that_never_answers_times_out(server, monkeypatch):
    monkeypatch.setattr(lookups, "READ_TIMEOUT", 0.5)
    failed = failure(lambda: lookup_page(url=server.url("/stall-headers")))
    assert (failed.kind, failed.message) == ("timeout", "The page did not answer within 0.5 seconds.")


def test_search_service_that_never_answers_times_out(server, settings, monkeypatch):
    monkeypatch.setattr(lookups, "READ_TIMEOUT", 0.5)
    settings.SEARCH_URL = server.url("/stall-headers?q={query}")
    assert failure(lambda: lookup_search(query="cats")).message == "The web search did not answer within 0.5 seconds."


def test_server_that_stops_sending_its_body_times_out(server, monkeypatch):
    monkeypatch.setattr(lookups, "READ_TIMEOUT", 3.0)  # the headers must come in time (milliseconds)
    failed = failure(lambda: lookup_page(url=server.url("/stall-body")))
    assert (failed.kind, failed.message) == ("timeout", "The page stopped answering for 3 seconds.")


def test_server_that_drips_its_body_is_cut_off(server, monkeypatch):
    monkeypatch.setattr(lookups, "BODY_SECONDS", 0.5)
    failed = failure(lambda: lookup_page(url=server.url("/drip")))
    assert (failed.kind, failed.message) == ("timeout", "The page took more than 0.5 seconds to arrive.")


@pytest.mark.parametrize("path", ["/huge/declared", "/huge/undeclared", "/huge/chunked", "/gzip/bomb"])
def test_body_larger_than_two_megabytes_is_refused(server, path):
    failed = failure(lambda: lookup_page(url=server.url(path)))
    assert (failed.kind, failed.message) == ("too_large", "The page is larger than 2 MB.")


def test_lying_small_content_length_lets_no_more_be_read(server):
    assert len(lookup_page(url=server.url("/huge/lying")).text) <= 100


@pytest.mark.parametrize(
    ("path", "shown"),
    [("/type/image/png", "image/png"), ("/type/application/pdf", "application/pdf"),
     ("/type/application/octet-stream", "application/octet-stream"), ("/type/none", "no type given"),
     ("/pages/wttr_j1.json", "application/json")],
)
def test_answer_that_is_not_a_web_page_is_refused(server, path, shown):
    failed = failure(lambda: lookup_page(url=server.url(path)))
    assert (failed.kind, failed.message) == ("content_type", f"The page is not a web page ({shown}).")


@pytest.mark.parametrize("status", [404, 403, 500, 503])
def test_error_status_is_reported(server, status):
    failed = failure(lambda: lookup_page(url=server.url(f"/status/{status}")))
    assert (failed.kind, failed.message) == ("http_status", f"The page answered with an error (HTTP {status}).")


def test_search_service_error_is_reported(server, settings):
    settings.SEARCH_URL = server.url("/status/500?q={query}")
    assert failure(lambda: lookup_search(query="cats")).message == "The web search answered with an error (HTTP 500)."


def test_next_address_of_a_host_is_tried_when_one_cannot_be_reached(server, settings, fake_dns):
    settings.LOOKUP_ALLOWED_NETWORKS = ["127.0.0.0/30"]
    fake_dns.names["two.example"] = ["127.0.0.3", "127.0.0.2"]  # nothing listens on 127.0.0.3
    result = lookup_page(url=f"http://two.example:{server.port}/pages/article.html")
    assert result.text.startswith("The Amber Lighthouse")
    assert server.paths() == ["/pages/article.html"]


def test_closed_port_is_reported_as_unreachable(server):
    with LookupServer("127.0.0.2") as gone:
        url = gone.url("/pages/article.html")
    assert failure(lambda: lookup_page(url=url)).kind == "connection"


# --- cache --------------------------------------------------------------------------------------


def test_second_lookup_comes_from_the_cache(server):
    first = lookup_search(query="cats")
    assert lookup_search(query="cats") == first
    assert lookup_run(request=LookupRequest(LookupKind.SEARCH, " cats ")) == first
    assert len(server.hits) == 1


def test_same_text_of_another_kind_is_looked_up_anew(server):
    lookup_search(query="Heideck")
    lookup_weather(place="Heideck")
    assert len(server.hits) == 2


def test_failure_is_not_cached(server, settings):
    settings.SEARCH_URL = server.url("/status/500?q={query}")
    failure(lambda: lookup_search(query="cats"))
    failure(lambda: lookup_search(query="cats"))
    assert len(server.hits) == 2


class _Later:
    """locmem's clock, `seconds` from now."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def time(self) -> float:
        return time.time() + self.seconds


@pytest.mark.parametrize(("seconds", "hits"), [(595, 1), (601, 2)])
def test_cached_result_lasts_ten_minutes(server, monkeypatch, seconds, hits):
    if not isinstance(caches["default"], locmem.LocMemCache):
        pytest.skip("the tests' cache is not locmem")
    assert lookups.CACHE_SECONDS == 600
    lookup_search(query="cats")
    monkeypatch.setattr(locmem, "time", _Later(seconds))
    lookup_search(query="cats")
    assert len(server.hits) == hits


def test_cache_seconds_is_the_cache_timeout(server, monkeypatch):
    monkeypatch.setattr(lookups, "CACHE_SECONDS", 0)  # Django's timeout 0: not kept at all
    lookup_search(query="cats")
    lookup_search(query="cats")
    assert len(server.hits) == 2


def test_cache_key_suits_memcached_for_any_query(server):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        lookup_search(query="ü " * 100)
        lookup_page(url=server.url("/pages/article.html?" + "x" * 1900))
    assert len(server.hits) == 2
