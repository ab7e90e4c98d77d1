import html
import re
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import UserFactory
from aimodels.tests.factories import AIModelFactory
from conversations.models import Conversation, Message
from conversations.tests.factories import ConversationFactory, MessageFactory

HTMX = {"HX-Request": "true"}


def send_url(conversation=None) -> str:
    if conversation is None:
        return reverse("conversations:start")
    return reverse("conversations:message_create", args=[conversation.public_id])


def reply_url(name: str, reply: Message) -> str:
    return reverse(f"conversations:{name}", args=[reply.conversation.public_id, reply.pk])


def assert_refused_keeping_the_text(response, reason: str, text: str) -> None:
    """422 with the reason and the user's text back in the composer; nothing saved."""
    assert response.status_code == 422
    body = html.unescape(response.content.decode())
    assert reason in body
    assert text in body
    assert not Message.objects.exists()


# Access --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_every_chat_url_needs_login(client, conversation):
    reply = MessageFactory(conversation=conversation, pending=True)
    urls = [
        ("get", reverse("conversations:index")),
        ("get", reverse("conversations:new")),
        ("get", conversation.get_absolute_url()),
        ("post", send_url()),
        ("post", send_url(conversation)),
        ("post", reply_url("reply_stop", reply)),
        ("post", reply_url("reply_retry", reply)),
    ]
    for method, url in urls:
        response = getattr(client, method)(url, {"content": "hi"} if method == "post" else None)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_another_users_conversation_is_404_everywhere(client, conversation):
    reply = MessageFactory(conversation=conversation, status="failed", role="assistant", model=conversation.model)
    client.force_login(UserFactory())

    assert client.get(conversation.get_absolute_url()).status_code == 404
    assert client.post(send_url(conversation), {"content": "sneaky"}).status_code == 404
    assert client.post(reply_url("reply_stop", reply)).status_code == 404
    assert client.post(reply_url("reply_retry", reply)).status_code == 404
    assert not Message.objects.filter(content="sneaky").exists()
    reply.refresh_from_db()
    assert reply.status == "failed"


@pytest.mark.django_db
def test_posts_need_the_csrf_token(user, conversation):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post(send_url(conversation), {"content": "hi"})

    assert response.status_code == 403
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_sending_needs_post(signed_in, conversation):
    assert signed_in.get(send_url(conversation)).status_code == 405


# The page ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_home_opens_the_newest_conversation(signed_in, user, chat_model):
    ConversationFactory(user=user, model=chat_model)
    newest = ConversationFactory(user=user, model=chat_model)
    ConversationFactory(model=chat_model)  # someone else's, newer still

    response = signed_in.get(reverse("conversations:index"))

    assert response["Location"] == newest.get_absolute_url()


@pytest.mark.django_db
def test_home_without_conversations_offers_a_new_one(signed_in, chat_model):
    response = signed_in.get(reverse("conversations:index"))

    page = BeautifulSoup(response.content, "html.parser")
    assert page.find("label", string="Message")
    assert page.find("button", string="Send")
    assert page.find("select", attrs={"name": "model"}).find("option", selected=True).text == "fake-gpt"


@pytest.mark.django_db
def test_inactive_models_are_not_offered(signed_in, chat_model):
    AIModelFactory(name="retired", is_active=False)

    page = signed_in.get(reverse("conversations:new")).content.decode()

    assert "retired" not in page


@pytest.mark.django_db
def test_reload_shows_every_message_in_order_with_its_state(signed_in, conversation):
    MessageFactory(conversation=conversation, content="first question")
    MessageFactory(conversation=conversation, reply=True, content="first **answer**")
    MessageFactory(conversation=conversation, content="second question")
    MessageFactory(
        conversation=conversation, reply=True, status="interrupted", content="partial answ",
        error="The connection closed before the reply was finished.",
    )
    MessageFactory(conversation=conversation, content="third question")
    MessageFactory(conversation=conversation, reply=True, status="failed", content="", error="Rate limited.")

    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    bubbles = page.select("#message-list article")
    assert [b["class"][1:] for b in bubbles] == [
        ["user", "status-complete"], ["assistant", "status-complete"],
        ["user", "status-complete"], ["assistant", "status-interrupted"],
        ["user", "status-complete"], ["assistant", "status-failed"],
    ]
    assert bubbles[1].strong.text == "answer"
    assert "partial answ" in bubbles[3].text
    assert "connection closed" in bubbles[3].find(class_="problem").text
    assert bubbles[5].find(class_="problem").text == "Rate limited."
    assert bubbles[5].find("button", class_="retry")
    assert not bubbles[3].find("button", class_="retry")  # only the last reply can be retried


