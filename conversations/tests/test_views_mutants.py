"""Views of the conversations app (conversations/views.py) that mutation testing (docs/mutants.md)
found untested: each test here fails on a mutant that the rest of the suite let survive. The
mutants this file does not kill are explained in docs/mutants-views.md."""

import re

import pytest
from bs4 import BeautifulSoup
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import views
from conversations.models import Message
from conversations.tests.factories import ConversationFactory, MessageFactory

HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.django_db


def page_of(response) -> BeautifulSoup:
    return BeautifulSoup(response.content, "html.parser")


def shown_at(conversation) -> dict:
    """Headers of an htmx request sent from the page of `conversation`."""
    return {**HTMX, "HX-Current-URL": f"http://testserver{conversation.get_absolute_url()}"}


def model_reads(queries, model) -> list[str]:
    """The queries that read `model` by its id alone (a foreign key followed without select_related)."""
    lookup = re.compile(rf'FROM "aimodels_aimodel" WHERE "aimodels_aimodel"\."id" = {model.pk}\b')
    return [query["sql"] for query in queries if lookup.search(query["sql"])]


@pytest.fixture
def turn(conversation):
    """A finished first turn: the question and its reply."""
    question = MessageFactory(conversation=conversation, content="Name a colour.")
    reply = MessageFactory(conversation=conversation, reply=True, content="Blue.")
    return question, reply


# _rate_words: the send rate in the words of the refusal ------------------------------------------
@pytest.mark.parametrize(
    ("rate", "words"),
    [
        ("20/m", "20 messages a minute"),
        ("1/m", "1 message a minute"),
        ("2/s", "2 messages a second"),
        ("1/d", "1 message a day"),
        ("5/10m", "5 messages every 10 minutes"),
        ("4/5m", "4 messages every 5 minutes"),
        ("3/12h", "3 messages every 12 hours"),
        ("7/2d", "7 messages every 2 days"),
        ("100/h", "100 messages an hour"),  # not "a hour"
        ("30/60", "30 messages every 60 seconds"),  # no unit: seconds, as django-ratelimit reads it
        ("10/", "10 messages a second"),
    ],
)
def test_a_send_over_the_rate_names_the_rate_in_words(signed_in, conversation, settings, monkeypatch, rate, words):
    settings.SEND_RATE_PER_USER = rate
    monkeypatch.setattr(views.limits, "seconds_to_wait", lambda *args, **kwargs: 42)  # over the rate, whatever the clock

    response = signed_in.post(
        reverse("conversations:message_create", args=[conversation.public_id]), {"content": "one more"}, headers=HTMX
    )

    assert response.status_code == 429
    assert page_of(response).select_one("#composer ul.nonfield li").get_text() == (
        f"You are sending messages faster than chatter allows ({words}). "
        "You can send again in 42 seconds; your text is kept."
    )


# _refused: why nothing was done, in the alert line -----------------------------------------------
def test_a_refused_change_of_version_answers_the_alert_line_in_place(signed_in, conversation, turn):
    _, reply = turn
    reply.version_add(role="assistant", status="pending", model=conversation.model)  # being written

    response = signed_in.post(
        reverse("conversations:message_show", args=[conversation.public_id, reply.pk]), headers=HTMX
    )

    assert response.status_code == 409
    assert (response["HX-Retarget"], response["HX-Reswap"]) == ("#chat-alert", "innerHTML")
    assert [p.get_text() for p in page_of(response).select("p.problem")] == [
        "A reply is still being written. Wait for it to finish, or press Stop."
    ]


# _composer_refused: the composer again, in place ------------------------------------------------
def test_a_refused_message_answers_the_composer_of_its_conversation_in_place(signed_in, conversation):
    url = reverse("conversations:message_create", args=[conversation.public_id])

    response = signed_in.post(url, {"content": "   "}, headers=HTMX)

    assert response.status_code == 422
    assert (response["HX-Retarget"], response["HX-Reswap"]) == ("#composer", "outerHTML")
    composer = page_of(response).find("form", id="composer")
    assert (composer["hx-post"], composer["action"]) == (url, url)  # the next try goes to the same conversation
    assert not Message.objects.exists()


