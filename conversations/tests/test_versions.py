"""Versions and branches (issue 13): a reply regenerated, a question edited and sent again, another
version shown with ‹ ›. Nothing is deleted; the page and the next reply's context follow the
active branch; every view is its owner's only."""

import re

import pytest
from bs4 import BeautifulSoup
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from aimodels.tests.factories import AIModelFactory
from conversations import services
from conversations.models import Message, NotOnBranch
from conversations.tests.factories import ConversationFactory, MessageFactory

HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.django_db


def regenerate_url(reply: Message) -> str:
    return reverse("conversations:reply_regenerate", args=[reply.conversation.public_id, reply.pk])


def edit_url(message: Message) -> str:
    return reverse("conversations:message_edit", args=[message.conversation.public_id, message.pk])


def show_url(message: Message) -> str:
    return reverse("conversations:message_show", args=[message.conversation.public_id, message.pk])


def branch(conversation) -> list[Message]:
    return list(conversation.branch().order_by("pk"))


def texts(conversation) -> list[str]:
    return [message.content for message in branch(conversation)]


@pytest.fixture
def turn(conversation):
    """A finished first turn: the question and its reply."""
    question = MessageFactory(conversation=conversation, content="Name a colour.")
    reply = MessageFactory(conversation=conversation, reply=True, content="Blue.")
    return question, reply


def finish(reply: Message, content: str) -> Message:
    """The reply as its job would leave it: complete, with its text."""
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content=content, token_count=5)
    reply.refresh_from_db()
    return reply


# Regenerate ---------------------------------------------------------------------------------------


def test_regenerate_adds_a_version_beside_the_reply_and_keeps_the_old_one(signed_in, conversation, turn):
    question, reply = turn

    response = signed_in.post(regenerate_url(reply), {"model": conversation.model.pk}, headers=HTMX)

    assert response.status_code == 200
    version = Message.objects.get(pk__gt=reply.pk)
    assert (version.parent_id, version.role, version.status) == (question.pk, "assistant", "pending")
    assert version.model == conversation.model
    reply.refresh_from_db()
    assert reply.content == "Blue." and not reply.active and not reply.chosen  # kept, not shown
    assert branch(conversation) == [question, version]
    # The list comes back on the new branch, scrolled to the new version, streaming it.
    assert response["HX-Reswap"] == f"innerHTML show:#message-{version.pk}:top"
    page = BeautifulSoup(response.content, "html.parser")
    assert [a["id"] for a in page.select("article")] == [f"message-{question.pk}", f"message-{version.pk}"]
    assert page.select_one(f"#message-{version.pk} [sse-connect]")


def test_regenerate_with_another_model_writes_the_version_with_it(signed_in, conversation, turn, chat_model):
    _, reply = turn
    other = AIModelFactory(name="other-model", api_key_env="", api_endpoint=conversation.model.api_endpoint)

    signed_in.post(regenerate_url(reply), {"model": other.pk}, headers=HTMX)

    version = Message.objects.get(pk__gt=reply.pk)
    assert version.model == other
    conversation.refresh_from_db()
    assert conversation.model == chat_model  # one version's model: the composer's stays preselected


def test_the_versions_of_a_reply_are_counted_and_linked_on_the_page(signed_in, conversation, turn):
    question, reply = turn
    second = finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")
    third = finish(second.version_add(role="assistant", status="pending", model=conversation.model), "Red.")
    second.show()

    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    bubble = page.select_one(f"#message-{second.pk}")
    assert bubble.select_one(".version-count").get_text() == "2 / 3"
    previous, following = bubble.select(".versions button")
    assert previous["hx-post"] == show_url(reply) and following["hx-post"] == show_url(third)
    assert "Green." in bubble.get_text() and "Blue." not in page.get_text() and "Red." not in page.get_text()
    # A message with one version has no control.
    assert not page.select_one(f"#message-{question.pk} .versions")


