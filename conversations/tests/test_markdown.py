import pytest
from bleach._vendor import html5lib
from bs4 import BeautifulSoup
from django.template.loader import render_to_string

from conversations.markdown import render_markdown
from conversations.models import Conversation, Message
from conversations.tests.test_xss import as_browser_text
from conversations.tests.xss_corpus import XSS_CORPUS


def soup(text: str) -> BeautifulSoup:
    return BeautifulSoup(str(render_markdown(text)), "html.parser")


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<svg onload=alert(1)></svg>",
        "<iframe src=https://evil.example></iframe>",
        '<a href="javascript:alert(1)">x</a>',
        "[click](javascript:alert(1))",
        "[click](JAVASCRIPT:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![x](data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=)",
        '<p style="background:url(javascript:alert(1))">x</p>',
        "<style>body{display:none}</style>",
        '<form action="https://evil.example"><input name=x></form>',
        "```html\n<script>alert(1)</script>\n```",
        "[x](https://ok.example \"t\" onmouseover=alert(1))",
        "<a href='https://ok.example' onclick='alert(1)'>x</a>",
    ],
)
def test_model_output_cannot_inject_markup(attack):
    html = soup(attack)

    assert not html.find_all(["script", "img", "svg", "iframe", "style", "form", "input"])
    for tag in html.find_all(True):
        assert not [name for name in tag.attrs if name.startswith("on") or name == "style"], tag
        href = tag.get("href", "")
        assert not href or href.startswith(("https://", "http://", "mailto:")), tag


def test_links_open_safely():
    link = soup("[docs](https://docs.example/page)").a

    assert link["href"] == "https://docs.example/page"
    assert link["target"] == "_blank"
    assert set(link["rel"]) >= {"nofollow", "noopener"}


def test_bare_urls_become_safe_links():
    link = soup("see https://example.org/x for more").a

    assert link["href"] == "https://example.org/x"
    assert "nofollow" in link["rel"]


def test_code_block_is_highlighted_and_escaped():
    html = soup("```python\nprint('<b>hi</b>')\n```")

    pre = html.find("pre", class_="highlight")
    assert pre is not None
    assert pre.find("span", class_="nb").text == "print"
    assert "<b>hi</b>" in pre.text
    assert not html.find("b")


def test_unknown_language_still_renders_escaped_code():
    html = soup("```nosuchlang\n<i>x</i>\n```")

    assert html.pre.code.text == "<i>x</i>\n"
    assert not html.find("i")


def test_common_markdown_renders():
    html = soup("# Title\n\n- **bold** and *em* and `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~")

    assert html.h1.text == "Title"
    assert html.strong.text == "bold"
    assert html.em.text == "em"
    assert html.code.text == "code"
    assert [td.text for td in html.find_all("td")] == ["1", "2"]
    assert html.find(["del", "s"]).text == "gone"


def test_rendering_in_many_threads_at_once_gives_the_same_html():
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"# Reply {n}\n\nSee https://example.org/{n} and `code {n}`.\n\n```python\nx = {n}\n```" for n in range(200)]
    expected = [str(render_markdown(text)) for text in texts]

    with ThreadPoolExecutor(max_workers=16) as pool:
        rendered = list(pool.map(lambda text: str(render_markdown(text)), texts))

    assert rendered == expected


# Code blocks: a wrapper for the Copy code button, and the fence's language in a header ---------------
def test_fenced_code_sits_in_a_code_block_headed_by_its_language():
    block = soup("```python\nx = 1\n```").find("div", class_="code-block")

    assert block.find("div", class_="code-lang").text == "python"
    assert block.find("pre", class_="highlight") is not None


def test_fenced_code_without_a_language_has_no_header():
    block = soup("```\nplain\n```").find("div", class_="code-block")

    assert block.find("div", class_="code-lang") is None
    assert block.pre.code.text == "plain\n"


def test_indented_code_sits_in_a_code_block_too():
    block = soup("    indented\n").find("div", class_="code-block")

    assert block.pre.code.text == "indented\n"


def test_language_name_is_shown_as_text():
    html = soup("```<img/src=x/onerror=alert(1)>\ny\n```")

    assert html.find("div", class_="code-lang").text == "<img/src=x/onerror=alert(1)>"
    assert not html.find("img")


def test_a_long_language_name_is_cut():
    html = soup("```" + "x" * 500 + "\ny\n```")

    assert html.find("div", class_="code-lang").text == "x" * 40


# The reply's source for its Copy button (chat.html#message) -----------------------------------------
def reply_bubble(content: str, status: str = "complete") -> BeautifulSoup:
    message = Message(pk=1, role=Message.Role.ASSISTANT, status=status, content=content)
    page = render_to_string("conversations/chat.html#message", {"conversation": Conversation(), "message": message})
    return BeautifulSoup(page, "html.parser")


def test_finished_reply_has_a_copy_button_and_its_markdown_source():
    bubble = reply_bubble("Some **bold** text.\n\n```python\nx = 1\n```")

    assert bubble.find("button", class_="copy-reply").text == "Copy"
    assert bubble.find("template", class_="reply-source").text == "Some **bold** text.\n\n```python\nx = 1\n```"


def test_reply_without_text_has_no_copy_button():
    assert reply_bubble("", status="failed").find("button", class_="copy-reply") is None


@pytest.mark.parametrize("payload", [pytest.param(payload, id=name) for name, payload in XSS_CORPUS])
def test_reply_source_is_escaped_text(payload):
    template = reply_bubble(payload).find("template", class_="reply-source")
    fragment = html5lib.parseFragment(template.decode_contents(), container="template", treebuilder="etree",
                                      namespaceHTMLElements=False)

    assert len(fragment) == 0  # no element, no comment: what the browser copies is the text itself
    assert (fragment.text or "") == as_browser_text(payload)


def test_the_reply_being_written_shows_no_template_text():
    # A {# #} comment spans one line only; a longer one would be printed into the bubble.
    page = str(reply_bubble("", status="pending"))

    assert "{#" not in page and "{%" not in page
    assert BeautifulSoup(page, "html.parser").find(class_="stream")["aria-busy"] == "true"
