"""Rules of the conversations app that mutation testing (make mutants, docs/mutants.md) found untested:
each test here fails on a mutant that the rest of the suite let survive."""

import pytest

from conversations.context import select_context

FITTING = {
    "system_tokens": 0,
    "history": [(0, 10)],
    "context_window": 1000,
    "max_completion_tokens": 100,
    "margin": 10,
}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"history": []}, "history must contain at least the newest user message"),
        ({"context_window": 0}, "context_window must be positive (got 0)"),
        ({"system_tokens": -1}, "system_tokens must not be negative (got -1)"),
        ({"max_completion_tokens": -2}, "max_completion_tokens must not be negative (got -2)"),
        ({"margin": -3}, "margin must not be negative (got -3)"),
        ({"history": [(0, -4)]}, "token count of history[0] must not be negative (got -4)"),
        ({"history": [(0, -5), (1, 10)]}, "token count of history[0] must not be negative (got -5)"),
    ],
)
def test_a_caller_s_mistake_is_refused_naming_the_argument_and_its_value(overrides, message):
    with pytest.raises(ValueError) as raised:
        select_context(**FITTING | overrides)

    assert str(raised.value) == message


@pytest.mark.parametrize("zero", ["system_tokens", "max_completion_tokens", "margin"])
def test_zero_is_a_count(zero):
    plan = select_context(**FITTING | {zero: 0})

    assert plan.keys == (0,)


# MessageForm: a new conversation's instructions take their share of the model's window ----------
@pytest.fixture
def small_model(db):
    from aimodels.tests.factories import AIModelFactory

    # Room for messages: 1,200 - 100 - 256 (margin) - 3 (reply priming) = 841 tokens.
    return AIModelFactory(api_key_env="", context_window=1_200, max_completion_tokens=100, is_default=True)


def new_conversation_form(model, content: str, system_prompt: str):
    from accounts.tests.factories import UserFactory
    from conversations.forms import MessageForm

    data = {"content": content, "model": model.pk, "system_prompt": system_prompt}
    return MessageForm(data, user=UserFactory())


def test_a_new_conversations_instructions_leave_less_room_for_its_first_message(small_model):
    from conversations import tokens

    encoding = tokens.encoding_for(small_model.deployment_name)
    message = ("word " * 400).strip()  # about 400 tokens: fits alone
    prompt = "Answer as a pirate would. " * 80  # about 560 tokens: together they do not
    needed = tokens.message_tokens(role="user", content=message, encoding=encoding)
    prompt_tokens = tokens.message_tokens(role="system", content=prompt.strip(), encoding=encoding)
    assert needed <= 841 < needed + prompt_tokens  # the case this test is about

    assert new_conversation_form(small_model, message, "").is_valid()
    refused = new_conversation_form(small_model, message, prompt)
    assert not refused.is_valid()
    assert refused.errors["content"] == [
        f"This message is {needed:,} tokens; {small_model.name} accepts at most {841 - prompt_tokens:,} "
        "in one message. Shorten it or split it up."
    ]


# SystemPromptForm: instructions fit the model's window with room for a message and its reply ---
PROMPT = ("Answer briefly, in plain words, and say when you are unsure. " * 30).strip()


def prompt_form(model, text: str = PROMPT):
    from conversations.forms import SystemPromptForm
    from conversations.tests.factories import ConversationFactory

    return SystemPromptForm({"system_prompt": text}, instance=ConversationFactory(model=model, system_prompt=""))


def prompt_tokens(model) -> int:
    from conversations import tokens

    return tokens.message_tokens(role="system", content=PROMPT, encoding=tokens.encoding_for(model.deployment_name))


def window_with_room_for(count: int, completion: int) -> int:
    """The context window that leaves exactly `count` tokens for the instructions."""
    from conversations.context import DEFAULT_MARGIN
    from conversations.forms import SHORTEST_MESSAGE_TOKENS
    from conversations.tokens import REPLY_PRIMING

    return count + completion + DEFAULT_MARGIN + REPLY_PRIMING + SHORTEST_MESSAGE_TOKENS


