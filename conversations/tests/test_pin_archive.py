"""Pin and archive: the rules on the model, the sidebar's Pinned group across its pages, the
Archived page, restoring (by hand and by sending), and the views' access and answers."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from aimodels.tests.factories import AIModelFactory
from conversations.models import Conversation
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.tests.test_sidebar import page_of, titles
from conversations.views import ARCHIVED_PAGE_SIZE, SIDEBAR_PAGE_SIZE

HTMX = {"HX-Request": "true"}


@pytest.fixture
def make(user, db):
    """make(title, minutes_ago=0, owner=..., pinned=minutes ago, archived=minutes ago): a conversation
    last active that many minutes ago, pinned or archived that long ago when asked."""
    model = AIModelFactory(name="pin-model")
    now = timezone.now()

    def make_conversation(title: str, *, minutes_ago: float = 0, owner=None, pinned=None, archived=None) -> Conversation:
        conversation = ConversationFactory(user=owner or user, model=model, title=title)
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=now - timedelta(minutes=minutes_ago),
            pinned_at=None if pinned is None else now - timedelta(minutes=pinned),
            archived_at=None if archived is None else now - timedelta(minutes=archived),
        )
        conversation.refresh_from_db()
        return conversation

    return make_conversation



def sidebar_titles(client) -> list[str]:
    """Every title of the sidebar's list, page after page, as scrolling loads them."""
    first = page_of(client.get(reverse("conversations:list"), headers=HTMX))
    seen, more = titles(first), first.select_one("li.more")
    while more:
        page = page_of(client.get(more["hx-get"], headers=HTMX))
        seen += titles(page)
        more = page.select_one("li.more")
    return seen


def pin(client, conversation, pinned: bool = True, **headers):
    return client.post(
        reverse("conversations:pin", args=[conversation.public_id]), {"pinned": "on" if pinned else ""}, headers=headers
    )


def archive(client, conversation, archived: bool = True, **headers):
    return client.post(
        reverse("conversations:archive", args=[conversation.public_id]),
        {"archived": "on" if archived else ""},
        headers=headers,
    )


def shown_at(conversation) -> dict:
    """Headers of an htmx request sent from the page of `conversation`."""
    return {**HTMX, "HX-Current-URL": f"http://testserver{conversation.get_absolute_url()}"}


# The rules -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_pin_and_unpin_set_and_clear_pinned_at_and_leave_the_activity_time(make):
    conversation = make("Old", minutes_ago=60)
    before = conversation.updated_at

    conversation.pin()
    conversation.refresh_from_db()
    assert conversation.pinned_at is not None and timezone.now() - conversation.pinned_at < timedelta(minutes=1)
    assert conversation.updated_at == before

    conversation.pin(False)
    conversation.refresh_from_db()
    assert conversation.pinned_at is None
    assert conversation.updated_at == before


@pytest.mark.django_db
def test_archive_unpins_restore_does_not_repin_and_neither_is_activity(make):
    conversation = make("Old", minutes_ago=60, pinned=30)
    before = conversation.updated_at

    conversation.archive()
    conversation.refresh_from_db()
    assert conversation.archived_at is not None and conversation.pinned_at is None
    assert conversation.updated_at == before

    conversation.archive(False)
    conversation.refresh_from_db()
    assert conversation.archived_at is None and conversation.pinned_at is None
    assert conversation.updated_at == before


@pytest.mark.django_db
def test_pinning_an_archived_conversation_brings_it_back(make):
    conversation = make("Archived", archived=5)

    conversation.pin()
    conversation.refresh_from_db()

    assert conversation.pinned_at is not None and conversation.archived_at is None


# The sidebar: pinned first, across its pages ---------------------------------------------------
@pytest.mark.django_db
def test_pinned_conversations_come_first_the_last_pinned_first_then_the_rest_newest_first(signed_in, make):
    for n in range(5):
        make(f"Conversation {n}", minutes_ago=n)
    make("Old pinned", minutes_ago=100, pinned=10)
    make("New pinned", minutes_ago=50, pinned=1)

    first = page_of(signed_in.get(reverse("conversations:list"), headers=HTMX))

    assert titles(first) == ["New pinned", "Old pinned"] + [f"Conversation {n}" for n in range(5)]
    assert [li.get_text() for li in first.select("li.list-heading")] == ["Pinned", "Recent"]