# _arranged: the answer to a pin or an archive ---------------------------------------------------
def pin(client, conversation, data: dict, headers: dict):
    return client.post(reverse("conversations:pin", args=[conversation.public_id]), {"pinned": "on", **data}, headers=headers)


def test_a_pin_sent_with_a_search_too_long_to_run_answers_the_whole_list(signed_in, user, chat_model):
    older = ConversationFactory(user=user, model=chat_model, title="Older")
    ConversationFactory(user=user, model=chat_model, title="Newer")

    response = pin(signed_in, older, {"q": "a" * 201}, HTMX)  # the search box never sends one: a hand-made request

    assert response.status_code == 200
    listed = page_of(response).find("ul", id="conversation-list", attrs={"hx-swap-oob": "true"})
    assert [a.get_text() for a in listed.select(".item-title")] == ["Older", "Newer"]  # pinned, then the rest


def test_a_pin_marks_the_conversation_on_screen_in_the_list_it_answers(signed_in, user, chat_model):
    shown = ConversationFactory(user=user, model=chat_model, title="Shown")
    other = ConversationFactory(user=user, model=chat_model, title="Other")

    response = pin(signed_in, other, {}, shown_at(shown))

    current = page_of(response).select("#conversation-list a[aria-current=page]")
    assert [a.get_text() for a in current] == ["Shown"]


def test_the_header_a_pin_answers_has_forms_that_can_be_sent(signed_in, user, chat_model):
    shown = ConversationFactory(user=user, model=chat_model, title="Shown")

    response = pin(signed_in, shown, {}, shown_at(shown))

    header = page_of(response).find("header", id="chat-title", attrs={"hx-swap-oob": "true"})
    forms = header.select("form[method=post]")
    assert [form["action"] for form in forms][:2] == [
        reverse("conversations:pin", args=[shown.public_id]), reverse("conversations:archive", args=[shown.public_id])
    ]
    assert all(form.find("input", attrs={"name": "csrfmiddlewaretoken"})["value"] for form in forms)


# SidebarPage.empty: a renamed row stays marked as the one on screen ------------------------------
def test_renaming_the_conversation_on_screen_keeps_its_row_marked_current(signed_in, conversation):
    response = signed_in.post(
        reverse("conversations:rename", args=[conversation.public_id]), {"title": "New name"}, headers=shown_at(conversation)
    )

    row = page_of(response).find("li", id=f"conversation-{conversation.public_id}")
    assert row.select_one("a.item-link")["aria-current"] == "page"


# Lookups read a conversation with its model: no query of its own ---------------------------------
def test_opening_a_conversation_reads_its_model_with_it(signed_in, conversation):
    with CaptureQueriesContext(connection) as queries:
        response = signed_in.get(conversation.get_absolute_url())

    assert page_of(response).select_one("#chat-title .badge.model").get_text() == conversation.model.name
    assert model_reads(queries, conversation.model) == []


def test_renaming_from_the_header_reads_the_model_with_the_conversation(signed_in, conversation):
    url = reverse("conversations:rename_title", args=[conversation.public_id])
    with CaptureQueriesContext(connection) as queries:
        response = signed_in.post(url, {"title": "New name"}, headers=shown_at(conversation))

    assert page_of(response).select_one("#chat-title .badge.model").get_text() == conversation.model.name
    assert model_reads(queries, conversation.model) == []


def test_editing_a_message_reads_the_model_with_the_message(signed_in, conversation, turn):
    question, _ = turn
    url = reverse("conversations:message_edit", args=[conversation.public_id, question.pk])
    with CaptureQueriesContext(connection) as queries:
        response = signed_in.post(url, {"content": "Name a fruit."}, headers=HTMX)

    assert response.status_code == 200
    assert model_reads(queries, conversation.model) == []


# _question_for: a message is edited through its own conversation's address only -----------------
def test_a_message_cannot_be_edited_through_another_conversation_of_the_same_user(signed_in, user, conversation, turn):
    question, _ = turn
    other = ConversationFactory(user=user, model=conversation.model)
    url = reverse("conversations:message_edit", args=[other.public_id, question.pk])

    assert signed_in.get(url, headers=HTMX).status_code == 404
    assert signed_in.post(url, {"content": "Name a fruit."}, headers=HTMX).status_code == 404
    assert Message.objects.filter(conversation=conversation).count() == 2


