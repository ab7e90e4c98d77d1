import pytest
from bs4 import BeautifulSoup

from conversations.markdown import render_markdown


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