def test_the_first_and_last_versions_cannot_go_further(signed_in, conversation, turn):
    _, reply = turn
    finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")

    def buttons():
        page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")
        return page.select(".versions button")

    previous, following = buttons()  # the second of two
    assert following.has_attr("disabled") and not following.has_attr("hx-post")
    assert previous.has_attr("hx-post") and not previous.has_attr("disabled")
    reply.show()
    previous, following = buttons()  # the first
    assert previous.has_attr("disabled") and not previous.has_attr("hx-post")
    assert following.has_attr("hx-post")


def test_regenerate_is_refused_while_a_reply_is_being_written(signed_in, conversation, turn):
    _, reply = turn
    MessageFactory(conversation=conversation, content="And another?")
    writing = MessageFactory(conversation=conversation, pending=True)

    response = signed_in.post(regenerate_url(reply), {"model": conversation.model.pk}, headers=HTMX)

    assert response.status_code == 422
    assert response["HX-Retarget"] == "#chat-alert"
    assert "A reply is still being written" in response.content.decode()
    assert Message.objects.filter(conversation=conversation).count() == 4
    assert branch(conversation)[-1] == writing


def test_regenerate_of_a_reply_off_the_shown_branch_is_refused(signed_in, conversation, turn):
    _, reply = turn
    finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")
    reply.refresh_from_db()

    response = signed_in.post(regenerate_url(reply), {"model": conversation.model.pk}, headers=HTMX)

    assert response.status_code == 422
    assert "no longer on the conversation's shown branch" in BeautifulSoup(response.content, "html.parser").get_text()
    assert Message.objects.filter(conversation=conversation).count() == 3


def test_regenerate_with_a_model_not_on_offer_is_refused(signed_in, conversation, turn):
    _, reply = turn
    hidden = AIModelFactory(name="hidden", api_key_env="", is_active=False)

    response = signed_in.post(regenerate_url(reply), {"model": hidden.pk}, headers=HTMX)

    assert response.status_code == 422
    assert "That model is not available. Pick another." in response.content.decode()
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_regenerate_shares_the_send_rate(signed_in, conversation, turn, settings):
    settings.SEND_RATE_PER_USER = "1/m"
    _, reply = turn
    assert signed_in.post(regenerate_url(reply), {"model": conversation.model.pk}, headers=HTMX).status_code == 200
    version = finish(Message.objects.get(pk__gt=reply.pk), "Green.")

    response = signed_in.post(regenerate_url(version), {"model": conversation.model.pk}, headers=HTMX)

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "faster than chatter allows" in response.content.decode()
    assert Message.objects.filter(conversation=conversation).count() == 3


def test_the_regenerated_reply_gets_the_context_of_its_branch_only(conversation, turn):
    question, reply = turn
    MessageFactory(conversation=conversation, content="Why blue?")
    MessageFactory(conversation=conversation, reply=True, content="Because the sky.")
    version = reply.version_add(role="assistant", status="pending", model=conversation.model)

    context = services.context_read(reply=version, model=conversation.model)

    assert context.messages == [{"role": "user", "content": "Name a colour."}]


# Edit and resend ------------------------------------------------------------------------------------


def test_edit_shows_the_message_in_a_form_and_cancel_brings_the_bubble_back(signed_in, conversation, turn):
    question, _ = turn

    form = BeautifulSoup(signed_in.get(edit_url(question), headers=HTMX).content, "html.parser")

    assert form.select_one(f"article#message-{question.pk} form textarea").get_text().strip() == "Name a colour."
    cancelled = BeautifulSoup(signed_in.get(edit_url(question) + "?cancel=1", headers=HTMX).content, "html.parser")
    assert cancelled.select_one(f"article#message-{question.pk} .content").get_text() == "Name a colour."
    assert not cancelled.select("form")