@pytest.mark.django_db
def test_a_pending_reply_reconnects_its_stream_on_reload(signed_in, conversation):
    reply = MessageFactory(conversation=conversation, pending=True)

    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    assert page.find(attrs={"sse-connect": reply_url("reply_stream", reply)})


@pytest.mark.django_db
def test_user_text_is_escaped_on_the_page(signed_in, conversation):
    attack = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    MessageFactory(conversation=conversation, content=attack)
    conversation.title = attack
    conversation.save()

    response = signed_in.get(conversation.get_absolute_url())

    page = BeautifulSoup(response.content, "html.parser")
    assert not page.find("img")
    assert all(s.get("src") for s in page.find_all("script"))
    assert html.escape(attack, quote=False) in response.content.decode()


# Sending -------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_send_commits_the_message_and_opens_the_reply_stream(signed_in, conversation, fake_upstream):
    response = signed_in.post(send_url(conversation), {"content": "  What is **2+2**?  "}, headers=HTMX)

    assert response.status_code == 200
    question, reply = conversation.messages.all()
    assert (question.role, question.content, question.status) == ("user", "What is **2+2**?", "complete")
    assert question.token_count > 0
    assert (reply.role, reply.status, reply.model) == ("assistant", "pending", conversation.model)
    assert fake_upstream.requests == []  # nothing is asked until the stream opens
    part = BeautifulSoup(response.content, "html.parser")
    assert part.find("article", id=f"message-{question.pk}").find(class_="content").text == "What is **2+2**?"
    assert part.find(attrs={"sse-connect": reply_url("reply_stream", reply)})
    composer = part.find("form", id="composer")
    assert composer["hx-swap-oob"] == "true"
    assert composer.textarea.text.strip() == ""


@pytest.mark.django_db
def test_first_message_starts_a_conversation(signed_in, user, chat_model):
    response = signed_in.post(send_url(), {"content": "Plan a trip to Lisbon", "model": chat_model.pk}, headers=HTMX)

    conversation = Conversation.objects.get(user=user)
    assert conversation.model == chat_model
    assert conversation.title == "Plan a trip to Lisbon"
    assert response["HX-Push-Url"] == conversation.get_absolute_url()
    part = BeautifulSoup(response.content, "html.parser")
    assert part.find("form", id="composer")["hx-post"] == send_url(conversation)
    assert "Plan a trip to Lisbon" in part.find(id="conversation-list").text


@pytest.mark.django_db
@pytest.mark.parametrize("content", ["", "   ", "\n\t"])
def test_empty_message_is_refused_and_nothing_saved(signed_in, conversation, content):
    response = signed_in.post(send_url(conversation), {"content": content}, headers=HTMX)

    assert response.status_code == 422
    assert response["HX-Retarget"] == "#composer"
    assert "Type a message first." in response.content.decode()
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_too_long_message_is_refused_and_kept_in_the_box(signed_in, conversation, settings):
    settings.MESSAGE_MAX_LENGTH = 20
    text = "x" * 21

    response = signed_in.post(send_url(conversation), {"content": text}, headers=HTMX)

    assert response.status_code == 422
    form = BeautifulSoup(response.content, "html.parser").find("form", id="composer")
    assert form.textarea.text.strip() == text
    assert "This message is 21 characters; the limit is 20." in form.text
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_the_box_has_no_maxlength_that_would_cut_a_paste_silently(signed_in, conversation, settings):
    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    box = page.find("textarea", attrs={"name": "content"})
    assert not box.has_attr("maxlength")
    assert box["data-max-length"] == str(settings.MESSAGE_MAX_LENGTH)


@pytest.mark.django_db
def test_default_length_limit_is_32000(signed_in, conversation, chat_model):
    chat_model.context_window = 200_000
    chat_model.save()

    ok = signed_in.post(send_url(conversation), {"content": "a " * 16_000}, headers=HTMX)
    too_long = signed_in.post(send_url(conversation), {"content": "a" * 32_001}, headers=HTMX)

    assert ok.status_code == 200
    assert too_long.status_code == 422


@pytest.mark.django_db
def test_message_that_cannot_fit_the_model_is_refused_before_any_call(signed_in, conversation, chat_model, fake_upstream):
    chat_model.context_window = 600
    chat_model.max_completion_tokens = 200
    chat_model.save()
    text = "lorem ipsum dolor " * 100

    response = signed_in.post(send_url(conversation), {"content": text}, headers=HTMX)

    assert_refused_keeping_the_text(response, "tokens; fake-gpt accepts at most", text.strip())
    assert fake_upstream.requests == []