@pytest.mark.django_db
def test_instructions_that_fill_the_room_exactly_are_kept_and_one_token_more_is_refused_with_the_numbers():
    from aimodels.tests.factories import AIModelFactory

    count = prompt_tokens(AIModelFactory.build())
    model = AIModelFactory(api_key_env="", max_completion_tokens=100, context_window=window_with_room_for(count, 100))

    assert prompt_form(model).is_valid()

    model.context_window -= 1
    model.save()
    refused = prompt_form(model)
    assert not refused.is_valid()
    error = refused.errors.as_data()["system_prompt"][0]
    assert error.code == "too_long"
    assert error.messages == [
        f"This system prompt is {count:,} tokens; {model.name} leaves room for at most {count - 1:,} "
        "beside a message and its reply. Shorten it."
    ]


@pytest.mark.django_db
def test_a_model_with_no_room_at_all_says_at_most_zero():
    from aimodels.tests.factories import AIModelFactory

    model = AIModelFactory(api_key_env="", max_completion_tokens=100, context_window=200)  # room below 0
    refused = prompt_form(model)
    assert not refused.is_valid()
    assert "leaves room for at most 0 beside" in refused.errors["system_prompt"][0]


# ConversationSearchForm: a cursor past any date is refused with the rule --------------------------
def test_a_cursor_past_any_date_is_refused_as_not_a_place_in_the_list():
    from conversations.forms import ConversationSearchForm

    form = ConversationSearchForm({"cursor": f"{'9' * 18}-5"})  # some 31,000 years on
    assert not form.is_valid()
    error = form.errors.as_data()["cursor"][0]
    assert (error.code, error.messages) == ("invalid", ["Not a place in the list."])


# MessageForm: the picker, the rules of a sent message, and the room a message has ----------------
@pytest.fixture
def usable_model(db):
    from aimodels.tests.factories import AIModelFactory

    return AIModelFactory(api_key_env="", is_default=True)


def test_the_picker_lists_the_default_model_first_then_the_others_by_name(db):
    from accounts.tests.factories import UserFactory
    from aimodels.tests.factories import AIModelFactory
    from conversations.forms import MessageForm

    zeta, alpha, default = (AIModelFactory(name=n, api_key_env="") for n in ("zeta", "alpha", "middle"))
    default.make_default()

    offered = [value.instance for value, _ in MessageForm(user=UserFactory()).fields["model"].choices]
    assert offered == [default, alpha, zeta]


def test_the_model_may_be_given_as_a_model_rather_than_its_id(usable_model):
    from accounts.tests.factories import UserFactory
    from conversations.forms import MessageForm

    form = MessageForm({"content": "Hello", "model": usable_model}, user=UserFactory())
    assert form.is_valid(), form.errors
    assert form.cleaned_data["model"] == usable_model


def test_a_model_not_on_offer_is_refused_with_the_invalid_choice_code(usable_model):
    from accounts.tests.factories import UserFactory
    from conversations.forms import MessageForm

    form = MessageForm({"content": "Hello", "model": usable_model.pk + 1000}, user=UserFactory())
    assert not form.is_valid()
    error = form.errors.as_data()["model"][0]
    assert (error.code, error.messages) == ("invalid_choice", ["That model is not available. Pick another."])


def test_a_new_conversation_needs_a_model(usable_model):
    from accounts.tests.factories import UserFactory
    from conversations.forms import MessageForm

    form = MessageForm({"content": "Hello"}, user=UserFactory())
    assert not form.is_valid()
    assert form.errors.as_data()["model"][0].code == "required"


def test_a_message_over_the_length_limit_is_refused_with_the_max_length_code(usable_model, settings):
    from accounts.tests.factories import UserFactory
    from conversations.forms import MessageForm

    settings.MESSAGE_MAX_LENGTH = 10
    form = MessageForm({"content": "x" * 11, "model": usable_model.pk}, user=UserFactory())
    assert not form.is_valid()
    error = form.errors.as_data()["content"][0]
    assert (error.code, error.messages) == (
        "max_length",
        ["This message is 11 characters; the limit is 10. Shorten it or split it up."],
    )


