"""Every payload of the XSS corpus, through every way text reaches the chat page.

Rendered replies (Markdown -> bleach) must stay inside an allowlist, checked on the output as a browser
would parse it; streamed deltas and user bubbles must show the payload as text, with no markup at all.

``unsafe_markup`` is the checker, shared with test_properties.py. It parses the HTML twice, with a
WHATWG-conformant parser (html5lib, as browsers build the tree, including mutation tricks that only
appear on re-parsing) and with the standard library's html.parser, and reports anything outside its own
allowlist. That allowlist is written out here on purpose: widening the renderer's must be a visible change
to this file too (see test_renderer_allowlist_is_no_wider_than_the_checked_one).
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import pytest
from bleach._vendor import html5lib
from bs4 import BeautifulSoup, Comment
from django.template.loader import render_to_string

from conversations import markdown
from conversations.markdown import render_markdown
from conversations.models import Conversation, Message
from conversations.tests.xss_corpus import CATEGORIES, XSS_CORPUS
from conversations.views import _sse

SAFE_TAGS = frozenset({
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "a",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "span", "div",
})
SAFE_ATTRIBUTES = {
    "a": frozenset({"href", "title", "rel", "target"}),
    "span": frozenset({"class"}),
    "div": frozenset({"class"}),
    "code": frozenset({"class"}),
    "pre": frozenset({"class"}),
    "ol": frozenset({"start"}),
    "th": frozenset({"align"}),
    "td": frozenset({"align"}),
}
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
# Attributes a browser resolves as a URL (navigates to, loads, or submits to).
URL_ATTRIBUTES = frozenset({
    "href", "src", "action", "formaction", "data", "poster", "background", "cite", "codebase", "srcset",
    "ping", "lowsrc", "dynsrc", "xlink:href", "manifest", "icon",
})
# What a URL parser strips around a URL (C0 controls and space) and removes inside it (tab, LF, CR),
# per the WHATWG URL Standard; the HTML parser has already decoded character references.
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_NAMESPACES = {"http://www.w3.org/1999/xlink": "xlink:", "http://www.w3.org/XML/1998/namespace": "xml:",
               "http://www.w3.org/2000/xmlns/": "xmlns:"}


def url_scheme(value: str) -> str | None:
    """The scheme a browser would see in an attribute value (decoded), lower-cased; None if relative."""
    value = _TAB_OR_NEWLINE.sub("", value.strip(_C0_AND_SPACE))
    match = _SCHEME.match(value)
    return match.group(1).lower() if match else None


def _attribute_name(name: str) -> str:
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return _NAMESPACES.get(namespace, f"{{{namespace}}}") + local
    return name


def _html5lib_elements(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(tag, attributes) as a browser's parser builds them; foreign (SVG/MathML) tags keep their
    namespace, so they never match an HTML name; comments come out as '!comment'."""
    fragment = html5lib.parseFragment(text, container="div", treebuilder="etree", namespaceHTMLElements=False)
    for element in fragment.iter():
        if element is fragment:
            continue
        if element.tag is ElementTree.Comment:
            yield "!comment", {}
        elif isinstance(element.tag, str):
            yield element.tag, {_attribute_name(name): value for name, value in element.attrib.items()}
        else:
            yield f"!{element.tag!r}", {}


