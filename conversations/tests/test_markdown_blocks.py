"""Markdown cut into finished blocks as a reply streams (conversations.markdown.MarkdownBlocks): a
block is handed out once, when nothing that follows can change it, and the renderings of the
blocks in a row are the rendering of the whole reply."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations import markdown
from conversations.markdown import MarkdownBlocks, render_markdown


def fed(*pieces: str) -> tuple[list[str], MarkdownBlocks]:
    blocks, finished = MarkdownBlocks(), []
    for piece in pieces:
        finished += blocks.feed(piece)
    return finished, blocks


def test_a_paragraph_is_finished_by_the_blank_line_after_it():
    finished, blocks = fed("First para", "graph.\n", "Same paragraph.\n")
    assert finished == []

    assert blocks.feed("\n") == ["First paragraph.\nSame paragraph.\n\n"]
    assert blocks.rest == ""


def test_a_line_under_a_paragraph_can_still_make_it_a_heading():
    finished, blocks = fed("Title\n")
    assert finished == []

    assert blocks.feed("===\n") == ["Title\n===\n"]  # a heading: finished with its line
    assert "<h1>Title</h1>" in render_markdown("Title\n===\n")


@pytest.mark.parametrize("line", ["# Heading\n", "***\n"])
def test_a_heading_or_a_rule_is_finished_with_its_line(line):
    assert fed(line)[0] == [line]


def test_a_table_is_finished_by_a_blank_line_and_not_before():
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n"
    finished, blocks = fed(table, "| 3 | 4 |\n")
    assert finished == []

    finished += blocks.feed("\nAfter")
    assert finished == [table + "| 3 | 4 |\n\n"]
    assert "<table>" in render_markdown(finished[0])
    assert blocks.rest == "After"


@pytest.mark.parametrize("block", ["- one\n", "    indented code\n"])
def test_a_list_or_indented_code_waits_for_the_next_block(block):
    finished, blocks = fed(block, "\n")
    assert finished == []

    assert blocks.feed("Next.\n") == [block + "\n"]


def test_a_code_fence_is_finished_as_soon_as_it_closes():
    finished, blocks = fed("```python\n", "x = 1\n", "\n", "y = 2\n")
    assert finished == []

    finished += blocks.feed("```\n")
    assert finished == ["```python\nx = 1\n\ny = 2\n```\n"]
    assert blocks.rest == ""


@pytest.mark.parametrize(
    ("opening", "not_closing", "closing"),
    [
        ("````\n", "```\n", "````\n"),  # a shorter run does not close a longer fence
        ("~~~\n", "```\n", "~~~~\n"),  # nor does the other character
        ("```\n", "```python\n", "   ```  \n"),  # nor a line with a language; up to 3 spaces before, any after
        ("```\n", "    ```\n", "```\n"),  # 4 spaces make it code
    ],
)
def test_only_a_real_closing_fence_closes_a_fence(opening, not_closing, closing):
    finished, blocks = fed(opening, "code\n", not_closing)
    assert finished == []

    assert blocks.feed(closing) == [opening + "code\n" + not_closing + closing]


def test_a_list_is_not_finished_by_a_blank_line():
    # The next item makes the whole list loose: its first item changes.
    finished, blocks = fed("- one\n", "\n", "- two\n")
    assert finished == []
    assert render_markdown(blocks.rest).count("<p>") == 2


def test_line_breaks_are_normalised_even_when_cr_lf_is_split_between_pieces():
    finished, blocks = fed("One.\r", "\n\r", "\nTwo.\r\n")

    assert finished == ["One.\n\n"]
    assert blocks.rest == "Two.\n"


def test_nothing_is_parsed_inside_an_open_fence_until_a_line_may_close_it(monkeypatch):
    _, blocks = fed("```\n")
    parses = []
    real_parse = markdown._md.parse
    monkeypatch.setattr(markdown._md, "parse", lambda text: parses.append(text) or real_parse(text))

    for n in range(50):
        assert blocks.feed(f"line {n}\n") == []
    assert parses == []

    assert blocks.feed("```\n")
    assert len(parses) == 1


# Any reply, cut anywhere ------------------------------------------------------------------------
BLOCKS = st.sampled_from([
    "A paragraph with **bold**, `code` and a [link](https://example.com).\n",
    "Two lines\nof one paragraph.\n",
    "# A heading\n",
    "Setext\n---\n",
    "- one\n- two\n",
    "- loose\n\n- list\n",
    "1. first\n2. second\n",
    "3. starts at three\n",
    "> quoted\nlazy line\n",
    "| a | b |\n|---|---|\n| <i>1</i> | 2 |\n",
    "```python\nprint('<b>')\n\n```\n",
    "~~~\n```\nnot closed by that\n~~~\n",
    "    indented code\n",
    "***\n",
    "<script>alert(1)</script>\n",
    "text with\r\ncarriage returns\r",
])
SEPARATORS = st.sampled_from(["", "\n", "\n\n", "\n\n\n"])
documents = st.lists(st.tuples(BLOCKS, SEPARATORS), min_size=1, max_size=8).map(
    lambda parts: "".join(block + separator for block, separator in parts)
)


@settings(max_examples=300, deadline=None)
@given(document=documents, cuts=st.lists(st.integers(min_value=1, max_value=15), max_size=60))
def test_blocks_and_rest_are_the_reply_and_render_as_it_does(document, cuts):
    blocks, finished, start = MarkdownBlocks(), [], 0
    for size in cuts + [len(document)]:
        piece = document[start : start + size]
        finished += blocks.feed(piece)
        start += size
        if start >= len(document):
            break
    normalised = document.replace("\r\n", "\n").replace("\r", "\n")

    assert "".join(finished) + blocks.rest == normalised
    rendered = "".join(render_markdown(source) for source in finished) + render_markdown(blocks.rest)
    assert rendered == render_markdown(normalised)
