"""A long conversation opens at its newest messages; scrolling up loads the earlier ones a page
at a time (?before=<pk>), by a cursor on (created_at, pk)."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from bs4 import BeautifulSoup
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from conversations.models import Message
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.views import MESSAGE_PAGE_SIZE

HTMX = {"HX-Request": "true"}


def add_messages(conversation, count: int, *, first: int = 0, same_instant: bool = False, **fields) -> list[Message]:
    """Messages "m<first>".."m<first + count - 1>", oldest first, a second apart (or all at once)."""
    start = timezone.now() - timedelta(days=1)
    return [
        MessageFactory(
            conversation=conversation, content=f"m{n}", created_at=start + timedelta(seconds=0 if same_instant else n),
            **fields,
        )
        for n in range(first, first + count)
    ]


def earlier_url(conversation, before) -> str:
    return f"{conversation.get_absolute_url()}?{urlencode({'before': before})}"


def soup_of(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def texts(soup: BeautifulSoup) -> list[str]:
    return [bubble.select_one(".content").get_text(strip=True) for bubble in soup.select("article.bubble")]


def names(first: int, stop: int) -> list[str]:
    return [f"m{n}" for n in range(first, stop)]


def every_page(client, conversation) -> list[list[str]]:
    """The texts of the page, then of each earlier page the sentinels load, as scrolling up would."""
    page = soup_of(client.get(conversation.get_absolute_url()))
    pages = [texts(page)]
    while (sentinel := page.select_one(".earlier-messages")) and len(pages) < 10:  # 10: a loop, not pages
        page = soup_of(client.get(sentinel["hx-get"], headers=HTMX))
        pages.append(texts(page))
    return pages


@pytest.mark.django_db
def test_the_page_shows_the_newest_page_oldest_first_under_a_sentinel_for_the_rest(signed_in, conversation):
    shown = add_messages(conversation, 70)[20:]

    page = soup_of(signed_in.get(conversation.get_absolute_url()))

    assert texts(page) == names(20, 70)  # the newest 50
    sentinel = page.select_one("#message-list > .earlier-messages")
    assert sentinel is page.select_one("#message-list > *")  # above the messages
    assert sentinel["hx-get"] == earlier_url(conversation, shown[0].pk)
    assert (sentinel["hx-trigger"], sentinel["hx-swap"]) == ("intersect once", "outerHTML")
    assert sentinel.get_text(strip=True) == "Loading earlier messages…"


@pytest.mark.django_db
def test_each_earlier_page_holds_the_page_before_it_and_a_sentinel_while_more_exist(signed_in, conversation):
    add_messages(conversation, 2 * MESSAGE_PAGE_SIZE + 7)

    pages = every_page(signed_in, conversation)

    assert pages == [
        names(MESSAGE_PAGE_SIZE + 7, 2 * MESSAGE_PAGE_SIZE + 7), names(7, MESSAGE_PAGE_SIZE + 7), names(0, 7)
    ]


@pytest.mark.django_db
def test_an_earlier_page_is_the_messages_only_with_no_page_around_them(signed_in, conversation):
    messages = add_messages(conversation, MESSAGE_PAGE_SIZE + 2)

    page = soup_of(signed_in.get(earlier_url(conversation, messages[2].pk), headers=HTMX))

    assert texts(page) == ["m0", "m1"]
    assert page.select_one(".earlier-messages") is None  # the first message is here: nothing above it
    assert page.select_one("#message-list, #composer, #empty-chat, html") is None


@pytest.mark.django_db
@pytest.mark.parametrize("count, sentinel", [(50, False), (51, True)])
def test_a_sentinel_only_when_a_message_is_left_above(signed_in, conversation, count, sentinel):
    add_messages(conversation, count)

    page = soup_of(signed_in.get(conversation.get_absolute_url()))

    assert len(texts(page)) == 50
    assert bool(page.select(".earlier-messages")) is sentinel


@pytest.mark.django_db
def test_messages_written_at_the_same_instant_are_paged_without_loss(signed_in, conversation):
    add_messages(conversation, MESSAGE_PAGE_SIZE + 30, same_instant=True)

    pages = every_page(signed_in, conversation)

    assert pages == [names(30, MESSAGE_PAGE_SIZE + 30), names(0, 30)]


@pytest.mark.django_db
def test_an_earlier_page_follows_its_cursor_not_an_offset(signed_in, conversation):
    add_messages(conversation, MESSAGE_PAGE_SIZE + 5)
    sentinel = soup_of(signed_in.get(conversation.get_absolute_url())).select_one(".earlier-messages")
    add_messages(conversation, 3, first=1000)  # newer: an offset would now repeat three messages

    assert texts(soup_of(signed_in.get(sentinel["hx-get"], headers=HTMX))) == names(0, 5)


@pytest.mark.django_db
def test_pages_hold_this_conversations_messages_only(signed_in, user, conversation):
    other = ConversationFactory(user=user, model=conversation.model)
    mine = add_messages(conversation, MESSAGE_PAGE_SIZE + 5)
    add_messages(other, MESSAGE_PAGE_SIZE + 5, first=500)  # interleaved in time

    pages = every_page(signed_in, conversation)

    assert pages == [names(5, MESSAGE_PAGE_SIZE + 5), names(0, 5)]
    assert texts(soup_of(signed_in.get(earlier_url(conversation, mine[-1].pk), headers=HTMX))) == names(
        4, MESSAGE_PAGE_SIZE + 4
    )


@pytest.mark.django_db
def test_a_message_of_another_conversation_is_not_a_place_in_this_one(signed_in, user, conversation):
    add_messages(conversation, 3)
    own_other = add_messages(ConversationFactory(user=user, model=conversation.model), 3, first=10)
    strangers = add_messages(ConversationFactory(user=UserFactory(), model=conversation.model), 3, first=20)

    for message in (own_other[-1], strangers[-1]):
        response = signed_in.get(earlier_url(conversation, message.pk), headers=HTMX)

        assert response.status_code == 400
        assert response.content.decode() == "Not a message of this conversation."


@pytest.mark.django_db
@pytest.mark.parametrize("before", ["abc", "-1", "1.5", "9" * 30, "0x10"])
def test_a_before_that_is_not_a_message_is_refused(signed_in, conversation, before):
    add_messages(conversation, 3)

    response = signed_in.get(earlier_url(conversation, before), headers=HTMX)

    assert response.status_code == 400
    assert response.content.decode() == "Not a message of this conversation."


@pytest.mark.django_db
def test_another_users_conversation_is_404_with_or_without_before(client, conversation):
    messages = add_messages(conversation, 3)
    client.force_login(UserFactory())

    assert client.get(conversation.get_absolute_url()).status_code == 404
    assert client.get(earlier_url(conversation, messages[-1].pk), headers=HTMX).status_code == 404


@pytest.mark.django_db
def test_only_the_newest_reply_offers_retry(signed_in, conversation):
    add_messages(conversation, MESSAGE_PAGE_SIZE + 9)
    old_failure = MessageFactory(  # the last message of the earlier page
        conversation=conversation, reply=True, status="failed", error="Rate limited.",
        created_at=conversation.messages.get(content="m9").created_at + timedelta(milliseconds=1),
    )
    newest = MessageFactory(conversation=conversation, reply=True, status="interrupted", content="half", error="x")

    page = soup_of(signed_in.get(conversation.get_absolute_url()))
    earlier = soup_of(signed_in.get(page.select_one(".earlier-messages")["hx-get"], headers=HTMX))

    assert [button.find_parent("article")["id"] for button in page.select("button.retry")] == [f"message-{newest.pk}"]
    assert earlier.select_one(f"#message-{old_failure.pk}.status-failed")
    assert earlier.select("button.retry") == []


@pytest.mark.django_db
def test_the_greeting_shows_only_in_a_conversation_without_messages(signed_in, conversation):
    assert soup_of(signed_in.get(conversation.get_absolute_url())).select_one("#empty-chat")

    add_messages(conversation, MESSAGE_PAGE_SIZE + 1)
    page = soup_of(signed_in.get(conversation.get_absolute_url()))
    earlier = soup_of(signed_in.get(page.select_one(".earlier-messages")["hx-get"], headers=HTMX))

    assert page.select_one("#empty-chat") is None
    assert earlier.select_one("#empty-chat") is None


@pytest.mark.django_db
@pytest.mark.parametrize("paged", [False, True], ids=["page", "earlier page"])
def test_the_page_takes_the_same_queries_however_long_the_conversation_is(
    signed_in, user, chat_model, django_assert_num_queries, paged
):
    urls = []
    for count in (10, 200):
        conversation = ConversationFactory(user=user, model=chat_model)
        add_messages(conversation, count, reply=True)  # each names its model
        newest = MessageFactory(conversation=conversation, reply=True, content="**done**")
        urls.append(earlier_url(conversation, newest.pk) if paged else conversation.get_absolute_url())
    short, long = urls
    with CaptureQueriesContext(connection) as queries:
        assert signed_in.get(short, headers=HTMX if paged else {}).status_code == 200

    with django_assert_num_queries(len(queries)):
        assert signed_in.get(long, headers=HTMX if paged else {}).status_code == 200
