"""Share links through the Django test client: the snapshot (the active branch's finished messages,
as they were), the public page (read-only, inert, nothing of the owner's account, noindex, 404 once
revoked), the owner's list, create and revoke, another user's 404s, and the admin."""

import re

import pytest
from bs4 import BeautifulSoup
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from accounts.tests.factories import UserFactory
from aimodels.tests.factories import AIModelFactory
from conversations.models import NOTHING_TO_SHARE, Message, Share
from conversations.tests.factories import ConversationFactory, MessageFactory, ShareFactory
from conversations.tests.test_xss import unsafe_markup
from conversations.tests.xss_corpus import XSS_CORPUS, payload

ADMIN_SHARES = reverse("admin:conversations_share_changelist")


def shares_url(conversation) -> str:
    return reverse("conversations:shares", args=[conversation.public_id])


def revoke_url(share: Share) -> str:
    return reverse("conversations:share_revoke", args=[share.conversation.public_id, share.pk])


def page_of(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def entries(response) -> list[tuple[str, str]]:
    """(role, text) of each message on a share's page, in order."""
    return [
        ("user" if "user" in article["class"] else "assistant", article.select_one(".content").get_text().strip())
        for article in page_of(response).select("article.bubble")
    ]


@pytest.fixture
def model(db):
    return AIModelFactory(name="share-gpt")


@pytest.fixture
def owner(db):
    return UserFactory(username="owner-kestrel", email="kestrel.owner@example.org")


@pytest.fixture
def owned(owner, model):
    return ConversationFactory(user=owner, model=model, title="Trip to Lisbon")


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def anonymous():
    return Client()


def say(conversation, text: str) -> Message:
    return MessageFactory(conversation=conversation, content=text)


def answer(conversation, text: str, **fields) -> Message:
    return MessageFactory(conversation=conversation, reply=True, content=text, **fields)


def share_now(client, conversation) -> Share:
    response = client.post(shares_url(conversation))
    assert response.status_code == 200, response.content
    return conversation.shares.order_by("-pk").first()


# The snapshot -----------------------------------------------------------------------------------
def test_the_snapshot_holds_the_active_branch_and_its_finished_messages(as_owner, owned, model):
    other_model = AIModelFactory(name="other-gpt")
    question = say(owned, "Where should I eat?")
    first = answer(owned, "Try the market.")
    second = first.version_add(role="assistant", content="Try **Time Out** market.", status="complete", model=other_model)
    say(owned, "And after dinner?")
    answer(owned, "A walk by the river, until it broke off", status=Message.Status.INTERRUPTED)

    share = share_now(as_owner, owned)

    assert share.title == "Trip to Lisbon"
    assert share.messages == [
        {"role": "user", "content": "Where should I eat?", "model": None, "created_at": question.created_at.isoformat()},
        {"role": "assistant", "content": "Try **Time Out** market.", "model": "other-gpt",
         "created_at": second.created_at.isoformat()},
        {"role": "user", "content": "And after dinner?", "model": None, "created_at": share.messages[2]["created_at"]},
        {"role": "assistant", "content": "A walk by the river, until it broke off", "model": "share-gpt",
         "created_at": share.messages[3]["created_at"]},
    ]


@pytest.mark.parametrize("status", [Message.Status.PENDING, Message.Status.STREAMING, Message.Status.FAILED])
def test_a_reply_not_finished_is_left_out(as_owner, owned, status):
    say(owned, "Question")
    answer(owned, "Half an answer", status=status)

    share = share_now(as_owner, owned)

    assert [message["content"] for message in share.messages] == ["Question"]


def test_a_reply_interrupted_before_its_first_word_is_left_out(as_owner, owned):
    say(owned, "Question")
    answer(owned, "", status=Message.Status.INTERRUPTED)

    share = share_now(as_owner, owned)

    assert [message["content"] for message in share.messages] == ["Question"]


def test_later_messages_and_another_branch_do_not_change_a_share(as_owner, anonymous, owned):
    say(owned, "Question")
    first = answer(owned, "First version")
    first.version_add(role="assistant", content="Second version", status="complete", model=owned.model)
    share = share_now(as_owner, owned)

    say(owned, "A later question")
    answer(owned, "A later answer")
    first.show()  # the first version's branch is on screen now
    response = anonymous.get(share.get_absolute_url())

    assert entries(response) == [("user", "Question"), ("assistant", "Second version")]
    share.refresh_from_db()
    assert [message["content"] for message in share.messages] == ["Question", "Second version"]


def test_a_conversation_with_no_finished_message_cannot_be_shared(as_owner, owned):
    answer(owned, "", status=Message.Status.PENDING, parent=None)

    response = as_owner.post(shares_url(owned))

    assert response.status_code == 422
    assert page_of(response).select_one(".errorlist").get_text() == NOTHING_TO_SHARE
    assert not Share.objects.exists()
    with pytest.raises(ValidationError):
        Share.snapshot_of(owned).full_clean()


# The public page ---------------------------------------------------------------------------------
def test_the_page_shows_the_snapshot_read_only_to_anyone(as_owner, anonymous, owned):
    say(owned, "What is *pastel de nata*?")
    answer(owned, "A **custard** tart.")
    share = share_now(as_owner, owned)

    response = anonymous.get(f"/s/{share.token}/")
    page = page_of(response)

    assert response.status_code == 200
    assert page.h1.get_text() == "Trip to Lisbon"
    assert entries(response) == [("user", "What is *pastel de nata*?"), ("assistant", "A custard tart.")]
    assert page.select_one(".bubble.assistant .content strong").get_text() == "custard"
    assert page.select_one(".bubble.assistant .who").get_text() == "share-gpt"
    assert page.find("time")["datetime"] == share.created_at.isoformat()
    assert page.find_all(["form", "textarea", "input", "button", "script"]) == []  # no composer, nothing to run


def test_nothing_of_the_owners_account_is_on_the_page(as_owner, anonymous, owner, owned):
    say(owned, "Hello")
    share = share_now(as_owner, owned)

    for viewer in (anonymous, as_owner):  # not even for the owner: the page is the same for everyone
        response = viewer.get(share.get_absolute_url())
        text = response.content.decode()

        for secret in (owner.username, owner.email, str(owned.public_id), owned.get_absolute_url()):
            assert secret not in text
        links = {a["href"] for a in page_of(response).find_all("a")}
        assert links == {"#main", reverse("conversations:index"), reverse("accounts:register")}
        assert "csrftoken" not in response.cookies


def test_search_engines_and_caches_are_told_to_keep_away(as_owner, anonymous, owned):
    say(owned, "Hello")
    share = share_now(as_owner, owned)

    response = anonymous.get(share.get_absolute_url())

    assert page_of(response).find("meta", attrs={"name": "robots"})["content"] == "noindex, nofollow"
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "no-referrer"
    assert set(re.split(r",\s*", response["Cache-Control"])) == {"no-store", "private"}


# The corpus, but for its NULs: no form takes one, and PostgreSQL cannot store one.
STORABLE_CORPUS = [text for _name, text in XSS_CORPUS if "\x00" not in text]


def test_markup_in_messages_stays_inert(as_owner, anonymous, owned):
    for text in STORABLE_CORPUS:
        say(owned, text)
        answer(owned, text)
    share = share_now(as_owner, owned)

    page = page_of(anonymous.get(share.get_absolute_url()))

    assert len(share.messages) == 2 * len(STORABLE_CORPUS)
    for content in page.select(".bubble.assistant .content.markdown"):
        assert unsafe_markup(content.decode_contents()) == []
    users = page.select(".bubble.user .content.plain")
    assert [content.find(True) for content in users] == [None] * len(STORABLE_CORPUS)
    assert page.find_all(["script", "img", "iframe", "svg", "math", "style"]) == []
    assert not [tag for tag in page.find_all(True) if any(name.lower().startswith("on") for name in tag.attrs)]


def test_a_question_with_html_is_shown_as_its_text(as_owner, anonymous, owned):
    say(owned, payload("handler/img-onerror"))
    share = share_now(as_owner, owned)

    page = page_of(anonymous.get(share.get_absolute_url()))

    assert page.select_one(".bubble.user .content").get_text() == "<img src=x onerror=alert(1)>"


def test_an_unknown_token_is_404(anonymous, db):
    response = anonymous.get(reverse("conversations:share", args=["no-such-token-at-all"]))

    assert response.status_code == 404
    assert "There is nothing here" in response.content.decode()  # the site's 404 page


def test_too_many_pages_from_one_address_are_refused_for_a_while(anonymous, settings, db):
    settings.SHARE_VIEWS_PER_IP = "2/m"
    share = ShareFactory()

    statuses = [anonymous.get(share.get_absolute_url()).status_code for _ in range(2)]
    refused = anonymous.get(reverse("conversations:share", args=["unknown-token"]))

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Client(REMOTE_ADDR="192.0.2.7").get(share.get_absolute_url()).status_code == 200  # another address


# The owner's list, create and revoke ------------------------------------------------------------
def test_the_owner_sees_the_links_newest_first_with_their_full_address(as_owner, owned):
    say(owned, "Hello")
    older, newer = share_now(as_owner, owned), share_now(as_owner, owned)

    page = page_of(as_owner.get(shares_url(owned)))

    assert [item["id"] for item in page.select(".share-item")] == [f"share-{newer.pk}", f"share-{older.pk}"]
    assert page.select_one(".share-item .share-url")["value"] == f"http://testserver/s/{newer.token}/"
    assert page.select_one(".share-item .copy-link")["data-link"] == f"http://testserver/s/{newer.token}/"
    assert page.find("button", string="Create link")


def test_a_revoked_link_answers_404(as_owner, anonymous, owned):
    say(owned, "Hello")
    share, kept = share_now(as_owner, owned), share_now(as_owner, owned)

    response = as_owner.post(revoke_url(share))

    assert response.status_code == 200
    assert [item["id"] for item in page_of(response).select(".share-item")] == [f"share-{kept.pk}"]
    assert anonymous.get(share.get_absolute_url()).status_code == 404
    assert anonymous.get(kept.get_absolute_url()).status_code == 200


def test_deleting_the_conversation_deletes_its_shares(as_owner, anonymous, owned):
    say(owned, "Hello")
    share = share_now(as_owner, owned)

    as_owner.post(reverse("conversations:delete", args=[owned.public_id]))

    assert not Share.objects.filter(pk=share.pk).exists()
    assert anonymous.get(share.get_absolute_url()).status_code == 404


# Another user ----------------------------------------------------------------------------------
@pytest.fixture
def stranger_user(db):
    return UserFactory()


@pytest.fixture
def stranger(stranger_user):
    client = Client()
    client.force_login(stranger_user)
    return client


def test_another_user_cannot_list_or_create_shares_of_a_conversation(stranger, owned):
    say(owned, "Hello")
    ShareFactory(conversation=owned)

    assert stranger.get(shares_url(owned)).status_code == 404
    assert stranger.post(shares_url(owned)).status_code == 404
    assert owned.shares.count() == 1


def test_another_user_cannot_revoke_a_share(stranger, stranger_user, owned):
    share = ShareFactory(conversation=owned)
    theirs = ConversationFactory(user=stranger_user)

    assert stranger.post(revoke_url(share)).status_code == 404
    # Their own conversation's address with another's share: 404 too.
    assert stranger.post(reverse("conversations:share_revoke", args=[theirs.public_id, share.pk])).status_code == 404
    assert Share.objects.filter(pk=share.pk).exists()


def test_a_share_is_revoked_only_through_its_own_conversations_address(as_owner, owner, owned, model):
    share = ShareFactory(conversation=owned)
    other = ConversationFactory(user=owner, model=model)  # the owner's too, but not the share's

    assert as_owner.post(reverse("conversations:share_revoke", args=[other.public_id, share.pk])).status_code == 404
    assert Share.objects.filter(pk=share.pk).exists()


# The admin ---------------------------------------------------------------------------------------
@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_staff_find_shares_by_owner_and_see_a_shortened_token(staff_client, owned):
    share = ShareFactory(conversation=owned)
    ShareFactory()  # someone else's

    response = staff_client.get(ADMIN_SHARES, {"q": "owner-kestrel"})
    cells = [cell.get_text().strip() for cell in page_of(response).select("#result_list tbody tr")[0].find_all(["th", "td"])]

    assert list(response.context["cl"].result_list) == [share]
    assert cells[1:5] == [share.token[:8] + "…", "Trip to Lisbon", "Trip to Lisbon", "owner-kestrel"]
    assert share.token not in response.content.decode()


def test_staff_revoke_shares_with_the_bulk_action(staff_client, anonymous, owned):
    shares = [ShareFactory(conversation=owned) for _ in range(2)]
    kept = ShareFactory()

    response = staff_client.post(
        ADMIN_SHARES, {"action": "delete_selected", "_selected_action": [s.pk for s in shares], "post": "yes"}
    )

    assert response.status_code == 302
    assert list(Share.objects.all()) == [kept]
    assert anonymous.get(shares[0].get_absolute_url()).status_code == 404


def test_staff_neither_add_nor_change_a_share(staff_client):
    share = ShareFactory()
    change = reverse("admin:conversations_share_change", args=[share.pk])

    assert staff_client.get(reverse("admin:conversations_share_add")).status_code == 403
    assert staff_client.post(change, {"title": "Changed"}).status_code == 403
    assert staff_client.get(change).status_code == 200  # a read-only view, with Delete
    share.refresh_from_db()
    assert share.title != "Changed"


def test_a_user_who_is_not_staff_gets_no_share_admin(client, user):
    share = ShareFactory()
    client.force_login(user)

    for response in (
        client.get(ADMIN_SHARES),
        client.post(reverse("admin:conversations_share_delete", args=[share.pk]), {"post": "yes"}),
    ):
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Share.objects.filter(pk=share.pk).exists()