# _excerpt: the line of a matching message the sidebar's search shows ------------------------------
# Queries of one or two letters: a substring search on PostgreSQL too (full-text takes words of 3 and more).
def snippet(client, conversation, q: str) -> tuple[str, list[str]]:
    """The search result's line of text for `conversation`, and its marked parts."""
    response = client.get(reverse("conversations:list"), {"q": q}, headers=HTMX)
    line = page_of(response).find("li", id=f"conversation-{conversation.public_id}").select_one(".item-snippet")
    return line.get_text(), [mark.get_text() for mark in line.select("mark")]


@pytest.fixture
def found(user, chat_model):
    """found(text): a conversation (its title matching no query here) with one message of that text."""

    def make(text: str):
        conversation = ConversationFactory(user=user, model=chat_model, title="Found")
        MessageFactory(conversation=conversation, content=text)
        return conversation

    return make


def test_a_match_far_into_a_message_is_shown_from_a_word_before_it_to_a_word_end(signed_in, found):
    conversation = found(
        "We walked along the river for hours, talking about the old town, the bridges, and the trams, until we "
        "found zq at last, a tiny bar with a blue door and a cat asleep on the counter, where we stayed until the "
        "last train home."
    )

    assert snippet(signed_in, conversation, "zq") == (
        "…and the trams, until we found zq at last, a tiny bar with a blue door and a cat asleep on the counter, "
        "where we stayed…",
        ["zq"],
    )


def test_a_word_too_long_before_the_match_is_cut_20_characters_before_the_cut(signed_in, found):
    conversation = found("See https://example.com/a/very/long/path/with/no/spaces/in/it/at/all zq and more words after the match here.")

    assert snippet(signed_in, conversation, "zq") == (
        "….com/a/very/long/path/with/no/spaces/in/it/at/all zq and more words after the match here.", ["zq"]
    )


def test_a_message_of_exactly_the_lines_length_is_shown_whole(signed_in, found):
    text = "zq" + " abcd" * 23 + " ab"
    assert len(text) == views.SNIPPET_LENGTH
    conversation = found(text)

    assert snippet(signed_in, conversation, "zq") == (text, ["zq"])


def test_a_match_longer_than_the_line_far_into_a_message_is_shown_whole(signed_in, found):
    phrase = " ".join(["zq"] * 40)
    conversation = found(f"We talked about many things before we got to the list: {phrase} and then some more words after it.")

    assert snippet(signed_in, conversation, phrase) == (f"…things before we got to the list: {phrase}…", [phrase])


def test_a_word_too_long_after_the_match_is_cut_at_the_lines_length(signed_in, found):
    conversation = found("Some words then zq" + "Y" * 150)

    assert snippet(signed_in, conversation, "zq") == ("Some words then zq" + "Y" * 102 + "…", ["zq"])


def test_a_word_too_long_for_the_line_after_a_match_at_the_start_is_left_out(signed_in, found):
    conversation = found("q " + "Y" * 200)

    assert snippet(signed_in, conversation, "q") == ("q…", ["q"])


def test_a_match_longer_than_the_line_near_the_start_is_shown_whole_and_marked(signed_in, found):
    phrase = " ".join(["zq"] * 45)  # from the 7th character to past the line's length
    conversation = found(f"Note: {phrase} and the rest of the message.")

    assert snippet(signed_in, conversation, phrase) == (f"Note: {phrase}…", [phrase])


# _page_context: the conversation's page ---------------------------------------------------------
def test_a_conversations_page_shows_its_system_prompt_in_its_form(signed_in, conversation):
    conversation.system_prompt = "Reply in French."
    conversation.save()

    form = page_of(signed_in.get(conversation.get_absolute_url())).select_one("#system-prompt form")

    assert form["hx-post"] == reverse("conversations:system_prompt", args=[conversation.public_id])
    assert form.find("textarea", attrs={"name": "system_prompt"}).get_text().strip() == "Reply in French."