@pytest.mark.django_db
def test_inactive_model_gives_a_clear_message_and_keeps_the_text(signed_in, conversation, chat_model):
    chat_model.is_default = False
    chat_model.is_active = False
    chat_model.save()

    response = signed_in.post(send_url(conversation), {"content": "are you there?"}, headers=HTMX)

    assert_refused_keeping_the_text(response, "fake-gpt is no longer available", "are you there?")


@pytest.mark.django_db
def test_model_without_its_key_gives_a_clear_message_and_keeps_the_text(signed_in, conversation, chat_model, monkeypatch):
    monkeypatch.delenv("CHATTER_MISSING_KEY", raising=False)
    chat_model.api_key_env = "CHATTER_MISSING_KEY"
    chat_model.save()

    response = signed_in.post(send_url(conversation), {"content": "hello?"}, headers=HTMX)

    assert_refused_keeping_the_text(response, "its API key is not configured", "hello?")


@pytest.mark.django_db
def test_new_conversation_cannot_pick_an_inactive_model(signed_in, chat_model):
    retired = AIModelFactory(name="retired", is_active=False)

    response = signed_in.post(send_url(), {"content": "hi", "model": retired.pk}, headers=HTMX)

    assert response.status_code == 422
    assert not Conversation.objects.exists()


@pytest.mark.django_db
def test_no_new_message_while_a_reply_is_being_written(signed_in, conversation):
    MessageFactory(conversation=conversation, content="first")
    MessageFactory(conversation=conversation, pending=True)

    response = signed_in.post(send_url(conversation), {"content": "and another thing"}, headers=HTMX)

    assert response.status_code == 422
    body = html.unescape(response.content.decode())
    assert "A reply is still being written" in body
    assert "and another thing" in body
    assert conversation.messages.count() == 2


@pytest.mark.django_db
def test_a_reply_abandoned_by_a_dead_worker_does_not_block_the_conversation(signed_in, conversation):
    reply = MessageFactory(conversation=conversation, reply=True, status="streaming", content="par")
    Message.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

    response = signed_in.post(send_url(conversation), {"content": "hello again"}, headers=HTMX)

    assert response.status_code == 200


# Retry ---------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_retry_reopens_the_last_reply_without_retyping(signed_in, conversation):
    MessageFactory(conversation=conversation, content="the question")
    reply = MessageFactory(
        conversation=conversation, reply=True, status="interrupted", content="half", content_html="<p>half</p>", error="x"
    )

    response = signed_in.post(reply_url("reply_retry", reply), headers=HTMX)

    reply.refresh_from_db()
    assert (reply.status, reply.content, reply.content_html, reply.error) == ("pending", "", "", "")
    assert BeautifulSoup(response.content, "html.parser").find(attrs={"sse-connect": reply_url("reply_stream", reply)})
    assert conversation.messages.filter(role="user").get().content == "the question"


@pytest.mark.django_db
def test_retry_of_a_reply_that_broke_off_long_ago_starts_it_afresh(signed_in, conversation):
    MessageFactory(conversation=conversation, content="the question")
    reply = MessageFactory(conversation=conversation, reply=True, status="interrupted", content="half", error="x")
    Message.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

    response = signed_in.post(reply_url("reply_retry", reply), headers=HTMX)

    reply.refresh_from_db()
    assert reply.status == "pending" and not reply.is_stale
    assert BeautifulSoup(response.content, "html.parser").find(attrs={"sse-connect": reply_url("reply_stream", reply)})


@pytest.mark.django_db
def test_retry_of_a_complete_reply_changes_nothing(signed_in, conversation):
    reply = MessageFactory(conversation=conversation, reply=True, content="fine answer")

    response = signed_in.post(reply_url("reply_retry", reply), headers=HTMX)

    assert response["HX-Refresh"] == "true"
    reply.refresh_from_db()
    assert (reply.status, reply.content) == ("complete", "fine answer")


@pytest.mark.django_db
def test_retry_of_a_failed_reply_that_is_not_the_last_changes_nothing(signed_in, conversation):
    MessageFactory(conversation=conversation, content="first question")
    earlier = MessageFactory(conversation=conversation, reply=True, status="failed", content="", error="boom")
    MessageFactory(conversation=conversation, content="second question")
    MessageFactory(conversation=conversation, reply=True, content="second answer")

    response = signed_in.post(reply_url("reply_retry", earlier), headers=HTMX)

    assert response["HX-Refresh"] == "true"
    earlier.refresh_from_db()
    assert (earlier.status, earlier.error) == ("failed", "boom")


