"""Properties that hold for any input: the message form, context selection, Markdown, the stream.

Example counts stay modest (the suite runs on a busy 2-core machine) and there is no deadline: a slow
example on a loaded machine is not a failure. The form tests share one conversation per test (Hypothesis
runs every example inside the same function-scoped database fixture; the form only reads).
"""

from __future__ import annotations

import html
import re

import pytest
from bleach._vendor import html5lib
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aimodels.tests.factories import AIModelFactory
from conversations import tokens
from conversations.context import ContextTooLong, select_context
from conversations.forms import MessageForm
from conversations.markdown import render_markdown
from conversations.tests.factories import ConversationFactory
from conversations.tests.test_xss import unsafe_markup
from conversations.tests.xss_corpus import XSS_CORPUS
from conversations.tokens import REPLY_PRIMING
from conversations.views import _sse

QUICK = settings(max_examples=150, deadline=None)
WITH_DB = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Characters that trip up text handling: NUL and other C0/C1 controls, every kind of line break and
# space Python's str.strip() knows, BOM, zero-width and bidi controls.
AWKWARD = "\x00\x01\x08\t\n\x0b\x0c\r\x1c\x1f\x7f\x85\xa0\u1680\u2000\u200b\u200d\u2028\u2029\u202e\u3000\ufeff "
texts = st.text(st.characters() | st.sampled_from(AWKWARD), max_size=80)
# Python strings can hold lone surrogates (json.loads("\"\\ud800\"") makes one), though a form post cannot.
texts_with_surrogates = st.text(st.characters(exclude_categories=()) | st.sampled_from(AWKWARD), max_size=80)

# Pieces that Markdown and HTML care about, so random text meets the renderer's edge cases often.
MARKUP_PIECES = [
    "<", ">", "</", "/>", "<!--", "-->", "<![CDATA[", "]]>", "&", "&#", "&#x", ";", "&lt;", "&colon;", "&#x09;",
    "\"", "'", "`", "```", "~~~", "=", " ", "\n", "\n\n", "\t", "\\", "*", "_", "~~", "#", "> ", "- ", "1. ",
    "|", "|---|", "[", "]", "(", ")", "](", "]: ", "![", "<http", "javascript:", "JaVaScRiPt:", "jav\tascript:",
    "data:text/html,", "vbscript:", "http://", "https://", "mailto:", "ftp://", "data://", "//", "example.com",
    "evil.com/x", "alert(1)", "script", "img", "svg", "math", "style", "iframe", "a", "href", "src", "onerror",
    "onload", "on", "x", "title", "class", "hx-get", "{{ ", " }}", "{% ", " %}", "\u202e", "\u200b", "\uff1c",
    "\x00", "```python\n", "```html\n", "```js\n", "```php\n", "```bash\n", "```tcsh\n",
]
corpus_payloads = st.sampled_from([payload for _, payload in XSS_CORPUS])
markup = st.lists(st.sampled_from(MARKUP_PIECES) | st.text(max_size=4) | corpus_payloads, max_size=25).map("".join)


# (a) The message form -------------------------------------------------------------------------------
LIMIT = 60  # characters, set low so generated texts fall on both sides of it
TOKEN_BUDGET_WINDOW = 1_300  # with 1000 for the reply and the 256 margin, 41 tokens are left for a message


# Every side of every rule: blank, around the length limit, dense in tokens, with NULs, ordinary.
form_texts = st.one_of(
    texts,
    st.text(st.sampled_from(AWKWARD), max_size=8),
    st.text(st.sampled_from("ab \n"), min_size=LIMIT - 4, max_size=LIMIT + 4),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=10, max_size=40),
)


@pytest.fixture
def small_conversation(db, settings):
    settings.MESSAGE_MAX_LENGTH = LIMIT
    model = AIModelFactory(api_key_env="", context_window=TOKEN_BUDGET_WINDOW, max_completion_tokens=1_000)
    return ConversationFactory(model=model, system_prompt="")


def message_fits(model, text: str) -> bool:
    encoding = tokens.encoding_for(model.deployment_name)
    needed = tokens.message_tokens(role="user", content=text, encoding=encoding)
    try:
        select_context(system_tokens=0, history=[(None, needed)], context_window=model.context_window,
                       max_completion_tokens=model.max_completion_tokens)
    except ContextTooLong:
        return False
    return True


@WITH_DB
@given(text=texts_with_surrogates)
def test_message_form_never_raises(small_conversation, text):
    form = MessageForm({"content": text}, user=small_conversation.user, conversation=small_conversation)

    form.is_valid()
    assert isinstance(form.errors.as_data(), dict)