def test_edit_and_resend_makes_a_new_branch_and_keeps_the_old_one(signed_in, conversation, turn):
    question, reply = turn
    MessageFactory(conversation=conversation, content="Why blue?")
    MessageFactory(conversation=conversation, reply=True, content="Because the sky.")

    response = signed_in.post(edit_url(question), {"content": "Name a fruit."}, headers=HTMX)

    assert response.status_code == 200
    edited, new_reply = Message.objects.filter(conversation=conversation).order_by("-pk")[:2][::-1]
    assert (edited.role, edited.content, edited.parent_id) == ("user", "Name a fruit.", None)
    assert (new_reply.parent_id, new_reply.status) == (edited.pk, "pending")
    assert branch(conversation) == [edited, new_reply]
    assert Message.objects.filter(conversation=conversation).count() == 6  # the old branch is all kept
    page = BeautifulSoup(response.content, "html.parser")
    assert page.select_one(f"#message-{edited.pk} .version-count").get_text() == "2 / 2"
    assert response["HX-Reswap"] == f"innerHTML show:#message-{edited.pk}:top"


def test_an_edit_later_in_the_conversation_branches_from_its_parent(signed_in, conversation, turn):
    question, reply = turn
    later = MessageFactory(conversation=conversation, content="Why blue?")
    MessageFactory(conversation=conversation, reply=True, content="Because the sky.")

    signed_in.post(edit_url(later), {"content": "Why not red?"}, headers=HTMX)

    assert texts(conversation) == ["Name a colour.", "Blue.", "Why not red?", ""]


@pytest.mark.parametrize(("content", "error"), [
    ("   ", "Type a message first."),
    ("x" * 32_001, "the limit is 32,000"),
])
def test_an_edit_that_fails_its_checks_keeps_the_text_and_saves_nothing(signed_in, conversation, turn, content, error, settings):
    settings.MESSAGE_MAX_LENGTH = 32_000
    question, _ = turn

    response = signed_in.post(edit_url(question), {"content": content}, headers=HTMX)

    assert response.status_code == 422
    assert response["HX-Retarget"] == f"#message-{question.pk}"
    body = response.content.decode()
    assert error in body
    if content.strip():
        assert BeautifulSoup(body, "html.parser").select_one("textarea").get_text().strip() == content
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_an_edit_while_a_reply_is_being_written_is_refused(signed_in, conversation, turn):
    question, _ = turn
    MessageFactory(conversation=conversation, content="More?")
    MessageFactory(conversation=conversation, pending=True)

    response = signed_in.post(edit_url(question), {"content": "Name a fruit."}, headers=HTMX)

    assert response.status_code == 422
    assert "A reply is still being written" in response.content.decode()
    assert Message.objects.filter(conversation=conversation).count() == 4


def test_only_a_users_message_can_be_edited(signed_in, conversation, turn):
    _, reply = turn

    assert signed_in.get(edit_url(reply)).status_code == 404
    assert signed_in.post(edit_url(reply), {"content": "Changed"}).status_code == 404
    reply.refresh_from_db()
    assert reply.content == "Blue."


# Moving between versions ----------------------------------------------------------------------------


def test_moving_back_to_a_version_returns_to_the_branch_below_it_as_it_was(signed_in, conversation, turn):
    question, reply = turn
    follow_up = MessageFactory(conversation=conversation, content="Why blue?")
    answer = MessageFactory(conversation=conversation, reply=True, content="Because the sky.")
    green = finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")
    assert branch(conversation) == [question, green]

    response = signed_in.post(show_url(reply), headers=HTMX)

    assert response.status_code == 200
    assert branch(conversation) == [question, reply, follow_up, answer]
    page = BeautifulSoup(response.content, "html.parser")
    assert page.select_one(f"#message-{reply.pk} .version-count").get_text() == "1 / 2"
    assert "Because the sky." in page.get_text() and "Green." not in page.get_text()
    # and forward again
    signed_in.post(show_url(green), headers=HTMX)
    assert branch(conversation) == [question, green]