@pytest.mark.django_db
def test_stop_of_a_pending_reply_marks_it_stopped(signed_in, conversation):
    reply = MessageFactory(conversation=conversation, pending=True)

    assert signed_in.post(reply_url("reply_stop", reply)).status_code == 204

    reply.refresh_from_db()
    assert (reply.status, reply.error, reply.stop_requested) == ("failed", "Stopped.", True)


# Limits ----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_sending_faster_than_the_rate_is_refused_with_the_wait_and_the_text_kept(signed_in, conversation, settings):
    settings.SEND_RATE_PER_USER = "2/m"
    for n in range(2):
        signed_in.post(send_url(conversation), {"content": f"hello {n}"}, headers=HTMX)
        Message.objects.filter(status=Message.Status.PENDING).update(status=Message.Status.COMPLETE)

    response = signed_in.post(send_url(conversation), {"content": "one more"}, headers=HTMX)

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    body = html.unescape(response.content.decode())
    assert "faster than chatter allows (2 messages a minute)" in body
    assert re.search(r"You can send again in \d+ seconds?; your text is kept", body)
    assert "one more" in body
    assert response["HX-Retarget"] == "#composer"
    assert Message.objects.filter(role=Message.Role.USER).count() == 2


@pytest.mark.django_db
def test_the_send_rate_is_per_user(signed_in, conversation, chat_model, settings):
    settings.SEND_RATE_PER_USER = "1/m"
    signed_in.post(send_url(conversation), {"content": "mine"}, headers=HTMX)
    other = UserFactory()
    signed_in.force_login(other)

    response = signed_in.post(send_url(ConversationFactory(user=other, model=chat_model)), {"content": "theirs"}, headers=HTMX)

    assert response.status_code == 200


@pytest.mark.django_db
def test_at_most_the_set_number_of_replies_are_written_at_once_per_user(signed_in, user, chat_model, settings):
    settings.REPLIES_AT_ONCE_PER_USER = 2
    first, second, third = (ConversationFactory(user=user, model=chat_model) for _ in range(3))
    for conversation in (first, second):
        assert signed_in.post(send_url(conversation), {"content": "go"}, headers=HTMX).status_code == 200

    response = signed_in.post(send_url(third), {"content": "and this"}, headers=HTMX)

    assert response.status_code == 422
    body = html.unescape(response.content.decode())
    assert "2 of your replies are being written in other conversations; at most 2 at once" in body
    assert "and this" in body
    assert not third.messages.exists()


# Choosing the model ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_message_can_switch_the_model_mid_chat(signed_in, conversation, chat_model):
    other = AIModelFactory(name="other-model", provider="openai_compatible", api_endpoint=chat_model.api_endpoint,
                           api_key_env="", description="Quick and cheap.")

    signed_in.post(send_url(conversation), {"content": "hi", "model": other.pk}, headers=HTMX)

    reply = conversation.messages.get(role=Message.Role.ASSISTANT)
    assert reply.model == other
    conversation.refresh_from_db()
    assert conversation.model == other


@pytest.mark.django_db
def test_the_picker_preselects_the_last_model_and_gives_each_its_description(signed_in, conversation, chat_model):
    other = AIModelFactory(name="other-model", provider="openai_compatible", api_endpoint=chat_model.api_endpoint,
                           api_key_env="", description="Quick <and> cheap.")
    conversation.model = other
    conversation.save()

    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    picker = page.find("select", attrs={"name": "model"})
    assert picker.find("option", selected=True).text == "other-model"
    assert picker.find("option", string="other-model")["data-description"] == "Quick <and> cheap."
    assert page.find(id="model-description").text == "Quick <and> cheap."
    assert "Quick &lt;and&gt; cheap." in str(page.find(id="model-description"))


@pytest.mark.django_db
def test_each_reply_names_the_model_that_wrote_it(signed_in, conversation, chat_model):
    other = AIModelFactory(name="other-model", provider="openai_compatible", api_endpoint=chat_model.api_endpoint, api_key_env="")
    MessageFactory(conversation=conversation, content="q1")
    MessageFactory(conversation=conversation, reply=True, model=chat_model, content="from the first")
    MessageFactory(conversation=conversation, content="q2")
    MessageFactory(conversation=conversation, reply=True, model=other, content="from the second")

    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    assert [who.text for who in page.select("article.assistant .who")] == [chat_model.name, "other-model"]