def test_a_message_while_a_reply_is_written_here_is_refused_with_what_to_do(usable_model):
    from conversations.forms import MessageForm
    from conversations.tests.factories import ConversationFactory, MessageFactory

    conversation = ConversationFactory(model=usable_model)
    MessageFactory(conversation=conversation, pending=True)

    form = MessageForm({"content": "Hello"}, user=conversation.user, conversation=conversation)
    assert not form.is_valid()
    assert form.non_field_errors() == ["A reply is still being written. Wait for it to finish, or press Stop."]


def test_a_message_over_the_replies_at_once_is_refused_with_what_to_do(usable_model, settings):
    from conversations.forms import MessageForm
    from conversations.tests.factories import ConversationFactory, MessageFactory

    settings.REPLIES_AT_ONCE_PER_USER = 1
    elsewhere = MessageFactory(conversation__model=usable_model, pending=True).conversation
    conversation = ConversationFactory(model=usable_model, user=elsewhere.user)

    form = MessageForm({"content": "Hello"}, user=conversation.user, conversation=conversation)
    assert not form.is_valid()
    assert form.non_field_errors() == [
        "1 of your replies are being written in other conversations; at most 1 at once. "
        "Wait for one to finish, or stop one."
    ]


def too_long_message(model) -> tuple[str, int]:
    from conversations import tokens

    message = ("word " * 900).strip()  # about 900 tokens: more than the 841 of small_model
    return message, tokens.message_tokens(role="user", content=message, encoding=tokens.encoding_for(model.deployment_name))


def test_without_instructions_a_new_conversations_first_message_has_the_whole_room(small_model):
    message, needed = too_long_message(small_model)

    refused = new_conversation_form(small_model, message, "")
    assert not refused.is_valid()
    assert refused.errors["content"] == [
        f"This message is {needed:,} tokens; {small_model.name} accepts at most 841 in one message. "
        "Shorten it or split it up."
    ]


def test_refused_instructions_take_no_room_from_the_first_message(small_model):
    message, needed = too_long_message(small_model)

    refused = new_conversation_form(small_model, message, "x" * 8001)  # over the field's 8,000 characters
    assert not refused.is_valid()
    assert "system_prompt" in refused.errors
    assert refused.errors["content"] == [
        f"This message is {needed:,} tokens; {small_model.name} accepts at most 841 in one message. "
        "Shorten it or split it up."
    ]


# MessageEditForm: the edit form beside the composer ---------------------------------------------
def test_the_edit_form_starts_with_the_message_and_ids_of_its_own(usable_model):
    from conversations.forms import MessageEditForm
    from conversations.tests.factories import MessageFactory

    message = MessageFactory(conversation__model=usable_model, content="The first words.")
    form = MessageEditForm(user=message.conversation.user, message=message)

    assert form["content"].value() == "The first words."
    assert form["content"].id_for_label == f"edit-{message.pk}-content"


# EarlierMessagesForm: the message a page ends at comes with its date --------------------------------
def test_the_message_an_earlier_page_ends_at_comes_with_its_date(usable_model, django_assert_num_queries):
    from conversations.forms import EarlierMessagesForm
    from conversations.tests.factories import MessageFactory

    message = MessageFactory(conversation__model=usable_model)
    form = EarlierMessagesForm({"before": message.pk}, conversation=message.conversation)
    assert form.is_valid()

    with django_assert_num_queries(0):
        assert form.cleaned_data["before"].created_at == message.created_at


# Sidebar: a title's control characters; a search's spaces -----------------------------------------
def test_a_title_with_a_control_character_is_refused_with_the_rule(db):
    from conversations.forms import ConversationRenameForm

    form = ConversationRenameForm({"title": "Tab\there"})
    assert not form.is_valid()
    error = form.errors.as_data()["title"][0]
    assert (error.code, error.messages) == (
        "control_characters",
        ["Control characters (tabs, line breaks and the like) cannot be used here."],
    )


def test_a_search_s_runs_of_spaces_become_one_space():
    from conversations.forms import ConversationSearchForm

    form = ConversationSearchForm({"q": "  red \u00a0 wine  "})
    assert form.is_valid()
    assert form.cleaned_data["q"] == "red wine"