def test_a_conversations_page_reads_the_offered_models_once(signed_in, conversation, turn):
    with CaptureQueriesContext(connection) as queries:
        response = signed_in.get(conversation.get_absolute_url())

    assert response.status_code == 200
    offered = [query["sql"] for query in queries if query["sql"].startswith('SELECT "aimodels_aimodel"')]
    assert len(offered) == 1  # the composer's picker and the Regenerate menus share it


# _reply_for: a reply, not a question ------------------------------------------------------------
def test_retry_stop_and_regenerate_of_a_users_message_are_404(signed_in, conversation, turn):
    question, _ = turn
    for name in ("reply_retry", "reply_stop", "reply_regenerate"):
        response = signed_in.post(reverse(f"conversations:{name}", args=[conversation.public_id, question.pk]), headers=HTMX)
        assert response.status_code == 404, name
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_a_regeneration_reads_the_reply_with_its_conversation(signed_in, conversation, turn):
    _, reply = turn
    url = reverse("conversations:reply_regenerate", args=[conversation.public_id, reply.pk])
    with CaptureQueriesContext(connection) as queries:
        response = signed_in.post(url, {"model": conversation.model.pk}, headers=HTMX)

    assert response.status_code == 200
    by_id = re.compile(rf'FROM "conversations_conversation" WHERE "conversations_conversation"\."id" = {conversation.pk} LIMIT 21')
    assert [query["sql"] for query in queries if by_id.search(query["sql"])] == []


def test_a_retry_reads_the_reply_with_its_model(signed_in, conversation, turn):
    _, reply = turn
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.FAILED, error="Boom.")
    url = reverse("conversations:reply_retry", args=[conversation.public_id, reply.pk])
    with CaptureQueriesContext(connection) as queries:
        response = signed_in.post(url, headers=HTMX)

    assert response.status_code == 200
    assert len(model_reads(queries, conversation.model)) == 1  # after the reset, to show it; none before


# _current_id: the conversation on screen is the one of the page htmx names ---------------------
def test_only_an_htmx_request_names_the_conversation_on_screen(signed_in, conversation):
    headers = {"HX-Current-URL": f"http://testserver{conversation.get_absolute_url()}"}  # no HX-Request

    listed = page_of(signed_in.get(reverse("conversations:list"), headers=headers))

    assert listed.select("a[aria-current]") == []


def test_only_a_conversations_own_page_marks_it_on_screen(signed_in, conversation):
    export = reverse("conversations:export_json", args=[conversation.public_id])  # its address, not its page

    listed = page_of(signed_in.get(reverse("conversations:list"), headers={**HTMX, "HX-Current-URL": f"http://testserver{export}"}))

    assert listed.select("a[aria-current]") == []
    assert listed.select_one(f"#conversation-{conversation.public_id} a.item-title").get_text() == conversation.title


# _relayed: what a page opened mid-reply gets at once ---------------------------------------------
# Tested directly: how many events the relay holds when a page connects depends on how the job
# batches the model's output, which no view-level test can fix exactly.
def test_a_page_opened_after_two_events_gets_them_as_a_snapshot_and_a_tail():
    from conversations.relay import Event

    events = [Event(4, "delta", {"text": "Hel"}), Event(5, "delta", {"text": "lo"})]

    assert views._relayed(events, fresh=True) == (
        "event: snapshot\ndata: \n\n" "event: tail\ndata: Hello\nid: 5\n\n"
    )


def test_a_page_opened_after_several_blocks_gets_them_joined_and_the_text_after_them():
    from conversations.relay import Event

    events = [
        Event(1, "block", {"html": "<p>One.</p>", "rest": ""}),
        Event(2, "block", {"html": "<p>Two.</p>", "rest": "Th"}),
        Event(3, "delta", {"text": "ree & <four>"}),
    ]

    assert views._relayed(events, fresh=True) == (
        "event: snapshot\ndata: <p>One.</p><p>Two.</p>\n\n" "event: tail\ndata: Three &amp; &lt;four&gt;\nid: 3\n\n"
    )