def test_a_branch_remembers_the_versions_chosen_below_the_fork(conversation, turn):
    question, reply = turn
    follow_up = MessageFactory(conversation=conversation, content="Why blue?")
    first = MessageFactory(conversation=conversation, reply=True, content="Sky.")
    second = finish(first.version_add(role="assistant", status="pending", model=conversation.model), "Sea.")
    first.show()  # below the fork, the first version is the one last shown
    green = finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")

    reply.show()

    assert branch(conversation) == [question, reply, follow_up, first]
    second.refresh_from_db()
    assert not second.active and not second.chosen
    assert green.chosen is True and Message.objects.get(pk=green.pk).chosen is False


def test_moving_is_refused_while_a_reply_is_being_written(signed_in, conversation, turn):
    _, reply = turn
    green = finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")
    MessageFactory(conversation=conversation, content="More?")
    MessageFactory(conversation=conversation, pending=True)

    response = signed_in.post(show_url(reply), headers=HTMX)

    assert response.status_code == 409
    assert "A reply is still being written" in response.content.decode()
    assert branch(conversation)[1] == green


def test_a_stale_reply_does_not_block_moving(signed_in, conversation, turn):
    _, reply = turn
    green = finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")
    stale = MessageFactory(conversation=conversation, pending=True)
    Message.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timezone.timedelta(minutes=5))

    assert signed_in.post(show_url(reply), headers=HTMX).status_code == 200
    assert branch(conversation)[1] == reply
    assert green.pk not in [m.pk for m in branch(conversation)]


def test_a_version_beside_a_message_off_the_branch_cannot_be_shown(signed_in, conversation, turn):
    question, reply = turn
    follow_up = MessageFactory(conversation=conversation, content="Why blue?")
    answer = MessageFactory(conversation=conversation, reply=True, content="Sky.")
    other = finish(answer.version_add(role="assistant", status="pending", model=conversation.model), "Sea.")
    finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")
    before = branch(conversation)

    response = signed_in.post(show_url(other), headers=HTMX)  # its parent is on the other branch now

    assert response.status_code == 409
    assert "Reload the page" in response.content.decode()
    assert branch(conversation) == before
    assert follow_up not in before


def test_the_page_reads_the_versions_of_its_messages_in_one_query(signed_in, conversation, turn):
    question, reply = turn
    for n in range(5):
        MessageFactory(conversation=conversation, content=f"Question {n}")
        answer = MessageFactory(conversation=conversation, reply=True, content=f"Answer {n}")
        finish(answer.version_add(role="assistant", status="pending", model=conversation.model), f"Again {n}")
    with CaptureQueriesContext(connection) as few:
        signed_in.get(conversation.get_absolute_url())
    for n in range(5, 15):
        MessageFactory(conversation=conversation, content=f"Question {n}")
        answer = MessageFactory(conversation=conversation, reply=True, content=f"Answer {n}")
        finish(answer.version_add(role="assistant", status="pending", model=conversation.model), f"Again {n}")

    with CaptureQueriesContext(connection) as many:
        response = signed_in.get(conversation.get_absolute_url())

    assert len(many) == len(few)
    assert len(re.findall(r'class="version-count">2 / 2<', response.content.decode())) == 15


# Whose they are -------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["regenerate", "edit-get", "edit-post", "show"])
def test_another_users_messages_answer_404_and_nothing_changes(client, conversation, turn, action):
    question, reply = turn
    green = finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")
    client.force_login(UserFactory())
    before = sorted(Message.objects.filter(conversation=conversation).values_list("pk", "active", "chosen", "content"))

    response = {
        "regenerate": lambda: client.post(regenerate_url(green), {"model": conversation.model.pk}),
        "edit-get": lambda: client.get(edit_url(question)),
        "edit-post": lambda: client.post(edit_url(question), {"content": "Mine now"}),
        "show": lambda: client.post(show_url(reply)),
    }[action]()

    assert response.status_code == 404
    assert sorted(Message.objects.filter(conversation=conversation).values_list("pk", "active", "chosen", "content")) == before