def _stdlib_elements(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    soup = BeautifulSoup(text, "html.parser", multi_valued_attributes=None)
    if soup.find(string=lambda node: isinstance(node, Comment)):
        yield "!comment", {}
    for tag in soup.find_all(True):
        yield tag.name, dict(tag.attrs)


def unsafe_markup(text: str) -> list[str]:
    """Everything in this HTML a browser could run, load or navigate to outside the allowlist."""
    problems: list[str] = []
    for parser in (_html5lib_elements, _stdlib_elements):
        for tag, attributes in parser(text):
            if tag not in SAFE_TAGS:
                problems.append(f"{parser.__name__}: element <{tag}>")
            allowed = SAFE_ATTRIBUTES.get(tag, frozenset())
            for name, value in attributes.items():
                lowered = name.lower()
                if lowered.startswith("on"):
                    problems.append(f"{parser.__name__}: event handler {name}={value!r} on <{tag}>")
                elif lowered not in allowed:
                    problems.append(f"{parser.__name__}: attribute {name}={value!r} on <{tag}>")
                if lowered in URL_ATTRIBUTES or lowered.endswith(":href"):
                    scheme = url_scheme(value)
                    if scheme is not None and scheme not in SAFE_SCHEMES:
                        problems.append(f"{parser.__name__}: {scheme}: URL {name}={value!r} on <{tag}>")
            if tag == "a" and attributes.get("target") and "noopener" not in attributes.get("rel", "").split():
                problems.append(f"{parser.__name__}: <a target> without rel=noopener")
    return problems


def rendered(text: str) -> str:
    return str(render_markdown(text))


def _corpus_params():
    return [pytest.param(payload, id=name) for name, payload in XSS_CORPUS]


# The checker can fail -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        '<a href="javascript:alert(1)">x</a>',
        '<a href="jav&#x09;ascript:alert(1)">x</a>',
        '<a href="&#106;avascript:alert(1)">x</a>',
        '<a href=" \x01JaVaScRiPt:alert(1)">x</a>',
        '<a href="java\nscript:alert(1)">x</a>',
        '<a href="data:text/html,x">x</a>',
        '<a href="vbscript:msgbox(1)">x</a>',
        '<a href="ftp://evil.example/x">x</a>',
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<p onclick=alert(1)>x</p>",
        '<p style="color:red">x</p>',
        "<svg><a xlink:href=javascript:alert(1)>x</a></svg>",
        "<math><mtext>x</mtext></math>",
        "<iframe src=https://ok.example></iframe>",
        "<style>p{}</style>",
        '<div hx-get="/x">x</div>',
        '<a href="https://ok.example" target="_blank">x</a>',
        "<!-- hidden -->",
        # Safe to the standard library's parser, an <img onerror> to a browser's (mutation XSS).
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    ],
)
def test_checker_flags_unsafe_html(bad):
    assert unsafe_markup(bad)


@pytest.mark.parametrize(
    "good",
    [
        '<a href="https://ok.example/a?b=1" title="t" rel="nofollow noopener noreferrer" target="_blank">x</a>',
        '<a href="mailto:someone@example.org">mail</a>',
        '<a href="/relative/path">x</a>',
        '<a href="#fragment">x</a>',
        '<a href="//ok.example/x">x</a>',
        '<a href="javascript%3Aalert(1)">a relative path, not a scheme</a>',
        '<pre class="highlight"><code><span class="k">def</span></code></pre>',
        '<table><thead><tr><th align="left">a</th></tr></thead>'
        '<tbody><tr><td align="right">1</td></tr></tbody></table>',
        '<ol start="3"><li>x</li></ol>',
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>",
    ],
)
def test_checker_accepts_what_the_allowlist_allows(good):
    assert unsafe_markup(good) == []


def test_scheme_is_read_as_a_browser_reads_it():
    assert url_scheme("\x00 \tJaVa\nScRi\rpt:alert(1) ") == "javascript"
    assert url_scheme("https://ok.example") == "https"
    assert url_scheme("/path:with-colon") is None
    assert url_scheme("1javascript:alert(1)") is None  # a scheme starts with a letter


def test_renderer_allowlist_is_no_wider_than_the_checked_one():
    assert markdown.ALLOWED_TAGS <= SAFE_TAGS
    for tag, names in markdown.ALLOWED_ATTRIBUTES.items():
        assert set(names) <= SAFE_ATTRIBUTES.get(tag, set()), tag
    assert markdown.ALLOWED_PROTOCOLS <= SAFE_SCHEMES


# The corpus itself ----------------------------------------------------------------------------------
def test_corpus_is_large_named_and_covers_every_category():
    names = [name for name, _ in XSS_CORPUS]
    assert len(XSS_CORPUS) >= 100
    assert len(set(names)) == len(names)
    assert {name.split("/")[0] for name in names} == set(CATEGORIES)


# Rendered Markdown (a finished reply) --------------------------------------------------------------
@pytest.mark.parametrize("payload", _corpus_params())
def test_rendered_payload_stays_within_the_allowlist(payload):
    assert unsafe_markup(rendered(payload)) == []


@pytest.mark.parametrize(
    "text",
    [
        "see data://evil.example.com/x please",
        "fetch ftp://evil.example.com/payload.exe now",
        "connect to ssh://evil.example.com/ today",
        "call callto://evil.example.com/x or feed://evil.example.com/rss",
        "telnet://evil.example.com:23/ and webcal://evil.example.com/cal.ics",
    ],
)
def test_bare_urls_of_other_schemes_are_not_linked(text):
    # bleach's linkifier runs after its sanitizer, so the links it makes are never checked against
    # ALLOWED_PROTOCOLS: it must not make links with any other scheme in the first place.
    assert unsafe_markup(rendered(text)) == []


def test_rendered_link_keeps_an_allowed_scheme_and_text():
    html_text = rendered("[docs](https://ok.example/a) and http://example.com/b and <mailto:a@ok.example>")

    hrefs = [a["href"] for a in BeautifulSoup(html_text, "html.parser").find_all("a")]
    assert hrefs == ["https://ok.example/a", "http://example.com/b", "mailto:a@ok.example"]