# _escaped: streamed text escapes what HTML needs, and only that ----------------------------------
@pytest.fixture
def pending_reply(conversation):
    MessageFactory(conversation=conversation, content="Quote me")
    return MessageFactory(conversation=conversation, pending=True)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_streamed_text_escapes_markup_and_keeps_quotes(client_in, pending_reply, fake_upstream):
    from bench.fake_upstream import FakeReply
    from conversations.tests.test_stream import read_all

    fake_upstream.script(FakeReply(text="""He said "hi" & 'bye' <b>""", chunks=1))

    events = await read_all(client_in, pending_reply)

    assert [data for name, data in events if name == "delta"] == ["""He said "hi" &amp; 'bye' &lt;b&gt;"""]


# _finished_bubble: the bubble of the stream's 'done' event ---------------------------------------
@pytest.fixture
def failed_then_answered(conversation):
    """A failed reply with a later turn after it on the branch."""
    MessageFactory(conversation=conversation, content="First?")
    failed = MessageFactory(conversation=conversation, reply=True, content="", status=Message.Status.FAILED, error="Boom.")
    MessageFactory(conversation=conversation, content="Second?")
    MessageFactory(conversation=conversation, reply=True, content="Yes.")
    return failed


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_the_finished_bubble_of_a_failed_reply_before_the_branch_end_has_no_retry(client_in, failed_then_answered):
    from conversations.tests.test_stream import read_all

    events = await read_all(client_in, failed_then_answered)

    assert [name for name, _ in events] == ["done"]
    bubble = BeautifulSoup(events[0][1], "html.parser")
    assert bubble.select_one("p.problem").get_text() == "Boom."
    assert bubble.find("button", class_="retry") is None


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_the_finished_bubble_offers_regenerate_with_the_offered_models(client_in, failed_then_answered, chat_model):
    from conversations.tests.test_stream import read_all

    events = await read_all(client_in, failed_then_answered)

    menu = BeautifulSoup(events[-1][1], "html.parser").select_one("details.regenerate form")
    assert [button.get_text() for button in menu.find_all("button")] == [chat_model.name]


# _last_event_id: a reconnect's Last-Event-ID is ours only when it has at most 9 digits -----------
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections", "any_relay")
async def test_a_last_event_id_of_ten_digits_starts_from_the_beginning(client_in, pending_reply, fake_upstream):
    from bench.fake_upstream import FakeReply
    from conversations.tests.test_relay import WORDS, read, text_shown
    from conversations.tests.test_stream import stream_url

    fake_upstream.script(FakeReply(text=WORDS))

    events, _ = await read(await client_in.get(stream_url(pending_reply), headers={"Last-Event-ID": "1" * 10}))

    assert text_shown(events) == WORDS


# _sse: every kind of line break in a text starts a data line of the same event ------------------
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_each_line_break_of_streamed_text_starts_one_data_line(client_in, pending_reply, fake_upstream):
    from bench.fake_upstream import FakeReply
    from conversations.tests.test_stream import read_all

    fake_upstream.script(FakeReply(text="a\r\nb\rc\nd", chunks=1))

    events = await read_all(client_in, pending_reply)

    assert [data for name, data in events if name == "delta"] == ["a\nb\nc\nd"]


# _followed: a quiet moment on the relay gets a comment line, and the page stays on the relay -----
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_quiet_moment_mid_reply_keeps_the_page_on_the_relay(
    client_in, pending_reply, fake_upstream, upstream_gate, monkeypatch
):
    import asyncio

    from bench.fake_upstream import FakeReply
    from conversations.tests.test_relay import WORDS, parse, text_shown
    from conversations.tests.test_stream import open_stream

    monkeypatch.setattr(views, "KEEPALIVE_SECONDS", 0.05)  # a comment line as soon as it is quiet
    fake_upstream.script(FakeReply(text=WORDS, hang_after=3))  # then quiet until the gate opens
    chunks = aiter((await open_stream(client_in, pending_reply)).streaming_content)
    raw = ""
    while ": still being written" not in raw:
        raw += (await asyncio.wait_for(anext(chunks), 60)).decode()
    upstream_gate.set()
    raw += "".join([chunk.decode() async for chunk in chunks])

    assert views._RELAY_LEFT not in raw  # never dropped to be read again from the database's checkpoints
    assert text_shown(parse(raw)) == WORDS