@pytest.mark.parametrize("action", ["regenerate", "show"])
def test_a_message_id_under_another_conversations_address_answers_404(signed_in, user, conversation, turn, action):
    _, reply = turn
    mine_too = ConversationFactory(user=user, model=conversation.model)
    url = reverse(f"conversations:{'reply_regenerate' if action == 'regenerate' else 'message_show'}",
                  args=[mine_too.public_id, reply.pk])

    assert signed_in.post(url, {"model": conversation.model.pk}).status_code == 404
    assert Message.objects.filter(conversation=conversation).count() == 2


@pytest.mark.parametrize("name", ["reply_regenerate", "message_show"])
def test_changes_are_posts_only(signed_in, conversation, turn, name):
    _, reply = turn
    assert signed_in.get(reverse(f"conversations:{name}", args=[conversation.public_id, reply.pk])).status_code == 405


def test_signed_out_visitors_are_sent_to_log_in(client, conversation, turn):
    question, reply = turn
    for url in (regenerate_url(reply), edit_url(question), show_url(reply)):
        response = client.post(url, {"content": "x", "model": conversation.model.pk})
        assert response.status_code == 302 and "/login" in response["Location"]
    assert Message.objects.filter(conversation=conversation).count() == 2


# The admin: read-only, tree-aware ------------------------------------------------------------------


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_the_admin_shows_a_replys_versions_and_what_it_follows(staff_client, conversation, turn):
    question, reply = turn
    second = finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "<b>Green</b>.")

    page = BeautifulSoup(
        staff_client.get(reverse("admin:conversations_message_change", args=[reply.pk])).content, "html.parser"
    )

    versions = page.select_one(".field-versions_list .readonly")
    links = [a["href"] for a in versions.select("a")]
    assert links == [reverse("admin:conversations_message_change", args=[pk]) for pk in (reply.pk, second.pk)]
    assert versions.get_text().startswith("▶ ")  # this one
    assert f"#{second.pk} assistant, complete (shown)" in versions.get_text()
    assert f"#{reply.pk} assistant, complete:" in versions.get_text()  # neither shown nor chosen now
    assert "<b>Green</b>." in versions.get_text() and not versions.select("b")  # escaped
    follows = page.select_one(".field-parent_link .readonly a")
    assert follows["href"] == reverse("admin:conversations_message_change", args=[question.pk])
    question_page = BeautifulSoup(
        staff_client.get(reverse("admin:conversations_message_change", args=[question.pk])).content, "html.parser"
    )
    assert len(question_page.select(".field-follow_ups .readonly a")) == 2
    assert "first message" in question_page.select_one(".field-parent_link .readonly").get_text()


def test_the_admins_conversation_lists_the_shown_branch_with_each_messages_version(staff_client, conversation, turn):
    question, reply = turn
    finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")

    page = BeautifulSoup(
        staff_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk])).content,
        "html.parser",
    )

    rows = page.select("tr.has_original")
    assert [row.select_one(".field-excerpt").get_text(strip=True) for row in rows] == ["Name a colour.", "Green."]
    assert [row.select_one(".field-version").get_text(strip=True) for row in rows] == ["the only one", "2 of 2"]
    assert "on the branch its user sees" in page.get_text()


def test_the_admins_message_list_filters_by_branch(staff_client, conversation, turn):
    _, reply = turn
    finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")

    response = staff_client.get(reverse("admin:conversations_message_changelist") + "?active__exact=0")

    assert [message.pk for message in response.context["cl"].result_list] == [reply.pk]


def test_deleting_a_conversation_deletes_its_whole_tree_and_its_shares(signed_in, conversation, turn):
    question, reply = turn
    green = finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")
    question.version_add(role="user", content="Name a fruit.")
    MessageFactory(conversation=conversation, parent=green, content="Why green?")  # below a version
    conversation.shares.create(title=conversation.title)
    other = MessageFactory(content="Someone else's")  # another conversation is untouched

    response = signed_in.post(reverse("conversations:delete", args=[conversation.public_id]))

    assert response.status_code == 302
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert not conversation.shares.exists()
    assert Message.objects.filter(pk=other.pk).exists()