@pytest.mark.django_db
def test_paging_shows_every_conversation_once_with_pinned_ones_from_every_page(signed_in, make):
    total = 2 * SIDEBAR_PAGE_SIZE + 3
    for n in range(total):
        # Every seventh is pinned: some from the first page, some from later ones, the oldest too.
        make(f"Conversation {n}", minutes_ago=n, pinned=n if n % 7 == 0 or n == total - 1 else None)
    pinned = sorted([n for n in range(total) if n % 7 == 0] + [total - 1])
    rest = [n for n in range(total) if n not in pinned]

    seen = sidebar_titles(signed_in)

    assert seen == [f"Conversation {n}" for n in pinned + rest]


@pytest.mark.django_db
def test_a_list_of_only_pinned_conversations_has_no_empty_text_and_no_recent_heading(signed_in, make):
    make("Pinned", pinned=1)

    first = page_of(signed_in.get(reverse("conversations:list"), headers=HTMX))

    assert titles(first) == ["Pinned"]
    assert [li.get_text() for li in first.select("li.list-heading")] == ["Pinned"]
    assert "No conversations yet." not in first.get_text()


@pytest.mark.django_db
def test_search_results_keep_their_order_pinned_or_not_and_leave_archived_ones_out(signed_in, make):
    make("Trip notes newer", minutes_ago=1)
    make("Trip notes pinned", minutes_ago=5, pinned=1)
    make("Trip notes archived", minutes_ago=0, archived=1)

    found = page_of(signed_in.get(reverse("conversations:list"), {"q": "Trip"}, headers=HTMX))

    assert titles(found) == ["Trip notes newer", "Trip notes pinned"]
    assert not found.select("li.list-heading")


@pytest.mark.django_db
def test_the_row_offers_pin_or_unpin_and_archive(signed_in, make):
    plain, pinned = make("Plain"), make("Pinned", pinned=1)

    page = page_of(signed_in.get(reverse("conversations:list"), headers=HTMX))

    def buttons(conversation) -> list[str]:
        row = page.find(id=f"conversation-{conversation.public_id}")
        return [button.select_one(".visually-hidden").get_text() for button in row.select(".item-actions button")]

    assert buttons(plain) == ["Pin", "Archive", "Rename", "Delete"]
    assert buttons(pinned) == ["Unpin", "Archive", "Rename", "Delete"]


@pytest.mark.django_db
def test_the_list_takes_the_same_queries_however_many_are_pinned_or_archived(signed_in, make, django_assert_num_queries):
    make("One", pinned=1)
    make("Two")
    with CaptureQueriesContext(connection) as one:
        signed_in.get(reverse("conversations:list"), headers=HTMX)
    for n in range(SIDEBAR_PAGE_SIZE + 3):
        make(f"Conversation {n}", minutes_ago=n + 1, pinned=n if n % 2 else None, archived=n if n % 5 == 0 else None)
        MessageFactory(conversation=make(f"Busy {n}", minutes_ago=n + 1), pending=True)

    with django_assert_num_queries(len(one)):
        signed_in.get(reverse("conversations:list"), headers=HTMX)
    with CaptureQueriesContext(connection) as page:
        signed_in.get(reverse("conversations:archived"))
    with django_assert_num_queries(len(page)):  # the same again: nothing is read per row
        signed_in.get(reverse("conversations:archived"))
    make("Another archived", archived=1)
    with django_assert_num_queries(len(page)):
        signed_in.get(reverse("conversations:archived"))


# Archive: out of the sidebar, the index and delete's fallback; on the Archived page ----------------
@pytest.mark.django_db
def test_an_archived_conversation_leaves_the_sidebar_and_the_index(signed_in, make):
    kept = make("Kept", minutes_ago=10)
    archived = make("Archived", minutes_ago=0, archived=1)

    assert sidebar_titles(signed_in) == ["Kept"]
    assert signed_in.get(reverse("conversations:index"))["Location"] == kept.get_absolute_url()
    page = page_of(signed_in.get(kept.get_absolute_url()))
    assert titles(page.find("nav", id="sidebar")) == ["Kept"]
    assert archived.get_absolute_url() not in str(page.find("nav", id="sidebar"))