# conversations/models.py survivors ---------------------------------------------------------------
def test_a_failed_lookup_tells_the_model_what_it_looked_for_and_why_it_failed():
    from conversations.models import Step

    step = Step(kind="weather", query="Lisbon", status="failed", error="The weather service did not answer.")

    assert step.context_text() == (
        "chatter tried to look up Lisbon on the web for this message, but it failed: "
        "The weather service did not answer. Answer without it."
    )


def test_a_lookup_that_never_finished_is_told_to_the_model_as_not_finished():
    from conversations.models import Step

    step = Step(kind="search", query="tide times", status="pending")  # its reply was cut off mid-lookup

    assert step.context_text() == (
        "chatter tried to look up tide times on the web for this message, but it failed: "
        "it did not finish. Answer without it."
    )


def test_a_first_message_of_exactly_the_title_length_is_the_whole_title():
    from conversations.models import TITLE_LENGTH, Conversation

    text = "x" * TITLE_LENGTH

    assert Conversation().title_from(text) == text


def test_a_title_cut_at_a_space_ends_with_the_word_before_it():
    from conversations.models import TITLE_LENGTH, Conversation

    text = "a" * (TITLE_LENGTH - 2) + " and the rest of a long first message"  # the cut ends on the space

    assert Conversation().title_from(text) == "a" * (TITLE_LENGTH - 2) + "…"


def test_a_message_is_named_by_its_role_and_first_40_characters():
    from conversations.models import Message

    assert str(Message(role="user", content="0123456789" * 5)) == "user: " + "0123456789" * 4


@pytest.fixture
def owner(db):
    from accounts.tests.factories import UserFactory

    return UserFactory()


def usage_rows(user) -> list[tuple]:
    from datetime import timedelta

    from django.utils import timezone

    from conversations.models import Message

    rows = Message.objects.usage_by_model(user=user, since=timezone.now() - timedelta(days=30))
    return [(row["model__name"], row["replies"], row["prompt_tokens"], row["completion_tokens"]) for row in rows]


def test_replies_without_reported_usage_count_zero_tokens(owner):
    from conversations.tests.factories import ConversationFactory, MessageFactory

    conversation = ConversationFactory(user=owner)
    MessageFactory(conversation=conversation, reply=True, usage=None)  # an interrupted reply: no usage

    assert usage_rows(owner) == [(conversation.model.name, 1, 0, 0)]


def test_usage_lists_the_model_that_wrote_the_most_first_whatever_its_name(owner):
    from aimodels.tests.factories import AIModelFactory
    from conversations.tests.factories import ConversationFactory, MessageFactory

    conversation = ConversationFactory(user=owner)
    for name, completion in (("alpha", 5), ("zulu", 50)):
        MessageFactory(conversation=conversation, reply=True, model=AIModelFactory(name=name),
                       usage={"prompt_tokens": 1, "completion_tokens": completion})

    assert usage_rows(owner) == [("zulu", 1, 1, 50), ("alpha", 1, 1, 5)]


# Sidebar search on PostgreSQL (full text): what is found and the snippet shown ---------------------
def on_postgresql() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


only_postgresql = pytest.mark.skipif(not on_postgresql(), reason="full-text search is PostgreSQL's")
MARKS = ("[", "]")


def searched(user, text: str) -> list[tuple[str, str, str | None]]:
    """(title, search_title, search_snippet) of the user's conversations that `text` finds."""
    from conversations.models import Conversation

    found = Conversation.objects.for_user(user).search(text, marks=MARKS).order_by("pk")
    return [(row.title, row.search_title, row.search_snippet) for row in found]


def conversation_saying(user, *contents: str, title: str = "Notes"):
    from conversations.tests.factories import ConversationFactory, MessageFactory

    conversation = ConversationFactory(user=user, title=title)
    for content in contents:
        MessageFactory(conversation=conversation, content=content)
    return conversation


@only_postgresql
def test_a_three_letter_word_is_searched_as_the_start_of_a_word(owner):
    conversation_saying(owner, "Our catalog of parts", title="Parts")
    conversation_saying(owner, "Concatenate the strings", title="Strings")  # "cat" only inside a word

    assert searched(owner, "cat") == [("Parts", "Parts", "Our [catalog] of parts")]