def test_the_context_reads_the_branch_in_as_many_queries_whatever_the_versions_beside_it(conversation, turn):
    question, reply = turn
    for n in range(2):
        MessageFactory(conversation=conversation, content=f"Question {n}")
        MessageFactory(conversation=conversation, reply=True, content=f"Answer {n}")
    pending = MessageFactory(conversation=conversation, content="Last question")

    def context_and_queries():
        version = Message(pk=10**9, conversation=conversation, model=conversation.model, steps=[])
        with CaptureQueriesContext(connection) as queries:
            context = services.context_read(reply=version, model=conversation.model)
        return context.messages, len(queries)

    alone, queries_alone = context_and_queries()
    for n in range(30):  # versions beside the branch, and the branches below them
        other = reply.version_add(role="assistant", status="complete", content=f"Version {n}", model=conversation.model)
        MessageFactory(conversation=conversation, parent=other, content=f"Off the branch {n}")
    reply.show()  # the first branch again, down to the last question as it was

    assert context_and_queries() == (alone, queries_alone)
    assert [m["content"] for m in alone][-2:] == ["Answer 1", "Last question"]


def test_retry_of_a_version_asks_its_own_model_again_or_the_conversations_when_it_is_gone(signed_in, conversation, turn):
    _, reply = turn
    other = AIModelFactory(name="other-model", api_key_env="", api_endpoint=conversation.model.api_endpoint)
    version = reply.version_add(role="assistant", status="failed", error="Boom.", model=other)
    retry = reverse("conversations:reply_retry", args=[conversation.public_id, version.pk])

    assert signed_in.post(retry, headers=HTMX).status_code == 200
    version.refresh_from_db()
    assert (version.status, version.model) == ("pending", other)

    Message.objects.filter(pk=version.pk).update(status="failed", error="Boom again.")
    other.is_active = False
    other.save()
    assert signed_in.post(retry, headers=HTMX).status_code == 200
    version.refresh_from_db()
    assert (version.status, version.model) == ("pending", conversation.model)


# The README's rules for versions: every message offers them, they share the sending limits, Retry is in place


def test_every_reply_offers_regenerate_with_the_models_on_offer_and_every_question_edit(signed_in, conversation, turn):
    MessageFactory(conversation=conversation, content="Why blue?")
    MessageFactory(conversation=conversation, reply=True, content="Because", status="interrupted", error="Stopped.")
    AIModelFactory(name="other-model", api_key_env="", api_endpoint=conversation.model.api_endpoint)
    shown = branch(conversation)

    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    menus = [bubble.select_one("details.regenerate form") for bubble in page.select("article.bubble.assistant")]
    assert [menu and menu["hx-post"] for menu in menus] == [regenerate_url(m) for m in shown if m.role == "assistant"]
    for menu in menus:
        assert sorted(button.get_text() for button in menu.select("button[name=model]")) == ["fake-gpt", "other-model"]
    edits = [bubble.select_one("button.edit-message") for bubble in page.select("article.bubble.user")]
    assert [button["hx-get"] for button in edits] == [edit_url(m) for m in shown if m.role == "user"]


def test_an_edit_shares_the_send_rate_with_sending(signed_in, conversation, turn, settings):
    settings.SEND_RATE_PER_USER = "1/m"
    question, _ = turn
    send = reverse("conversations:message_create", args=[conversation.public_id])
    assert signed_in.post(send, {"content": "Why blue?"}, headers=HTMX).status_code == 200
    finish(branch(conversation)[-1], "Because the sky.")

    response = signed_in.post(edit_url(question), {"content": "Name a fruit."}, headers=HTMX)

    assert response.status_code == 429
    assert "faster than chatter allows" in response.content.decode()
    assert Message.objects.filter(conversation=conversation).count() == 4