@pytest.mark.django_db
def test_the_index_starts_a_new_chat_when_every_conversation_is_archived(signed_in, make):
    make("Archived", archived=1)

    response = signed_in.get(reverse("conversations:index"))

    assert response.status_code == 200
    assert titles(page_of(response)) == []


@pytest.mark.django_db
def test_deleting_the_open_conversation_moves_to_the_newest_not_archived(signed_in, make):
    kept = make("Kept", minutes_ago=10)
    make("Archived", minutes_ago=0, archived=1)
    shown = make("Shown", minutes_ago=5)

    response = signed_in.post(reverse("conversations:delete", args=[shown.public_id]), headers=shown_at(shown))

    assert response["HX-Redirect"] == kept.get_absolute_url()


@pytest.mark.django_db
def test_deleting_the_last_conversation_of_the_sidebar_shows_its_empty_list_though_some_are_archived(signed_in, make):
    make("Archived", archived=1)
    other, shown = make("Other"), make("Shown")
    shown.archive()

    response = signed_in.post(reverse("conversations:delete", args=[other.public_id]), headers=shown_at(shown))

    assert "No conversations yet." in page_of(response).find("ul", id="conversation-list").get_text()


@pytest.mark.django_db
def test_the_archived_page_lists_title_date_restore_and_delete_the_last_archived_first(signed_in, make):
    make("Not archived")
    older, newer = make("Older", archived=60 * 24 * 3), make("Newer <b>bold</b>", archived=1)
    make("Someone else's", owner=UserFactory(), archived=1)

    page = page_of(signed_in.get(reverse("conversations:archived")))

    rows = page.select(".archived-list li")
    assert [row.select_one(".item-title").get_text() for row in rows] == ["Newer <b>bold</b>", "Older"]
    assert not page.select(".archived-list b")  # titles stay text
    assert rows[1].select_one(".item-title")["href"] == older.get_absolute_url()
    assert rows[1].find("time").get_text() == f"Archived {timezone.localtime(older.archived_at):%-d %b %Y}"
    assert [button.get_text() for button in rows[0].find_all("button")] == ["Restore", "Delete"]
    assert rows[0]["id"] == f"conversation-{newer.public_id}"  # a delete removes it as it does a sidebar row
    assert titles(page.find("nav", id="sidebar")) == ["Not archived"]


def archived_titles(page) -> list[str]:
    return [link.get_text() for link in page.select(".archived-item .item-title")]


@pytest.mark.django_db
def test_the_archived_page_shows_a_page_at_a_time_and_loads_the_next_when_scrolled_to(signed_in, make):
    assert ARCHIVED_PAGE_SIZE == 50  # README: "50 at a time"
    count = ARCHIVED_PAGE_SIZE + 7
    for n in range(count):  # ten archived at the very same moment: the order holds by pk
        make(f"Archived {n}", archived=max(n - 10, 0), minutes_ago=n)
    make("Someone else's", owner=UserFactory(), archived=0)
    make("Not archived")

    first = page_of(signed_in.get(reverse("conversations:archived")))
    seen, more = archived_titles(first), first.select_one(".archived-list li.more")
    assert len(seen) == ARCHIVED_PAGE_SIZE
    assert more["hx-trigger"] == "intersect once" and more.a["href"] == more["hx-get"]
    response = signed_in.get(more["hx-get"], headers=HTMX)
    rest = page_of(response)

    assert "<html" not in response.content.decode()  # the next rows alone
    seen += archived_titles(rest)
    same_moment = Conversation.objects.filter(title__in=[f"Archived {n}" for n in range(11)]).order_by("-pk")
    # Each once, the last archived first (by pk among those archived at the same moment).
    assert seen == [c.title for c in same_moment] + [f"Archived {n}" for n in range(11, count)]
    assert rest.select_one("li.more") is None


@pytest.mark.django_db
def test_the_archived_pages_link_opens_the_whole_page_from_there_without_scripts(signed_in, make):
    for n in range(ARCHIVED_PAGE_SIZE + 1):
        make(f"Archived {n}", archived=n)
    more = page_of(signed_in.get(reverse("conversations:archived"))).select_one("li.more")

    page = page_of(signed_in.get(more.a["href"]))  # no HX-Request

    assert archived_titles(page) == [f"Archived {ARCHIVED_PAGE_SIZE}"]
    assert page.find("nav", id="sidebar") is not None


