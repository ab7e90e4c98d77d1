"""Markdown for replies: markdown-it-py renders, Pygments highlights code, bleach cleans.

Raw HTML in the source is never trusted: markdown-it escapes it (html=False) and bleach then
keeps only an allowlist of tags and attributes, and only http(s)/mailto links.
"""

import threading
from functools import partial

import bleach
from bleach.linkifier import LinkifyFilter
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "a",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "span", "div",
}
ALLOWED_ATTRIBUTES = {
    "a": ["href", "title", "rel", "target"],
    "span": ["class"],
    "div": ["class"],
    "code": ["class"],
    "pre": ["class"],
    "ol": ["start"],
    "th": ["align"],
    "td": ["align"],
}
ALLOWED_PROTOCOLS = {"http", "https", "mailto"}

_formatter = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang.strip().split()[0]) if lang.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it then renders an escaped plain <pre><code>
    # Starting with <pre> tells markdown-it to use this as the whole block.
    return f'<pre class="highlight"><code>{highlight(code, lexer, _formatter)}</code></pre>'



def _safe_link(attrs: dict, new: bool = False) -> dict:
    href_key = (None, "href")
    if href_key in attrs:
        attrs[(None, "rel")] = "nofollow noopener noreferrer"
        attrs[(None, "target")] = "_blank"
    return attrs


_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight}).enable(
    ["table", "strikethrough"]
)
# bleach's Cleaner keeps parser state between calls and is not thread-safe ("create a separate
# cleaner per thread"), and replies are rendered in several threads at once: one per thread.
_local = threading.local()


def _cleaner() -> bleach.Cleaner:
    if not hasattr(_local, "cleaner"):
        _local.cleaner = bleach.Cleaner(
            tags=ALLOWED_TAGS,
            attributes=ALLOWED_ATTRIBUTES,
            protocols=ALLOWED_PROTOCOLS,
            strip=True,
            strip_comments=True,
            filters=[partial(LinkifyFilter, callbacks=[_safe_link], skip_tags={"pre", "code"})],
        )
    return _local.cleaner


def render_markdown(text: str) -> SafeString:
    return mark_safe(_cleaner().clean(_md.render(text)))