@WITH_DB
@given(text=form_texts)
@example(text="x" * LIMIT)
@example(text=" " + "x" * LIMIT + "\n")
@example(text="x" * (LIMIT + 1))
@example(text=" \t\n\u3000\x1c")
@example(text="ok\x00")
@example(text="\u4e00" * 41)  # few characters, many tokens
def test_message_form_accepts_exactly_the_texts_that_follow_the_rules(small_conversation, text):
    typed = text.strip()
    expected = (
        0 < len(typed) <= LIMIT
        and "\x00" not in typed
        and message_fits(small_conversation.model, typed)
    )

    form = MessageForm({"content": text}, user=small_conversation.user, conversation=small_conversation)

    assert form.is_valid() is expected, form.errors.as_data()


@WITH_DB
@given(text=form_texts)
def test_accepted_message_is_the_typed_text_without_surrounding_whitespace(small_conversation, text):
    form = MessageForm({"content": text}, user=small_conversation.user, conversation=small_conversation)

    if form.is_valid():
        assert form.cleaned_data["content"] == text.strip()


# (b) Context selection ---------------------------------------------------------------------------
@st.composite
def context_requests(draw):
    # Mostly windows with room left for messages, so most examples make a plan (some leave messages out,
    # some refuse the newest one); now and then a window the reservations alone fill.
    window = draw(st.integers(min_value=1, max_value=5_000))
    share = draw(st.sampled_from([4, 4, 4, 1]))
    return {
        "system_tokens": draw(st.integers(min_value=0, max_value=window // share)),
        "history": list(enumerate(draw(st.lists(st.integers(0, window // 3), min_size=1, max_size=40)))),
        "context_window": window,
        "max_completion_tokens": draw(st.integers(min_value=0, max_value=window // share)),
        "margin": draw(st.integers(min_value=0, max_value=min(300, window // share))),
    }


def message_budget(request: dict) -> int:
    return (request["context_window"] - request["max_completion_tokens"] - request["margin"] - REPLY_PRIMING
            - request["system_tokens"])


@QUICK
@given(request=context_requests())
def test_context_is_too_long_exactly_when_the_newest_message_alone_does_not_fit(request):
    newest_fits = request["history"][-1][1] <= message_budget(request)

    try:
        select_context(**request)
    except ContextTooLong as error:
        assert not newest_fits
        assert error.needed == request["history"][-1][1]
        assert error.available == max(message_budget(request), 0)
    else:
        assert newest_fits


@QUICK
@given(request=context_requests())
def test_context_plan_never_exceeds_the_window_less_the_reply_and_margin(request):
    try:
        plan = select_context(**request)
    except ContextTooLong:
        return

    assert plan.total_tokens <= request["context_window"] - request["max_completion_tokens"] - request["margin"]
    counts = dict(request["history"])
    assert plan.total_tokens == request["system_tokens"] + sum(counts[key] for key in plan.keys) + REPLY_PRIMING


@QUICK
@given(request=context_requests())
def test_context_plan_keeps_the_newest_messages_in_order(request):
    try:
        plan = select_context(**request)
    except ContextTooLong:
        return

    count = len(request["history"])
    assert plan.keys == tuple(range(plan.omitted, count))  # a contiguous run ending with the newest


@QUICK
@given(request=context_requests())
def test_context_plan_leaves_out_a_message_only_when_it_does_not_fit(request):
    try:
        plan = select_context(**request)
    except ContextTooLong:
        return

    if plan.omitted:
        next_older = request["history"][plan.omitted - 1][1]
        kept = plan.total_tokens - request["system_tokens"] - REPLY_PRIMING
        assert kept + next_older > message_budget(request)


# (c) Markdown ----------------------------------------------------------------------------------------
@QUICK
@given(text=texts_with_surrogates)
def test_markdown_renders_any_text(text):
    assert isinstance(str(render_markdown(text)), str)


@QUICK
@given(text=markup)
def test_markdown_of_markup_soup_stays_within_the_allowlist(text):
    assert unsafe_markup(str(render_markdown(text))) == []


@QUICK
@given(text=texts)
def test_markdown_of_any_text_stays_within_the_allowlist(text):
    assert unsafe_markup(str(render_markdown(text))) == []


# The stream ------------------------------------------------------------------------------------------
def shown_as_text(text: str) -> str:
    """What a browser shows for text in an SSE data field appended as text: line breaks normalised (by
    the event stream), NULs dropped (by the HTML parser)."""
    return re.sub(r"\r\n?", "\n", text).replace("\x00", "")


@QUICK
@given(pieces=st.lists(markup | texts, min_size=1, max_size=8))
def test_streamed_pieces_show_exactly_the_text_that_was_sent(pieces):
    # Each delta is escaped on its own and htmx appends each one as HTML: each must read as its own text,
    # with no element, however the reply is cut into pieces.
    shown = []
    for piece in pieces:
        frame = _sse("delta", html.escape(piece, quote=False))
        lines = re.split(r"\r\n|\r|\n", frame)
        data = "\n".join(line.removeprefix("data: ") for line in lines if line.startswith("data: "))
        fragment = html5lib.parseFragment(data, container="div", treebuilder="etree", namespaceHTMLElements=False)
        assert len(fragment) == 0
        shown.append(fragment.text or "")

    assert shown == [shown_as_text(piece) for piece in pieces]
