"""Markdown for replies: markdown-it-py renders, Pygments highlights code, bleach cleans.

Raw HTML in the source is never trusted: markdown-it escapes it (html=False) and bleach then
keeps only an allowlist of tags and attributes, and only http(s)/mailto links.
"""

import html
import re
import threading
from functools import partial

import bleach
from bleach.linkifier import LinkifyFilter, build_url_re
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import find_lexer_class_by_name
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
# bleach runs its filters after its sanitizer, so the links LinkifyFilter makes are never checked against
# ALLOWED_PROTOCOLS; its default pattern links bare data://, ftp://, ssh://, telnet://... URLs. It must
# only recognise our schemes (a bare domain still becomes an http:// link).
_LINKABLE_URL = build_url_re(protocols=ALLOWED_PROTOCOLS)

_formatter = HtmlFormatter(nowrap=True)

# Languages whose code blocks are highlighted; any other renders as plain code. Some Pygments lexers
# backtrack exponentially on short text (2.21: tcsh, chapel and scala on a quote followed by ~50
# backslashes take minutes, ~100 never finish), and a reply is rendered on every view of its page. These
# were fuzzed with quote/escape/bracket runs (no blow-up) and pick their sub-lexers themselves. Not here,
# on purpose: lexers that choose a sub-lexer from the text (markdown by a fence's language, http by
# Content-Type, postgresql by LANGUAGE), which would reach every lexer again.
HIGHLIGHTED_LEXERS = frozenset({
    "BashLexer", "BashSessionLexer", "CLexer", "CSharpLexer", "ClojureLexer", "CppLexer", "CssLexer",
    "DartLexer", "DiffLexer", "DjangoLexer", "DockerLexer", "ElixirLexer", "ErlangLexer", "FSharpLexer",
    "GoLexer", "GraphQLLexer", "GroovyLexer", "HaskellLexer", "HtmlDjangoLexer", "HtmlLexer", "IniLexer",
    "JavaLexer", "JavascriptLexer", "JsonLexer", "JsxLexer", "JuliaLexer", "KotlinLexer", "LuaLexer",
    "MakefileLexer", "MatlabLexer", "NasmLexer", "NginxConfLexer", "NimrodLexer", "ObjectiveCLexer",
    "OcamlLexer", "PerlLexer", "PhpLexer", "PowerShellLexer", "ProtoBufLexer", "PythonConsoleLexer",
    "PythonLexer", "RubyLexer", "RustLexer", "SLexer", "ScssLexer", "SqlLexer", "SwiftLexer", "TOMLLexer",
    "TerraformLexer", "TexLexer", "TextLexer", "TsxLexer", "TypeScriptLexer", "VbNetLexer", "VueLexer",
    "XmlLexer", "YamlLexer", "ZigLexer",
})


def _highlight(code: str, lang: str, attrs: str) -> str:
    try:
        lexer_class = find_lexer_class_by_name(lang.strip().split()[0]) if lang.strip() else None
    except ClassNotFound:
        lexer_class = None
    if lexer_class is None or lexer_class.__name__ not in HIGHLIGHTED_LEXERS:
        return ""  # markdown-it then renders an escaped plain <pre><code>
    # Starting with <pre> tells markdown-it to use this as the whole block.
    return f'<pre class="highlight"><code>{highlight(code, lexer_class(), _formatter)}</code></pre>'


def _safe_link(attrs: dict, new: bool = False) -> dict:
    href_key = (None, "href")
    if href_key in attrs:
        attrs[(None, "rel")] = "nofollow noopener noreferrer"
        attrs[(None, "target")] = "_blank"
    return attrs


_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight}).enable(
    ["table", "strikethrough"]
)
_plain_fence, _plain_code_block = _md.renderer.rules["fence"], _md.renderer.rules["code_block"]
LANGUAGE_NAME_MAX = 40  # a fence's language longer than this is shown cut to it


def _fence(self, tokens, idx, options, env) -> str:
    """Every fenced code block sits in a <div class="code-block"> (chat.js adds its Copy code button
    there), headed by <div class="code-lang"> with the language when the fence names one."""
    words = tokens[idx].info.split()
    name = words[0][:LANGUAGE_NAME_MAX] if words else ""
    header = f'<div class="code-lang">{html.escape(name)}</div>' if name else ""
    return f'<div class="code-block">{header}{_plain_fence(tokens, idx, options, env)}</div>\n'