# _followed: a page that goes away mid-stream (the server closes its events) ----------------------
@pytest.mark.asyncio
async def test_a_page_gone_right_after_a_batch_closes_its_stream_cleanly():
    import asyncio

    from conversations.relay import Event

    async def batches():
        yield [Event(1, "delta", {"text": "Hi"})]
        await asyncio.Event().wait()  # nothing more for now

    frames = views._followed(batches(), fresh=False)
    assert await anext(frames) == "event: delta\ndata: Hi\nid: 1\n\n"

    await frames.aclose()  # raises nothing: no read of the relay was pending


@pytest.mark.asyncio
async def test_a_page_gone_while_the_relay_is_quiet_stops_reading_the_relay(monkeypatch):
    import asyncio

    monkeypatch.setattr(views, "KEEPALIVE_SECONDS", 0)  # a comment line at once
    reading, read_cancelled = asyncio.Event(), asyncio.Event()

    async def batches():
        reading.set()
        try:
            await asyncio.Event().wait()  # the relay is quiet
        except asyncio.CancelledError:
            read_cancelled.set()
            raise
        yield []

    frames = views._followed(batches(), fresh=False)
    assert await anext(frames) == ": still being written\n\n"
    await asyncio.wait_for(reading.wait(), 60)  # its read of the relay is under way

    await frames.aclose()

    await asyncio.wait_for(read_cancelled.wait(), 60)  # and is not left running for a page that went


# _written: a reconnect read from the checkpoints first drops what the relay had shown ------------
async def another_workers_stream(client, reply: Message, content: str, monkeypatch, **headers):
    """The stream of `reply` while another worker's job writes it (this process's relay does not
    carry it), with `content` so far: read from the checkpoints, looked at every 0.02 s."""
    from conversations import services
    from conversations.tests.test_stream import stream_url

    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.STREAMING, content=content)
    return aiter((await client.get(stream_url(reply), headers=headers)).streaming_content)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_reconnect_to_a_reply_the_relay_does_not_carry_drops_the_relayed_text_first(
    client_in, pending_reply, monkeypatch
):
    # Had the relay's first event.
    chunks = await another_workers_stream(client_in, pending_reply, "Half", monkeypatch, **{"Last-Event-ID": "1"})
    assert (await anext(chunks)).startswith(b": stream open")

    assert (await anext(chunks)).decode() == views._RELAY_LEFT
    assert (await anext(chunks)).decode() == "event: tail\ndata: Half\n\n"
    await Message.objects.filter(pk=pending_reply.pk).aupdate(status=Message.Status.COMPLETE)
    assert [chunk async for chunk in chunks][-1].startswith(b"event: done\n")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_reply_read_from_the_checkpoints_before_any_text_starts_with_an_empty_tail(
    client_in, pending_reply, monkeypatch
):
    chunks = await another_workers_stream(client_in, pending_reply, "", monkeypatch)  # no text yet
    assert (await anext(chunks)).startswith(b": stream open")

    assert (await anext(chunks)).decode() == "event: tail\ndata: \n\n"  # the bubble shows what is there: nothing
    await Message.objects.filter(pk=pending_reply.pk).aupdate(status=Message.Status.COMPLETE)
    assert [chunk async for chunk in chunks][-1].startswith(b"event: done\n")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_reply_read_from_the_checkpoints_shows_its_web_lookups_as_each_checkpoint_has_them(
    client_in, pending_reply, monkeypatch
):
    import asyncio

    from conversations.models import Step

    searching = Step(kind="search", query="owls")
    await Message.objects.filter(pk=pending_reply.pk).aupdate(steps=[searching.as_json()])
    chunks = await another_workers_stream(client_in, pending_reply, "", monkeypatch)
    assert (await anext(chunks)).startswith(b": stream open")

    steps = page_of_html((await anext(chunks)).decode(), "steps")
    assert steps.get_text(strip=True) == searching.headline  # "Searching the web for owls…"
    assert (await anext(chunks)).decode() == "event: tail\ndata: \n\n"
    # The next look finds nothing new: a comment line, not the lookups again.
    assert (await asyncio.wait_for(anext(chunks), 60)).decode() == ": still being written\n\n"
    found = Step(kind="search", query="owls", status="done", text="Owls hunt at night.")
    await Message.objects.filter(pk=pending_reply.pk).aupdate(steps=[found.as_json()], content="Owls")

    steps = page_of_html((await anext(chunks)).decode(), "steps")
    assert steps.find("summary").get_text() == found.headline and "Owls hunt at night." in steps.get_text()
    assert (await anext(chunks)).decode() == "event: tail\ndata: Owls\n\n"
    await Message.objects.filter(pk=pending_reply.pk).aupdate(content="Owls hunt")  # the text alone
    assert (await anext(chunks)).decode() == "event: tail\ndata: Owls hunt\n\n"
    await Message.objects.filter(pk=pending_reply.pk).aupdate(status=Message.Status.COMPLETE)
    assert (await anext(chunks)).startswith(b"event: done\n")  # nothing more from that look