@only_postgresql
def test_a_snippet_spans_24_words_from_the_first_of_the_searched_words(owner):
    words = [f"word{n:02d}" for n in range(60)]
    conversation_saying(owner, " ".join(words))

    (_, _, snippet), = searched(owner, "word10 word40")
    assert snippet == " ".join(["[word10]", *words[11:34]])


@only_postgresql
def test_a_snippet_of_one_match_in_a_long_message_is_12_words(owner):
    words = [f"word{n:02d}" for n in range(60)]
    conversation_saying(owner, " ".join(words))

    (_, _, snippet), = searched(owner, "word30")
    assert snippet == " ".join(["[word30]", *words[31:42]])


@only_postgresql
def test_three_letter_words_count_in_a_snippets_length(owner):
    text = " ".join(["the cat sat on the mat and ate all the fish but not the bun"] * 4)
    conversation_saying(owner, text)

    (_, _, snippet), = searched(owner, "fish")
    assert snippet == "[fish] but not the bun the cat sat on the mat and"


@only_postgresql
def test_a_long_title_is_shown_whole_with_every_match_marked(owner):
    title = " ".join(f"wd{n:02d}" for n in range(30)) + " lisbon " + " ".join(f"tl{n:02d}" for n in range(4))  # 176 characters
    conversation_saying(owner, title=title)

    (_, search_title, _), = searched(owner, "lisbon")
    assert search_title == title.replace("lisbon", "[lisbon]")


@pytest.mark.parametrize("text", ["lisbon", "sb"])  # on PostgreSQL: full text, then a short query's substring
def test_a_search_snippet_is_the_first_matching_message_written_even_when_stored_later(owner, text):
    from datetime import timedelta

    from conversations.tests.factories import MessageFactory

    conversation = conversation_saying(owner, title="Trip")
    later = MessageFactory(conversation=conversation, content="Back to Lisbon in May")
    # Written first but stored second: it has the larger id (its time is taken before the insert).
    MessageFactory(conversation=conversation, content="Lisbon first", created_at=later.created_at - timedelta(hours=1))

    (_, _, snippet), = searched(owner, text)
    assert snippet.replace("[", "").replace("]", "") == "Lisbon first"


@pytest.mark.parametrize("text", ["lisbon", "sb"])
def test_of_matching_messages_written_at_the_same_instant_the_snippet_is_the_one_stored_first(owner, text):
    from conversations.models import Message
    from conversations.tests.factories import MessageFactory

    conversation = conversation_saying(owner, title="Trip")
    first = MessageFactory(conversation=conversation, content="Lisbon first")
    MessageFactory(conversation=conversation, content="Back to Lisbon in May", created_at=first.created_at)
    # The first one rewritten since (its row moves to the end of the table on PostgreSQL).
    Message.objects.filter(pk=first.pk).update(active=False)
    Message.objects.filter(pk=first.pk).update(active=True)

    (_, _, snippet), = searched(owner, text)
    assert snippet.replace("[", "").replace("]", "") == "Lisbon first"


def written_out_of_id_order(owner):
    """Two messages of one conversation: the second stored (larger id) was written an hour before the first."""
    from datetime import timedelta

    from conversations.tests.factories import MessageFactory

    conversation = conversation_saying(owner)
    stored_first = MessageFactory(conversation=conversation, content="stored first, written second")
    stored_second = MessageFactory(conversation=conversation, content="stored second, written first",
                                   created_at=stored_first.created_at - timedelta(hours=1))
    return conversation, stored_first, stored_second


def test_messages_newest_first_go_by_when_they_were_written_not_by_id(owner):
    conversation, stored_first, stored_second = written_out_of_id_order(owner)

    assert list(conversation.messages.newest_first()) == [stored_first, stored_second]


def test_the_messages_above_one_are_those_written_before_it_whatever_their_ids(owner):
    conversation, stored_first, stored_second = written_out_of_id_order(owner)

    assert list(conversation.messages.earlier_than(stored_second)) == []
    assert list(conversation.messages.earlier_than(stored_first)) == [stored_second]