@pytest.mark.django_db
@pytest.mark.parametrize("cursor", ["yesterday", "1-", f"{'9' * 18}-5"])
def test_a_place_in_the_archived_list_that_is_not_one_is_refused(signed_in, cursor):
    response = signed_in.get(reverse("conversations:archived"), {"cursor": cursor}, headers=HTMX)

    assert response.status_code == 400
    assert response.content.decode() == "Not a place in the list."


@pytest.mark.django_db
def test_the_archived_page_says_when_it_has_nothing(signed_in, make):
    make("Not archived")

    page = page_of(signed_in.get(reverse("conversations:archived")))

    assert not page.select(".archived-list li")
    assert "No archived conversations." in page.select_one(".archived-empty").get_text()


@pytest.mark.django_db
def test_the_sidebar_links_to_the_archived_page(signed_in, make):
    page = page_of(signed_in.get(reverse("conversations:new")))

    assert page.find("nav", id="sidebar").find("a", href=reverse("conversations:archived")).get_text(strip=True) == "Archived"


@pytest.mark.django_db
def test_an_archived_conversation_still_opens_with_a_notice_and_restore(signed_in, make):
    archived = make("Archived", archived=1)

    page = page_of(signed_in.get(archived.get_absolute_url()))

    notice = page.select_one("#chat-title .archived-notice")
    assert "This conversation is archived" in notice.get_text()
    form = notice.find("form")
    assert form["hx-post"] == reverse("conversations:archive", args=[archived.public_id])
    assert form.find("input", attrs={"name": "archived"})["value"] == ""
    assert form.find("button").get_text() == "Restore"
    assert [button.get_text() for button in page.select("#conversation-actions .menu button")][:2] == ["Pin", "Restore"]


@pytest.mark.django_db
def test_a_conversation_not_archived_has_no_notice_and_offers_archive(signed_in, make):
    conversation = make("Here", pinned=1)

    page = page_of(signed_in.get(conversation.get_absolute_url()))

    assert not page.select(".archived-notice")
    assert [button.get_text() for button in page.select("#conversation-actions .menu button")][:2] == ["Unpin", "Archive"]


# The views --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_pin_from_the_header_answers_the_list_and_the_header_out_of_band(signed_in, make):
    make("Newer")
    shown = make("Shown", minutes_ago=5)

    response = pin(signed_in, shown, **shown_at(shown))

    assert response.status_code == 200
    answer = page_of(response)
    listed = answer.find("ul", id="conversation-list", attrs={"hx-swap-oob": "true"})
    assert titles(listed) == ["Shown", "Newer"]
    header = answer.find("header", id="chat-title", attrs={"hx-swap-oob": "true"})
    assert [button.get_text() for button in header.select(".menu button")][:1] == ["Unpin"]
    shown.refresh_from_db()
    assert shown.pinned_at is not None


@pytest.mark.django_db
def test_unpin_puts_it_back_in_its_place_by_activity(signed_in, make):
    make("Newer")
    pinned = make("Pinned", minutes_ago=5, pinned=1)
    make("Older", minutes_ago=10)

    answer = page_of(pin(signed_in, pinned, False, **HTMX))

    assert titles(answer.find("ul", id="conversation-list")) == ["Newer", "Pinned", "Older"]
    pinned.refresh_from_db()
    assert pinned.pinned_at is None


@pytest.mark.django_db
def test_pin_from_another_pages_row_leaves_that_pages_header_alone(signed_in, make):
    shown, other = make("Shown"), make("Other", minutes_ago=5)

    answer = page_of(pin(signed_in, other, **shown_at(shown)))

    assert titles(answer.find("ul", id="conversation-list")) == ["Other", "Shown"]
    assert answer.find(id="chat-title") is None


@pytest.mark.django_db
def test_archive_answers_the_list_without_it_and_the_header_with_the_notice(signed_in, make):
    kept, shown = make("Kept", minutes_ago=5), make("Shown", pinned=1)

    answer = page_of(archive(signed_in, shown, **shown_at(shown)))

    assert titles(answer.find("ul", id="conversation-list")) == ["Kept"]
    assert "This conversation is archived" in answer.find("header", id="chat-title").get_text()
    shown.refresh_from_db()
    assert shown.archived_at is not None and shown.pinned_at is None