def page_of_html(chunk: str, event: str) -> BeautifulSoup:
    """The HTML an event carries (one event per chunk)."""
    from conversations.tests.test_relay import parse

    [(name, data, _)] = parse(chunk)
    assert name == event
    return BeautifulSoup(data, "html.parser")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_page_that_restarts_a_reply_follows_it_on_the_relay_from_its_first_event(
    client_in, pending_reply, fake_upstream, monkeypatch
):
    from bench.fake_upstream import FakeReply
    from conversations import services
    from conversations.tests.test_relay import parse, text_shown
    from conversations.tests.test_stream import first_claim_fails, open_stream

    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0.02)
    claims = first_claim_fails(monkeypatch)  # the job's claim finds no database connection free, once
    fake_upstream.script(FakeReply(text="Second time lucky, in several pieces.", chunks=4))

    response = await open_stream(client_in, pending_reply)
    events = parse("".join([chunk.decode() async for chunk in response.streaming_content]))

    assert len(claims) == 2
    written = [event for event in events if event[0] != "done"]
    assert [event_id for *_, event_id in written if event_id]  # from the relay, which numbers its events
    assert text_shown(written) == "Second time lucky, in several pieces."


# _reply_to_stream: a reply's stream, at its own conversation's address only ---------------------
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_there_is_no_stream_of_a_users_message_nor_of_a_reply_at_another_conversations_address(
    client_in, turn, user, conversation
):
    from asgiref.sync import sync_to_async

    question, reply = turn
    other = await sync_to_async(ConversationFactory)(user=user, model=conversation.model)

    mine = reverse("conversations:reply_stream", args=[conversation.public_id, question.pk])
    elsewhere = reverse("conversations:reply_stream", args=[other.public_id, reply.pk])
    assert (await client_in.get(mine)).status_code == 404
    assert (await client_in.get(elsewhere)).status_code == 404


@pytest.mark.django_db
def test_a_reply_to_stream_is_read_with_its_conversation_and_model_in_one_query(user):
    reply = MessageFactory(conversation=ConversationFactory(user=user), reply=True)

    with CaptureQueriesContext(connection) as queries:
        found = views._reply_to_stream(user, reply.conversation.public_id, reply.pk)
        seen = (found.conversation.title, found.model.name)  # what the stream reads of them

    assert seen == (reply.conversation.title, reply.model.name)
    assert len(queries) == 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_quiet_moment_on_the_checkpoints_sends_a_comment_and_leaves_the_events_whole(
    client_in, pending_reply, monkeypatch
):
    from conversations.tests.test_stream import parse_events

    chunks = await another_workers_stream(client_in, pending_reply, "Half", monkeypatch)
    raw = ""
    while "event: tail" not in raw:  # the text so far
        raw += (await anext(chunks)).decode()
    raw += (await anext(chunks)).decode()  # then nothing new: a comment line
    await Message.objects.filter(pk=pending_reply.pk).aupdate(status=Message.Status.COMPLETE)
    raw += "".join([chunk.decode() async for chunk in chunks])

    assert re.search(r"event: tail\ndata: Half\n\n: ", raw)  # a comment line, which no page shows
    assert [name for name, _ in parse_events(raw)] == ["tail", "done"]