@pytest.mark.django_db
def test_a_model_that_is_not_usable_cannot_be_chosen(signed_in, conversation, chat_model):
    hidden = AIModelFactory(name="keyless", provider="openai_compatible", api_endpoint=chat_model.api_endpoint,
                            api_key_env="NO_SUCH_KEY_VARIABLE")

    response = signed_in.post(send_url(conversation), {"content": "hi", "model": hidden.pk}, headers=HTMX)

    assert_refused_keeping_the_text(response, "That model is not available. Pick another.", "hi")


# Usage -----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_reply_shows_its_tokens_on_demand(signed_in, conversation, chat_model):
    MessageFactory(conversation=conversation, content="q")
    MessageFactory(conversation=conversation, reply=True, model=chat_model, usage={"prompt_tokens": 120, "completion_tokens": 45})

    page = BeautifulSoup(signed_in.get(conversation.get_absolute_url()).content, "html.parser")

    usage = page.select_one("article.assistant details.usage")
    assert usage.summary.text == "Usage"
    assert "120 prompt tokens · 45 reply tokens" in usage.text


@pytest.mark.django_db
def test_the_account_page_totals_the_last_30_days_per_model(signed_in, user, conversation, chat_model):
    other = AIModelFactory(name="other-model", provider="openai_compatible", api_endpoint=chat_model.api_endpoint, api_key_env="")
    for model, prompt, completion in ((chat_model, 100, 10), (chat_model, 50, 5), (other, 7, 3)):
        MessageFactory(conversation=conversation, reply=True, model=model,
                       usage={"prompt_tokens": prompt, "completion_tokens": completion})
    old = MessageFactory(conversation=conversation, reply=True, model=chat_model, usage={"prompt_tokens": 9999, "completion_tokens": 9999})
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    MessageFactory(conversation=ConversationFactory(model=chat_model), reply=True, model=chat_model,
                   usage={"prompt_tokens": 5000, "completion_tokens": 5000})  # another user's

    page = BeautifulSoup(signed_in.get(reverse("accounts:profile")).content, "html.parser")

    rows = [[cell.text for cell in row.find_all(["th", "td"])] for row in page.select(".usage-table tbody tr")]
    assert rows == [[chat_model.name, "2", "150", "15"], ["other-model", "1", "7", "3"]]


# System prompt ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_new_chat_starts_with_the_users_default_system_prompt(signed_in, user, chat_model):
    user.default_system_prompt = "Answer <briefly>."
    user.save()

    page = BeautifulSoup(signed_in.get(reverse("conversations:new")).content, "html.parser")
    box = page.find("textarea", attrs={"name": "system_prompt"})
    assert box.text.strip() == "Answer <briefly>."
    assert box["form"] == "composer"

    signed_in.post(send_url(), {"content": "hi", "model": chat_model.pk, "system_prompt": "Be terse."}, headers=HTMX)
    conversation = Conversation.objects.get()
    assert conversation.system_prompt == "Be terse."
    assert conversation.system_prompt_tokens > 0


@pytest.mark.django_db
def test_a_conversations_system_prompt_can_be_changed(signed_in, conversation):
    url = reverse("conversations:system_prompt", args=[conversation.public_id])

    response = signed_in.post(url, {"system_prompt": "  Reply in French.  "}, headers=HTMX)

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Reply in French."
    assert conversation.system_prompt_tokens > 0
    assert "Saved." in response.content.decode()


@pytest.mark.django_db
def test_a_system_prompt_that_leaves_no_room_is_refused_with_the_numbers(signed_in, conversation, chat_model):
    chat_model.context_window, chat_model.max_completion_tokens = 2_000, 500
    chat_model.save()
    url = reverse("conversations:system_prompt", args=[conversation.public_id])

    response = signed_in.post(url, {"system_prompt": "word " * 1_500}, headers=HTMX)

    assert response.status_code == 422
    assert re.search(r"This system prompt is [\d,]+ tokens; fake-gpt leaves room for at most [\d,]+", html.unescape(response.content.decode()))
    conversation.refresh_from_db()
    assert conversation.system_prompt == ""


@pytest.mark.django_db
def test_the_default_system_prompt_is_an_account_setting(signed_in, user):
    response = signed_in.post(reverse("accounts:profile"), {"default_system_prompt": "Use metric units."})

    assert response["Location"] == reverse("accounts:profile")
    user.refresh_from_db()
    assert user.default_system_prompt == "Use metric units."