@pytest.mark.parametrize("action", ["regenerate", "edit"])
def test_regenerate_and_edit_count_toward_the_replies_written_at_once(
    signed_in, user, conversation, turn, settings, action
):
    settings.REPLIES_AT_ONCE_PER_USER = 1
    question, reply = turn
    MessageFactory(conversation=ConversationFactory(user=user, model=conversation.model), pending=True)  # elsewhere

    if action == "regenerate":
        response = signed_in.post(regenerate_url(reply), {"model": conversation.model.pk}, headers=HTMX)
    else:
        response = signed_in.post(edit_url(question), {"content": "Name a fruit."}, headers=HTMX)

    assert response.status_code == 422
    assert "at most 1 at once" in response.content.decode()
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_retry_of_a_failed_version_replaces_it_in_place(signed_in, conversation, turn):
    question, reply = turn
    failed = reply.version_add(
        role="assistant", status="failed", content="", error="The provider timed out.", model=conversation.model
    )

    response = signed_in.post(
        reverse("conversations:reply_retry", args=[conversation.public_id, failed.pk]), headers=HTMX
    )

    assert response.status_code == 200
    failed.refresh_from_db()
    assert (failed.status, failed.error) == ("pending", "")
    assert list(Message.objects.filter(conversation=conversation).order_by("pk")) == [question, reply, failed]
    assert branch(conversation) == [question, failed]


def test_another_tab_opening_the_conversation_follows_the_new_version_live(client, signed_in, user, conversation, turn):
    _, reply = turn
    signed_in.post(regenerate_url(reply), {"model": conversation.model.pk}, headers=HTMX)
    version = Message.objects.get(pk__gt=reply.pk)
    other_tab = client.__class__()
    other_tab.force_login(user)

    page = BeautifulSoup(other_tab.get(conversation.get_absolute_url()).content, "html.parser")

    stream = reverse("conversations:reply_stream", args=[conversation.public_id, version.pk])
    assert page.select_one(f"#message-{version.pk} [sse-connect]")["sse-connect"] == stream
    assert page.select_one(f"#message-{version.pk} .stop")  # stoppable from there too
    assert not page.select_one(f"#message-{reply.pk}")


def test_a_version_of_a_message_off_the_branch_is_not_added(conversation, turn):
    question, reply = turn
    follow_up = MessageFactory(conversation=conversation, content="Why?")
    reply.version_add(role="assistant", status="complete", content="Green.", model=conversation.model)
    count = Message.objects.count()

    with pytest.raises(NotOnBranch):
        follow_up.version_add(role="user", content="Why not?")

    assert Message.objects.count() == count


def test_moving_to_a_version_far_up_shows_the_branch_down_to_it_not_only_the_newest_page(signed_in, conversation, turn):
    question, reply = turn
    for n in range(30):  # 60 messages below the reply: more than a page
        MessageFactory(conversation=conversation, content=f"Question {n}")
        MessageFactory(conversation=conversation, reply=True, content=f"Answer {n}")
    finish(reply.version_add(role="assistant", status="pending", model=conversation.model), "Green.")

    response = signed_in.post(show_url(reply), headers=HTMX)

    page = BeautifulSoup(response.content, "html.parser")
    shown = [article["id"] for article in page.select("article")]
    assert shown[0] == f"message-{reply.pk}" and len(shown) == 61  # the version, and all below it
    assert page.select_one(".earlier-messages")  # the rest above still loads on scroll
    assert response["HX-Reswap"] == f"innerHTML show:#message-{reply.pk}:top"


def test_retry_of_a_failed_version_off_the_shown_branch_does_nothing(signed_in, conversation, turn):
    _, reply = turn
    failed = reply.version_add(role="assistant", status="failed", error="Boom.", model=conversation.model)
    reply.show()  # the failed version is the newest message, but no longer shown

    response = signed_in.post(reverse("conversations:reply_retry", args=[conversation.public_id, failed.pk]), headers=HTMX)

    assert response["HX-Refresh"] == "true"  # the page is out of date
    failed.refresh_from_db()
    assert (failed.status, failed.error) == ("failed", "Boom.")