def test_messages_written_at_the_same_instant_newest_first_go_by_id_larger_first(owner):
    from conversations.models import Message
    from conversations.tests.factories import MessageFactory

    conversation = conversation_saying(owner)
    first = MessageFactory(conversation=conversation)
    second = MessageFactory(conversation=conversation, created_at=first.created_at)
    # The second one rewritten since (its row moves to the end of the table on PostgreSQL).
    Message.objects.filter(pk=second.pk).update(active=False)
    Message.objects.filter(pk=second.pk).update(active=True)

    assert list(conversation.messages.newest_first()) == [second, first]


def test_models_with_the_same_completion_tokens_are_listed_by_name(owner):
    from aimodels.tests.factories import AIModelFactory
    from conversations.tests.factories import ConversationFactory, MessageFactory

    conversation = ConversationFactory(user=owner)
    for name in ("zulu", "alpha", "mike"):
        MessageFactory(conversation=conversation, reply=True, model=AIModelFactory(name=name),
                       usage={"prompt_tokens": 1, "completion_tokens": 5})

    assert [row[0] for row in usage_rows(owner)] == ["alpha", "mike", "zulu"]


@only_postgresql
def test_full_text_search_finds_a_word_that_english_would_drop(owner):
    # Against the server's default configuration (English here, as on most installations).
    conversation_saying(owner, "Which searching tool?")

    assert searched(owner, "which") == [("Notes", "Notes", "[Which] searching tool?")]


@only_postgresql
def test_full_text_search_does_not_take_a_word_for_its_english_stem(owner):
    conversation_saying(owner, "Which searching tool?")

    assert searched(owner, "searches") == []  # English stemming finds "searching" by "searches"


# late survivors of the 2026-11-29 run
def test_a_conversation_without_a_title_is_called_new_conversation():
    from conversations.models import Conversation

    assert str(Conversation(title="")) == "New conversation"


def test_an_open_conversations_composer_has_no_lookups_switch_even_with_lookups_on(usable_model, settings):
    from accounts.tests.factories import UserFactory
    from conversations.forms import MessageForm
    from conversations.tests.factories import ConversationFactory

    settings.WEB_LOOKUPS = True
    user = UserFactory()
    form = MessageForm(user=user, conversation=ConversationFactory(user=user, model=usable_model))

    assert "web_lookups" not in form.fields


def test_a_new_conversations_composer_has_no_lookups_switch_while_lookups_are_off(usable_model, settings):
    from accounts.tests.factories import UserFactory
    from conversations.forms import MessageForm

    settings.WEB_LOOKUPS = False
    assert "web_lookups" not in MessageForm(user=UserFactory()).fields


def test_saving_a_conversations_instructions_alone_leaves_its_other_fields_as_stored(owner):
    from conversations.models import Conversation
    from conversations.tests.factories import ConversationFactory

    conversation = ConversationFactory(user=owner, title="Old title")
    Conversation.objects.filter(pk=conversation.pk).update(title="Renamed meanwhile")
    conversation.system_prompt = "Answer in one sentence."
    conversation.save(update_fields=["system_prompt"])

    conversation.refresh_from_db()
    assert conversation.title == "Renamed meanwhile"
    assert conversation.system_prompt_tokens == conversation.count_system_prompt() > 0


def test_a_conversation_refuses_a_positional_argument_to_save_as_django_does(owner):
    from conversations.tests.factories import ConversationFactory

    conversation = ConversationFactory(user=owner)
    with pytest.raises(TypeError):
        conversation.save(True)


def test_saving_a_messages_content_alone_leaves_its_other_fields_as_stored(owner):
    from conversations.models import Message
    from conversations.tests.factories import ConversationFactory, MessageFactory

    message = MessageFactory(conversation=ConversationFactory(user=owner))
    Message.objects.filter(pk=message.pk).update(error="Set meanwhile")
    message.content, message.token_count = "Changed.", None
    message.save(update_fields=["content"])

    message.refresh_from_db()
    assert (message.content, message.error) == ("Changed.", "Set meanwhile")
    assert message.token_count == message.count_tokens()


def test_a_message_refuses_a_positional_argument_to_save_as_django_does(owner):
    from conversations.tests.factories import ConversationFactory, MessageFactory

    message = MessageFactory(conversation=ConversationFactory(user=owner))
    with pytest.raises(TypeError):
        message.save(True)