# Code blocks: highlighted only by lexers that cannot be made to run forever --------------------
# Pygments 2.21's tcsh lexer backtracks exponentially on a quote followed by backslashes: 48 take ~3 s,
# each 6 more ~7 times longer; 100 never finish. Scala's and Chapel's do the same.
BACKTRACKING_CODE = "```tcsh\n'" + "\\" * 100 + "\n```\n"


@pytest.mark.parametrize("language", ["tcsh", "scala", "chapel", "markdown", "http", "postgresql"])
def test_code_in_a_language_outside_the_highlighted_ones_renders_as_plain_code(language):
    code = "'" + "\\" * 10 + "\n"
    pre = BeautifulSoup(rendered(f"```{language}\n{code}```"), "html.parser").pre

    assert pre.get("class") is None
    assert pre.code.find(True) is None
    assert pre.code.text == code


@pytest.mark.parametrize(
    ("language", "code"),
    [("python", "x = 1"), ("PY", "x = 1"), ("js", "let x = 1;"), ("typescript", "let x: number = 1;"),
     ("bash", "echo $HOME"), ("sql", "SELECT 1;"), ("rust", "fn main() {}"), ("json", '{"a": 1}'),
     ("html", "<p>x</p>")],
)
def test_common_languages_are_highlighted(language, code):
    pre = BeautifulSoup(rendered(f"```{language}\n{code}\n```"), "html.parser").pre

    assert pre["class"] == ["highlight"]
    assert pre.code.find("span") is not None


def test_code_that_makes_a_highlighter_backtrack_forever_still_renders():
    # In a child process, so a regression fails this test (after a minute) instead of hanging the run.
    script = "import sys; from conversations.markdown import render_markdown; print(render_markdown(sys.stdin.read()))"
    done = subprocess.run(
        [sys.executable, "-c", script], input=BACKTRACKING_CODE, capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2], check=True,
    )

    assert "\\" * 100 in done.stdout


# The stream (text deltas, HTML-escaped) -----------------------------------------------------------
def delta_frame(text: str) -> str:
    """What reply_stream sends for one piece of model output."""
    return _sse("delta", html.escape(text, quote=False))


def parse_sse(stream: str) -> list[tuple[str, str]]:
    """(event, data) pairs, as the EventSource parser of the HTML Standard reads them."""
    events, event, data = [], "", []
    for line in re.split(r"\r\n|\r|\n", stream):
        if line == "":
            if data:
                events.append((event or "message", "\n".join(data)))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    return events


def as_browser_text(text: str) -> str:
    """The text a browser shows for this string inserted as text: line breaks normalised, NULs dropped."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


@pytest.mark.parametrize("payload", _corpus_params())
def test_streamed_payload_has_no_raw_angle_bracket(payload):
    assert "<" not in delta_frame(payload)


@pytest.mark.parametrize("payload", _corpus_params())
def test_streamed_payload_is_exactly_one_delta_event(payload):
    events = parse_sse(delta_frame(payload))

    assert [event for event, _ in events] == ["delta"]
    assert events[0][1] == re.sub(r"\r\n?", "\n", html.escape(payload, quote=False))


@pytest.mark.parametrize("payload", _corpus_params())
def test_streamed_payload_is_shown_as_its_own_text(payload):
    # htmx swaps the event's data in as HTML ("beforeend"): it must be text, and the payload's own.
    (_, data), = parse_sse(delta_frame(payload))
    fragment = html5lib.parseFragment(data, container="div", treebuilder="etree", namespaceHTMLElements=False)

    assert len(fragment) == 0  # no element, no comment
    assert (fragment.text or "") == as_browser_text(payload)


# The bubbles of the page ------------------------------------------------------------------------------
def bubble(message: Message) -> BeautifulSoup:
    page = render_to_string("conversations/chat.html#message", {"conversation": Conversation(), "message": message})
    return BeautifulSoup(page, "html.parser")


@pytest.mark.parametrize("payload", _corpus_params())
def test_user_bubble_shows_payload_as_text(payload):
    content = bubble(Message(pk=1, role=Message.Role.USER, content=payload)).select_one(".content")

    assert content.find(True) is None
    assert content.get_text() == payload


@pytest.mark.parametrize("payload", _corpus_params())
def test_reply_bubble_content_stays_within_the_allowlist(payload):
    message = Message(pk=1, role=Message.Role.ASSISTANT, status=Message.Status.COMPLETE, content=payload)
    content = bubble(message).select_one(".content.markdown")

    assert unsafe_markup(content.decode_contents()) == []
