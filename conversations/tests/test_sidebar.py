"""The conversations sidebar: its pages, search, rename, delete and the reply-in-progress marker."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from bs4 import BeautifulSoup
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from aimodels.models import AIModel
from aimodels.tests.factories import AIModelFactory
from conversations.models import STALE_STREAM, Conversation, ConversationQuerySet, Message
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.views import SIDEBAR_PAGE_SIZE, _marked_html

HTMX = {"HX-Request": "true"}
ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
only_postgresql = pytest.mark.skipif(not ON_POSTGRESQL, reason="full-text search is PostgreSQL's")
only_substring_search = pytest.mark.skipif(ON_POSTGRESQL, reason="PostgreSQL searches whole words (full text)")


@pytest.fixture
def ai_model(db):
    return AIModelFactory(name="test-model")


@pytest.fixture
def make(user, ai_model):
    """make(title, minutes_ago=0, user=...): a conversation last active that many minutes ago."""
    now = timezone.now()

    def make_conversation(title: str = "", *, minutes_ago: float = 0, owner=None) -> Conversation:
        conversation = ConversationFactory(user=owner or user, model=ai_model, title=title)
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now - timedelta(minutes=minutes_ago))
        conversation.refresh_from_db()
        return conversation

    return make_conversation


def page_of(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def titles(soup: BeautifulSoup) -> list[str]:
    return [span.get_text() for span in soup.select(".conversation-item .item-title")]


def list_url(**params) -> str:
    url = reverse("conversations:list")
    return f"{url}?{'&'.join(f'{k}={v}' for k, v in params.items())}" if params else url


def search(client, q: str, **headers):
    return client.get(reverse("conversations:list"), {"q": q}, headers={**HTMX, **headers})


def shown_at(conversation) -> dict:
    """Headers of an htmx request sent from the page of `conversation`."""
    return {**HTMX, "HX-Current-URL": f"http://testserver{conversation.get_absolute_url()}"}


def rename_url(conversation, place: str = "sidebar") -> str:
    name = "conversations:rename_title" if place == "header" else "conversations:rename"
    return reverse(name, args=[conversation.public_id])


def delete_url(conversation) -> str:
    return reverse("conversations:delete", args=[conversation.public_id])


def status_url(conversation) -> str:
    return reverse("conversations:status", args=[conversation.public_id])


# Access --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_every_sidebar_url_sends_anonymous_visitors_to_login(client, make):
    conversation = make("Mine")
    urls = [
        ("get", list_url()),
        ("get", rename_url(conversation)),
        ("post", rename_url(conversation)),
        ("post", rename_url(conversation, "header")),
        ("get", delete_url(conversation)),
        ("post", delete_url(conversation)),
        ("get", status_url(conversation)),
    ]
    for method, url in urls:
        response = getattr(client, method)(url, {"title": "Hijacked"} if method == "post" else None)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    conversation.refresh_from_db()
    assert conversation.title == "Mine"


@pytest.mark.django_db
def test_another_users_conversation_is_404_in_every_sidebar_view(client, make):
    conversation = make("Theirs")
    MessageFactory(conversation=conversation)
    client.force_login(UserFactory())

    assert client.get(rename_url(conversation), headers=HTMX).status_code == 404
    assert client.post(rename_url(conversation), {"title": "Mine now"}, headers=HTMX).status_code == 404
    assert client.post(rename_url(conversation, "header"), {"title": "Mine now"}, headers=HTMX).status_code == 404
    assert client.get(delete_url(conversation), headers=HTMX).status_code == 404
    assert client.post(delete_url(conversation), headers=HTMX).status_code == 404
    assert client.get(status_url(conversation), headers=HTMX).status_code == 404
    conversation.refresh_from_db()
    assert conversation.title == "Theirs"
    assert conversation.messages.count() == 1


@pytest.mark.django_db
def test_the_list_and_its_search_show_only_the_users_own_conversations(signed_in, make):
    make("My notes")
    make("Their notes", owner=UserFactory())

    assert titles(page_of(signed_in.get(list_url(), headers=HTMX))) == ["My notes"]
    assert titles(page_of(search(signed_in, "notes"))) == ["My notes"]


# The list, a page at a time ------------------------------------------------------------------
@pytest.mark.django_db
def test_the_chat_page_shows_new_chat_then_the_first_page_newest_first(signed_in, make):
    for n in range(SIDEBAR_PAGE_SIZE + 5):
        make(f"Conversation {n}", minutes_ago=n)  # 0 is the newest

    sidebar = page_of(signed_in.get(reverse("conversations:new"))).find("nav", id="sidebar")

    assert sidebar.find("a").get_text() == "New chat"
    assert titles(sidebar) == [f"Conversation {n}" for n in range(SIDEBAR_PAGE_SIZE)]
    more = sidebar.select_one("#conversation-list > li.more")
    assert more["hx-trigger"] == "intersect once"
    assert "cursor" in parse_qs(urlsplit(more["hx-get"]).query)


@pytest.mark.django_db
def test_scrolling_loads_every_later_page_once_in_order(signed_in, make):
    total = 2 * SIDEBAR_PAGE_SIZE + 3
    for n in range(total):
        make(f"Conversation {n}", minutes_ago=n)
    first = page_of(signed_in.get(list_url(), headers=HTMX))
    seen, next_url = titles(first), first.select_one("li.more")["hx-get"]

    while next_url:
        page = page_of(signed_in.get(next_url, headers=HTMX))
        assert page.find("ul") is None  # the page's rows take the place of the "more" row
        seen += titles(page)
        more = page.select_one("li.more")
        next_url = more["hx-get"] if more else None

    assert seen == [f"Conversation {n}" for n in range(total)]


@pytest.mark.django_db
def test_the_next_page_follows_its_cursor_not_an_offset(signed_in, make):
    for n in range(SIDEBAR_PAGE_SIZE + 2):
        make(f"Conversation {n}", minutes_ago=n + 10)
    next_url = page_of(signed_in.get(list_url(), headers=HTMX)).select_one("li.more")["hx-get"]
    for n in range(3):
        make(f"Newer {n}", minutes_ago=n)  # an offset would now repeat three rows of page one

    later = titles(page_of(signed_in.get(next_url, headers=HTMX)))

    assert later == [f"Conversation {SIDEBAR_PAGE_SIZE}", f"Conversation {SIDEBAR_PAGE_SIZE + 1}"]


@pytest.mark.django_db
def test_conversations_active_at_the_same_instant_are_paged_without_loss(signed_in, make):
    for n in range(SIDEBAR_PAGE_SIZE + 4):
        make(f"Conversation {n}", minutes_ago=5)
    first = page_of(signed_in.get(list_url(), headers=HTMX))
    later = page_of(signed_in.get(first.select_one("li.more")["hx-get"], headers=HTMX))

    seen = titles(first) + titles(later)

    assert sorted(seen) == sorted(f"Conversation {n}" for n in range(SIDEBAR_PAGE_SIZE + 4))
    assert len(set(seen)) == len(seen)


@pytest.mark.django_db
def test_a_cursor_that_is_not_one_is_refused(signed_in, make):
    make("Mine")

    assert signed_in.get(list_url(cursor="yesterday-1"), headers=HTMX).status_code == 400
    assert signed_in.get(list_url(cursor="9" * 18 + "-1"), headers=HTMX).status_code == 400


@pytest.mark.django_db
def test_the_conversation_on_screen_is_marked_current_in_the_list(signed_in, make):
    shown, other = make("Shown"), make("Other")

    on_page = page_of(signed_in.get(shown.get_absolute_url()))
    from_list = page_of(signed_in.get(list_url(), headers=shown_at(shown)))

    for soup in (on_page, from_list):
        assert [a.get_text(strip=True) for a in soup.select("#conversation-list a[aria-current=page]")] == ["Shown"]
    assert other.title in titles(from_list)


@pytest.mark.django_db
def test_the_list_takes_the_same_queries_however_long_it_is(signed_in, make, django_assert_num_queries):
    MessageFactory(conversation=make("Busy"), pending=True)
    with CaptureQueriesContext(connection) as one:
        signed_in.get(list_url(), headers=HTMX)
    for n in range(SIDEBAR_PAGE_SIZE + 3):
        MessageFactory(conversation=make(f"Conversation {n}", minutes_ago=n + 1), pending=True)
    with django_assert_num_queries(len(one)):
        signed_in.get(list_url(), headers=HTMX)


@pytest.mark.django_db
def test_only_a_turn_that_starts_a_conversation_reads_the_list(signed_in, conversation, chat_model, monkeypatch):
    reads = []
    newest_first = ConversationQuerySet.newest_first
    monkeypatch.setattr(ConversationQuerySet, "newest_first", lambda rows: reads.append(1) or newest_first(rows))

    signed_in.post(reverse("conversations:message_create", args=[conversation.public_id]), {"content": "hi"}, headers=HTMX)
    assert reads == []
    started = signed_in.post(reverse("conversations:start"), {"content": "hi", "model": chat_model.pk}, headers=HTMX)
    assert reads == [1]
    assert page_of(started).find("ul", id="conversation-list", attrs={"hx-swap-oob": "true"})


# The marker of a reply being written -------------------------------------------------------
@pytest.mark.django_db
def test_only_conversations_with_a_reply_being_written_have_the_marker(signed_in, make):
    pending, streaming, stale, done = make("Pending"), make("Streaming"), make("Stale"), make("Done")
    MessageFactory(conversation=pending, pending=True)
    MessageFactory(conversation=streaming, pending=True, status=Message.Status.STREAMING)
    old = MessageFactory(conversation=stale, pending=True, status=Message.Status.STREAMING)
    Message.objects.filter(pk=old.pk).update(updated_at=timezone.now() - STALE_STREAM - timedelta(seconds=1))
    MessageFactory(conversation=done, reply=True)

    soup = page_of(signed_in.get(list_url(), headers=HTMX))

    marked = {
        li.select_one(".item-title").get_text(): li.select_one(".reply-marker") is not None
        for li in soup.select(".conversation-item")
    }
    assert marked == {"Pending": True, "Streaming": True, "Stale": False, "Done": False}
    marker = soup.select_one(f"#conversation-{pending.public_id} .reply-marker")
    assert marker.get_text() == "reply being written"
    assert "visually-hidden" in marker.span["class"]


@pytest.mark.django_db
def test_the_marker_polls_until_the_reply_is_written(signed_in, make):
    conversation = make("Busy")
    reply = MessageFactory(conversation=conversation, pending=True)
    marker = page_of(signed_in.get(list_url(), headers=HTMX)).select_one(".reply-marker")
    assert marker["hx-get"] == status_url(conversation)
    assert marker["hx-trigger"].startswith("every ")

    still = signed_in.get(status_url(conversation), headers=HTMX)
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)
    done = signed_in.get(status_url(conversation), headers=HTMX)

    assert page_of(still).select_one(".reply-marker")["hx-get"] == status_url(conversation)
    assert done.status_code == 200  # an empty 200 removes the marker (htmx ignores a 204)
    assert done.content.strip() == b""


# Rename --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_rename_offers_a_form_with_the_current_title(signed_in, make):
    conversation = make("Old name")

    form = page_of(signed_in.get(rename_url(conversation), headers=HTMX)).find("form")

    field = form.find("input", attrs={"name": "title"})
    assert field["value"] == "Old name"
    assert form.find("label", attrs={"for": field["id"]}).get_text() == "Title"
    assert form["hx-post"] == rename_url(conversation)
    assert form["hx-target"] == f"#conversation-{conversation.public_id}"


@pytest.mark.django_db
def test_rename_saves_the_stripped_title_and_answers_with_the_row(signed_in, make):
    conversation = make("Old name")

    response = signed_in.post(rename_url(conversation), {"title": "  Trip to Lisbon  "}, headers=HTMX)

    conversation.refresh_from_db()
    assert conversation.title == "Trip to Lisbon"
    row = page_of(response).find("li", id=f"conversation-{conversation.public_id}")
    assert row.select_one(".item-title").get_text() == "Trip to Lisbon"


@pytest.mark.django_db
def test_rename_keeps_the_conversations_place_in_the_list(signed_in, make):
    conversation = make("Old name", minutes_ago=30)
    before = conversation.updated_at

    signed_in.post(rename_url(conversation), {"title": "New name"}, headers=HTMX)

    conversation.refresh_from_db()
    assert conversation.updated_at == before


@pytest.mark.django_db
def test_rename_tells_the_page_the_new_title(signed_in, make):
    conversation = make("Old name")

    response = signed_in.post(rename_url(conversation, "header"), {"title": "New name"}, headers=HTMX)

    assert response.headers["HX-Trigger"] == (
        f'{{"conversationRenamed": {{"id": "{conversation.public_id}", "title": "New name"}}}}'
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("title", "reason"),
    [
        ("", "Give the conversation a title."),
        ("   ", "Give the conversation a title."),
        ("a" * 201, "at most 200 characters"),
        ("Tab\there", "Control characters"),
        ("Bell\x07", "Control characters"),
        ("Null\x00", "Null characters are not allowed."),
    ],
)
def test_rename_refuses_a_bad_title_beside_the_field(signed_in, make, title, reason):
    conversation = make("Old name")

    response = signed_in.post(rename_url(conversation), {"title": title}, headers=HTMX)

    assert response.status_code == 422
    form_id = f"rename-sidebar-{conversation.public_id}"
    assert response["HX-Retarget"] == f"#{form_id}"
    assert response["HX-Reswap"] == "outerHTML"
    form = page_of(response).find("form", id=form_id)
    field = form.find("input", attrs={"name": "title"})
    assert field["aria-invalid"] == "true"
    assert reason in form.find(id=field["aria-describedby"]).get_text()
    conversation.refresh_from_db()
    assert conversation.title == "Old name"


@pytest.mark.django_db
def test_rename_accepts_200_characters(signed_in, make):
    conversation = make("Old name")

    response = signed_in.post(rename_url(conversation), {"title": "é" * 200}, headers=HTMX)

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.title == "é" * 200


@pytest.mark.django_db
def test_rename_from_the_header_answers_with_the_header(signed_in, make):
    conversation = make("Old name")
    form = page_of(signed_in.get(rename_url(conversation, "header"), headers=HTMX)).find("form")
    assert form["hx-target"] == "#chat-title"

    response = signed_in.post(rename_url(conversation, "header"), {"title": "New name"}, headers=shown_at(conversation))

    header = page_of(response).find("header", id="chat-title")
    assert header.h1.get_text() == "New name"
    assert not header.has_attr("hx-swap-oob")
    assert header.find("button", class_="title-rename")


@pytest.mark.django_db
def test_rename_in_the_sidebar_updates_the_header_of_that_conversations_page(signed_in, make):
    conversation, other = make("Old name"), make("Other")

    here = page_of(signed_in.post(rename_url(conversation), {"title": "New name"}, headers=shown_at(conversation)))
    elsewhere = page_of(signed_in.post(rename_url(conversation), {"title": "Newer"}, headers=shown_at(other)))

    assert here.find("header", id="chat-title", attrs={"hx-swap-oob": "true"}).h1.get_text() == "New name"
    assert elsewhere.find("header", id="chat-title") is None


@pytest.mark.django_db
def test_the_chat_header_offers_rename_for_a_conversation_only(signed_in, make):
    conversation = make("Mine")

    header = page_of(signed_in.get(conversation.get_absolute_url())).find("header", id="chat-title")
    new_chat = page_of(signed_in.get(reverse("conversations:new"))).find("header", id="chat-title")

    assert header.find("button", class_="title-rename")["hx-get"] == rename_url(conversation, "header")
    assert new_chat.find("button", class_="title-rename") is None


@pytest.mark.django_db
def test_rename_without_htmx_goes_back_to_the_conversation(signed_in, make):
    conversation = make("Old name")

    response = signed_in.post(rename_url(conversation), {"title": "New name"})

    assert response.status_code == 302
    assert response["Location"] == conversation.get_absolute_url()


# Delete --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_delete_asks_first_in_a_dialog(signed_in, make):
    conversation = make("Doomed")
    MessageFactory(conversation=conversation)
    MessageFactory(conversation=conversation, reply=True)

    dialog = page_of(signed_in.get(delete_url(conversation), headers=HTMX)).find("dialog")

    assert dialog.h2.get_text() == "Delete “Doomed”?"
    assert "Its 2 messages will be deleted with it." in dialog.get_text()
    form = dialog.find("form", attrs={"hx-post": delete_url(conversation)})
    assert form.find("button").get_text() == "Delete"
    assert dialog.find("form", attrs={"method": "dialog"}).find("button").get_text() == "Cancel"
    assert Conversation.objects.filter(pk=conversation.pk).exists()


@pytest.mark.django_db
def test_deleting_another_conversation_removes_only_its_row(signed_in, make):
    shown, doomed = make("Shown"), make("Doomed")

    response = signed_in.post(delete_url(doomed), headers=shown_at(shown))

    assert response.status_code == 200
    soup = page_of(response)
    assert soup.find("li", id=f"conversation-{doomed.public_id}")["hx-swap-oob"] == "delete"
    assert soup.find("dialog") is None  # the dialog's slot is emptied
    assert list(Conversation.objects.values_list("title", flat=True)) == ["Shown"]


@pytest.mark.django_db
def test_deleting_the_only_conversation_from_elsewhere_empties_the_list(signed_in, make):
    doomed = make("Doomed")
    make("Someone else's", owner=UserFactory())  # not in this user's list

    response = signed_in.post(delete_url(doomed), headers={**HTMX, "HX-Current-URL": "http://testserver/new/"})

    listing = page_of(response).find("ul", id="conversation-list")
    assert listing["hx-swap-oob"] == "true"
    assert listing.get_text(strip=True) == "No conversations yet."


@pytest.mark.django_db
def test_deleting_the_conversation_on_screen_goes_to_the_newest_remaining(signed_in, make):
    make("Older", minutes_ago=20)
    newest = make("Newest", minutes_ago=10)
    make("Someone else's", minutes_ago=5, owner=UserFactory())
    shown = make("Shown", minutes_ago=0)

    response = signed_in.post(delete_url(shown), headers=shown_at(shown))

    assert response["HX-Redirect"] == newest.get_absolute_url()
    assert not Conversation.objects.filter(pk=shown.pk).exists()


@pytest.mark.django_db
def test_deleting_the_last_conversation_on_screen_goes_to_a_new_chat(signed_in, make):
    shown = make("Shown")
    make("Someone else's", owner=UserFactory())

    response = signed_in.post(delete_url(shown), headers=shown_at(shown))

    assert response["HX-Redirect"] == reverse("conversations:new")


@pytest.mark.django_db
def test_deleting_a_conversation_deletes_its_messages_and_keeps_its_model(signed_in, make, ai_model):
    doomed = make("Doomed")
    MessageFactory(conversation=doomed)
    MessageFactory(conversation=doomed, reply=True)  # the reply's model is PROTECTed, the reply is not
    kept = make("Kept")
    MessageFactory(conversation=kept)

    signed_in.post(delete_url(doomed), headers=shown_at(kept))

    assert list(Message.objects.values_list("conversation__title", flat=True)) == ["Kept"]
    assert AIModel.objects.filter(pk=ai_model.pk).exists()


@pytest.mark.django_db
def test_delete_without_htmx_goes_to_the_newest_remaining(signed_in, make):
    remaining, doomed = make("Remaining", minutes_ago=5), make("Doomed")

    response = signed_in.post(delete_url(doomed))

    assert response.status_code == 302
    assert response["Location"] == remaining.get_absolute_url()


# Search --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_search_finds_titles_and_message_text_newest_first(signed_in, make):
    make("Lisbon itinerary", minutes_ago=10)
    by_message = make("Holiday", minutes_ago=5)
    MessageFactory(conversation=by_message, content="What should I see in lisbon first?")
    MessageFactory(conversation=make("Paris", minutes_ago=1), content="Croissants")

    soup = page_of(search(signed_in, "Lisbon"))

    assert titles(soup) == ["Holiday", "Lisbon itinerary"]
    assert soup.find("ul", id="conversation-list")["aria-label"] == "Conversations matching the search"


@pytest.mark.django_db
def test_search_marks_the_matches_in_title_and_snippet(signed_in, make):
    conversation = make("Lisbon itinerary")
    MessageFactory(conversation=conversation, content="Day one: lisbon old town, then Sintra.")

    row = page_of(search(signed_in, "lisbon")).find("li", id=f"conversation-{conversation.public_id}")

    assert [mark.get_text() for mark in row.select(".item-title mark")] == ["Lisbon"]
    assert [mark.get_text() for mark in row.select(".item-snippet mark")] == ["lisbon"]
    assert row.select_one(".item-snippet").get_text() == "Day one: lisbon old town, then Sintra."


@pytest.mark.django_db
def test_search_escapes_titles_and_snippets_and_marks_only_the_matches(signed_in, make):
    title = "<script>alert('needle')</script>"
    conversation = make(title)
    MessageFactory(conversation=conversation, content="A <b>needle</b> in &amp; bold")

    response = search(signed_in, "needle")

    body = response.content.decode()
    assert "<script>" not in body
    assert "<b>" not in body
    assert "&lt;b&gt;<mark>needle</mark>&lt;/b&gt; in &amp;amp; bold" in body
    row = page_of(response).find("li", id=f"conversation-{conversation.public_id}")
    assert row.select_one(".item-title").get_text() == title
    assert row.select_one(".item-snippet").get_text() == "A <b>needle</b> in &amp; bold"
    assert row.find("script") is None and row.find("b") is None
    assert [mark.get_text() for mark in row.select("mark")] == ["needle", "needle"]


@pytest.mark.django_db
def test_search_text_cannot_forge_a_mark(signed_in, make):
    make("Notes <mark>x</mark>")

    body = search(signed_in, "notes").content.decode()

    assert "&lt;mark&gt;x&lt;/mark&gt;" in body
    assert body.count("<mark>") == 1


def test_marked_text_from_the_database_is_escaped_whatever_it_holds():
    # PostgreSQL's headline comes back escaped by the query; it is unescaped and escaped again
    # here, so even a headline holding raw markup could not put it on the page.
    marks = ("[[", "]]")

    html = _marked_html('<img src=x onerror=alert(1)> &lt;b&gt;[[needle]]&lt;/b&gt; [[<i>]]', marks, escaped=True)

    assert html == (
        "&lt;img src=x onerror=alert(1)&gt; &lt;b&gt;<mark>needle</mark>&lt;/b&gt; <mark>&lt;i&gt;</mark>"
    )


@pytest.mark.django_db
def test_a_search_that_finds_nothing_says_so_with_the_query_escaped(signed_in, make):
    make("Lisbon")

    soup = page_of(search(signed_in, "<i>zebra"))

    assert soup.find("i") is None
    assert soup.select_one("#conversation-list li.hint").get_text() == "No conversation matches “<i>zebra”."


@pytest.mark.django_db
def test_clearing_the_search_returns_the_whole_list(signed_in, make):
    make("Lisbon", minutes_ago=1)
    make("Paris")

    assert titles(page_of(search(signed_in, "lisbon"))) == ["Lisbon"]
    assert titles(page_of(search(signed_in, ""))) == ["Paris", "Lisbon"]
    assert titles(page_of(search(signed_in, "   "))) == ["Paris", "Lisbon"]


@pytest.mark.django_db
def test_search_results_are_paged_like_the_list(signed_in, make):
    for n in range(SIDEBAR_PAGE_SIZE + 2):
        make(f"Lisbon {n}", minutes_ago=n)
    make("Paris")
    first = page_of(search(signed_in, "lisbon"))
    next_url = first.select_one("li.more")["hx-get"]

    later = page_of(signed_in.get(next_url, headers=HTMX))

    assert parse_qs(urlsplit(next_url).query)["q"] == ["lisbon"]
    assert titles(first) + titles(later) == [f"Lisbon {n}" for n in range(SIDEBAR_PAGE_SIZE + 2)]


@pytest.mark.django_db
def test_a_search_longer_than_200_characters_is_refused_in_the_list(signed_in, make):
    make("Lisbon")

    response = search(signed_in, "a" * 201)

    assert response.status_code == 422
    listing = page_of(response).find("ul", id="conversation-list")  # still the list, so the next search lands
    assert "at most 200 characters" in listing.get_text()


@pytest.mark.django_db
def test_the_search_box_searches_as_you_type(signed_in, make):
    box = page_of(signed_in.get(make("Lisbon").get_absolute_url())).find("input", id="conversation-search")

    assert box["type"] == "search"
    assert box["hx-get"] == reverse("conversations:list")
    assert box["hx-trigger"] == "input changed delay:300ms, search"
    assert box["hx-target"] == "#conversation-list"
    assert page_of(signed_in.get(reverse("conversations:new"))).find("label", attrs={"for": "conversation-search"}).get_text() == "Search"


@only_substring_search
@pytest.mark.django_db
def test_substring_search_matches_inside_words(signed_in, make):
    conversation = make("Holiday")
    MessageFactory(conversation=conversation, content="Let's go to LISBON")

    row = page_of(search(signed_in, "isbo")).find("li", id=f"conversation-{conversation.public_id}")

    assert [mark.get_text() for mark in row.select("mark")] == ["ISBO"]


@only_postgresql
@pytest.mark.django_db
def test_full_text_search_matches_word_prefixes_and_marks_the_words(signed_in, make):
    conversation = make("Coding")
    MessageFactory(conversation=conversation, content="Some\nvery Pythonic code, and more python.")
    MessageFactory(conversation=make("Other"), content="cpython internals")  # no word starts with "pyth"

    soup = page_of(search(signed_in, "PYTH code"))

    assert titles(soup) == ["Coding"]
    row = soup.find("li", id=f"conversation-{conversation.public_id}")
    assert [mark.get_text() for mark in row.select(".item-snippet mark")] == ["Pythonic", "code", "python"]
    assert row.select_one(".item-snippet").get_text() == "Some very Pythonic code, and more python."


@only_postgresql
@pytest.mark.django_db
def test_full_text_search_keeps_text_that_looks_like_markup(signed_in, make):
    conversation = make("<div> layout")
    MessageFactory(conversation=conversation, content="Wrap it: <div class=\"x\">layout</div> & done")

    row = page_of(search(signed_in, "layout")).find("li", id=f"conversation-{conversation.public_id}")

    assert row.select_one(".item-title").get_text() == "<div> layout"
    assert row.select_one(".item-snippet").get_text() == 'Wrap it: <div class="x">layout</div> & done'
    assert row.select_one(".item-link").find("div") is None


@only_postgresql
@pytest.mark.django_db
def test_short_queries_match_substrings_on_postgresql_too(signed_in, make):
    conversation = make("Holiday")
    MessageFactory(conversation=conversation, content="Let's go to LISBON")

    row = page_of(search(signed_in, "sb")).find("li", id=f"conversation-{conversation.public_id}")

    assert [mark.get_text() for mark in row.select("mark")] == ["SB"]
