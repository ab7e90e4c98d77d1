"""The reply job (conversations/services.py) under mutation testing (make mutants, docs/mutants.md,
docs/mutants-services.md): each test here fails on a mutant that the rest of the suite let survive.
Against the real thing: the openai SDK over HTTP to the fake upstream, a real database."""

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations import models, services, tokens
from conversations.models import Message, Step
from conversations.tests.factories import MessageFactory
from conversations.tests.test_stream import reload

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@pytest.fixture
def turn(conversation):
    """A committed user message and its pending reply, as message_create leaves them."""
    question = MessageFactory(conversation=conversation, content="Say hello")
    reply = MessageFactory(conversation=conversation, pending=True)
    return question, reply


# reply_settled: a reply written by another worker, read from its checkpoints ---------------------
async def test_waiting_on_another_workers_reply_ends_with_its_end_and_keeps_its_loaded_relations(turn, monkeypatch):
    monkeypatch.setattr(services, "STOP_POLL_SECONDS", 0)
    monkeypatch.setattr(models, "STALE_STREAM", timedelta(hours=1))  # never abandoned, however slow the machine
    _, reply = turn
    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.STREAMING, updated_at=timezone.now())
    loaded = await reload(reply)
    conversation, model = loaded.conversation, loaded.model
    looks = aiter(services.reply_settled(reply=loaded))
    await anext(looks)  # still being written

    await Message.objects.filter(pk=reply.pk).aupdate(status=Message.Status.COMPLETE, content="Done.")

    with pytest.raises(StopAsyncIteration):
        await anext(looks)
    assert (loaded.status, loaded.content) == (Message.Status.COMPLETE, "Done.")
    # Only the reply's state is read again: the page renders its bubble with what it had loaded.
    assert loaded.conversation is conversation and loaded.model is model


# _Room.fit: a lookup's results take what is left of the model's window -------------------------
@pytest.fixture
def small_model(chat_model):
    chat_model.context_window, chat_model.max_completion_tokens = 3_000, 500
    chat_model.save()
    return chat_model


ROOM = 3_000 - 500 - services.DEFAULT_MARGIN  # the small model's window for everything but the reply
OWLS = "Owls hunt at night. " * 300  # about 1,800 tokens


def found(text: str = OWLS) -> Step:
    return Step(kind="search", query="owls", status="done", text=text, sources=[{"title": "O", "url": "https://o.example/"}])


def counted(step: Step) -> int:
    """The tokens a step takes in the context, as the model reads it (a system message)."""
    return tokens.message_tokens(role="system", content=step.context_text(), encoding=tokens.encoding_for("gpt-4o-mini"))


async def test_a_lookup_that_fits_exactly_is_kept_whole_and_fills_the_room(small_model):
    step = found()
    room = services._Room(model=small_model, used=ROOM - counted(found()))

    room.fit(step)

    assert (step.status, step.text, step.sources) == ("done", OWLS, [{"title": "O", "url": "https://o.example/"}])
    assert room.used == ROOM


async def test_a_lookup_that_fits_adds_its_tokens_to_those_used(small_model):
    step = found("Owls hunt at night.")
    room = services._Room(model=small_model, used=1_000)

    room.fit(step)

    assert step.text == "Owls hunt at night."
    assert room.used == 1_000 + counted(found("Owls hunt at night."))


async def test_a_lookup_cut_to_the_room_left_ends_with_an_ellipsis_and_fills_the_room_exactly(small_model):
    step = found()
    room = services._Room(model=small_model, used=ROOM - counted(found()) + 100)  # 100 tokens short

    room.fit(step)

    encoding = tokens.encoding_for("gpt-4o-mini")
    assert step.status == "done"
    # All the tokens that fit, less one for the ellipsis.
    assert step.text == encoding.decode(encoding.encode(OWLS)[: len(encoding.encode(OWLS)) - 101]) + "…"
    assert room.used == ROOM


HEADER = counted(found(""))  # the header a lookup's results come under


async def test_a_lookup_with_room_for_one_token_of_its_results_keeps_that_token(small_model):
    step = found()
    room = services._Room(model=small_model, used=ROOM - HEADER - 2)  # one token and the ellipsis

    room.fit(step)

    encoding = tokens.encoding_for("gpt-4o-mini")
    assert (step.status, step.text) == ("done", encoding.decode(encoding.encode(OWLS)[:1]) + "…")
    assert room.used == ROOM


async def test_a_lookup_with_no_room_for_any_of_its_results_fails_and_keeps_nothing(small_model):
    step = found()
    room = services._Room(model=small_model, used=ROOM - HEADER - 1)  # the ellipsis alone

    room.fit(step)

    assert (step.status, step.text, step.sources, step.error) == ("failed", "", [], services.NO_ROOM)
    assert room.used == ROOM - HEADER - 1 + counted(step)