def _code_block(self, tokens, idx, options, env) -> str:
    """An indented code block: the same <div class="code-block">, without a language."""
    return f'<div class="code-block">{_plain_code_block(tokens, idx, options, env)}</div>\n'


_md.add_render_rule("fence", _fence)
_md.add_render_rule("code_block", _code_block)
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
            filters=[
                partial(LinkifyFilter, callbacks=[_safe_link], skip_tags={"pre", "code"}, url_re=_LINKABLE_URL)
            ],
        )
    return _local.cleaner


def render_markdown(text: str) -> SafeString:
    return mark_safe(_cleaner().clean(_md.render(text)))


_CLOSING_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*\n?")


class MarkdownBlocks:
    """Markdown that arrives piece by piece (a reply as it streams), cut into its finished
    top-level blocks: a heading or rule at the end of its line, a code fence as soon as it
    closes, a paragraph, table or quote at the blank line after it, any block (a list, an
    indented code block) once the next block has begun. A finished block cannot change any more (except a link to
    a reference defined further on, which then stays plain text), so each is rendered once, and
    their renderings in a row are the whole reply's.

    `rest` is the text after the finished blocks, shown as plain text until it finishes in turn.
    Line breaks are normalised to "\\n". Parsing happens only when a line is complete, and not
    at all inside an open code fence until a line that may close it."""

    def __init__(self) -> None:
        self.rest = ""
        self._carriage_return = False  # the last piece ended in "\r", perhaps half of "\r\n"
        self._fence: str | None = None  # the marker of the open fence that `rest` begins with
        self._checked = 0  # where the lines of `rest` not yet looked at for a closing fence begin

    def feed(self, text: str) -> list[str]:
        """Adds `text`; returns the source of each block it finished, in order."""
        if self._carriage_return and text.startswith("\n"):
            text = text[1:]
        self._carriage_return = text.endswith("\r")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.rest += text
        if "\n" not in text or (self._fence and not self._fence_closes()):
            return []
        return self._split()

    def _fence_closes(self) -> bool:
        complete = self.rest.rfind("\n") + 1
        lines, self._checked = self.rest[self._checked : complete], complete
        return any(_closes(line, self._fence) for line in lines.splitlines())

    def _split(self) -> list[str]:
        complete = self.rest.rfind("\n") + 1
        lines = self.rest[:complete].splitlines(keepends=True)
        starts = [token for token in _md.parse(self.rest[:complete]) if token.level == 0 and token.nesting >= 0]
        last = starts[-1] if starts else None
        last_finished = last is not None and _finished(last, lines)
        finished = starts if last_finished else starts[:-1]
        if not finished:
            self._fence_after(last, lines, first=0)
            return []
        cut = len(lines) if last_finished else last.map[0]
        bounds = [0] + [token.map[0] for token in finished[1:]] + [cut]
        sources = ["".join(lines[begin:end]) for begin, end in zip(bounds, bounds[1:])]
        self.rest = "".join(lines[cut:]) + self.rest[complete:]
        self._fence_after(None if last_finished else last, lines, first=cut)
        return sources

    def _fence_after(self, last, lines: list[str], *, first: int) -> None:
        """After a parse: note the open fence that `rest` (lines[first:] on) ends with, if it
        does, and that the lines up to its opening one need no look for a closing one."""
        self._fence = None
        if last is not None and last.type == "fence" and not _closed(last, lines):
            self._fence = last.markup
            self._checked = sum(len(line) for line in lines[first : last.map[0] + 1])


# Blocks a blank line ends: nothing after it can change them. (Not a list: a blank line and an
# indented line continue its item, and make the whole list loose. Not indented code: it goes on
# after blank lines.)
_ENDED_BY_A_BLANK_LINE = {"paragraph_open", "table_open", "blockquote_open"}


def _finished(block, lines: list[str]) -> bool:
    """Whether the last block of the complete lines can still change."""
    if block.type in ("heading_open", "hr"):
        return True
    if block.type == "fence":
        return _closed(block, lines)
    return block.type in _ENDED_BY_A_BLANK_LINE and block.map[1] < len(lines)  # blank lines follow


def _closes(line: str, marker: str) -> bool:
    match = _CLOSING_FENCE.fullmatch(line)
    return bool(match) and match.group(1)[0] == marker[0] and len(match.group(1)) >= len(marker)


def _closed(fence, lines: list[str]) -> bool:
    begin, end = fence.map
    return end - begin >= 2 and _closes(lines[end - 1], fence.markup)