@pytest.mark.django_db
def test_restore_brings_it_back_to_the_list_and_off_the_archived_page(signed_in, make):
    make("Kept", minutes_ago=5)
    archived = make("Archived", minutes_ago=0, archived=1)

    answer = page_of(archive(signed_in, archived, False, **HTMX))

    assert titles(answer.find("ul", id="conversation-list")) == ["Archived", "Kept"]
    assert page_of(signed_in.get(reverse("conversations:archived"))).select(".archived-list li") == []


@pytest.mark.django_db
def test_a_change_made_in_a_search_answers_that_searchs_results(signed_in, make):
    make("Trip notes")
    found = make("Trip plans", minutes_ago=5)
    make("Groceries", minutes_ago=1)

    response = signed_in.post(
        reverse("conversations:pin", args=[found.public_id]), {"pinned": "on", "q": "trip"}, headers=HTMX
    )

    listed = page_of(response).find("ul", id="conversation-list")
    assert titles(listed) == ["Trip notes", "Trip plans"]  # a search's results keep their order
    assert listed["aria-label"] == "Conversations matching the search"
    found.refresh_from_db()
    assert found.pinned_at is not None


@pytest.mark.django_db
def test_without_htmx_a_change_goes_back_to_the_conversation(signed_in, make):
    conversation = make("Here")

    for response in (pin(signed_in, conversation), archive(signed_in, conversation)):
        assert response.status_code == 302
        assert response["Location"] == conversation.get_absolute_url()


@pytest.mark.django_db
def test_changes_are_refused_to_get(signed_in, make):
    conversation = make("Here")

    for name in ("conversations:pin", "conversations:archive"):
        assert signed_in.get(reverse(name, args=[conversation.public_id]), {"pinned": "on", "archived": "on"}).status_code == 405
    conversation.refresh_from_db()
    assert conversation.pinned_at is None and conversation.archived_at is None


@pytest.mark.django_db
def test_another_users_conversation_is_404_and_stays_as_it_was(signed_in, make):
    theirs = make("Theirs", owner=UserFactory(), pinned=5)
    archived = make("Their archived", owner=UserFactory(), archived=5)
    before = {c.pk: (c.pinned_at, c.archived_at, c.updated_at) for c in (theirs, archived)}

    assert pin(signed_in, theirs, False, **HTMX).status_code == 404
    assert pin(signed_in, archived, **HTMX).status_code == 404
    assert archive(signed_in, theirs, **HTMX).status_code == 404
    assert archive(signed_in, archived, False, **HTMX).status_code == 404
    assert archive(signed_in, archived, False).status_code == 404

    for conversation in (theirs, archived):
        conversation.refresh_from_db()
        assert (conversation.pinned_at, conversation.archived_at, conversation.updated_at) == before[conversation.pk]
    assert "Their archived" not in signed_in.get(reverse("conversations:archived")).content.decode()


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_login(client, make):
    conversation = make("Mine")

    for method, url in [
        ("post", reverse("conversations:pin", args=[conversation.public_id])),
        ("post", reverse("conversations:archive", args=[conversation.public_id])),
        ("get", reverse("conversations:archived")),
    ]:
        response = getattr(client, method)(url, {"pinned": "on", "archived": "on"} if method == "post" else None)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    conversation.refresh_from_db()
    assert conversation.pinned_at is None and conversation.archived_at is None


# Sending restores ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_sending_in_an_archived_conversation_restores_it_and_puts_it_back_in_the_list(signed_in, user, chat_model):
    conversation = ConversationFactory(user=user, model=chat_model, system_prompt="")
    conversation.archive()

    response = signed_in.post(
        reverse("conversations:message_create", args=[conversation.public_id]), {"content": "Hello again"}, headers=HTMX
    )

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.archived_at is None
    answer = page_of(response)
    assert titles(answer.find("ul", id="conversation-list", attrs={"hx-swap-oob": "true"})) == [conversation.title]
    assert not answer.select("#chat-title .archived-notice")


@pytest.mark.django_db
def test_a_refused_send_leaves_it_archived(signed_in, user, chat_model):
    conversation = ConversationFactory(user=user, model=chat_model, system_prompt="")
    conversation.archive()

    response = signed_in.post(
        reverse("conversations:message_create", args=[conversation.public_id]), {"content": ""}, headers=HTMX
    )

    assert response.status_code == 422
    conversation.refresh_from_db()
    assert conversation.archived_at is not None
