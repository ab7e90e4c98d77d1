import factory

from accounts.tests.factories import UserFactory
from aimodels.tests.factories import AIModelFactory
from conversations.models import Conversation, Message, Share


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    user = factory.SubFactory(UserFactory)
    model = factory.SubFactory(AIModelFactory)
    title = factory.Sequence(lambda n: f"Conversation {n}")


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    # After the last message of the conversation's active branch, as a message sent in the app.
    parent = factory.LazyAttribute(lambda message: message.conversation.branch_end())
    role = Message.Role.USER
    content = factory.Sequence(lambda n: f"Message number {n}")
    status = Message.Status.COMPLETE

    class Params:
        reply = factory.Trait(
            role=Message.Role.ASSISTANT, model=factory.SelfAttribute("conversation.model")
        )
        pending = factory.Trait(
            role=Message.Role.ASSISTANT,
            status=Message.Status.PENDING,
            content="",
            model=factory.SelfAttribute("conversation.model"),
        )


class ShareFactory(factory.django.DjangoModelFactory):
    """A share link with a one-question snapshot (Share.snapshot_of makes real ones)."""

    class Meta:
        model = Share

    conversation = factory.SubFactory(ConversationFactory)
    title = factory.SelfAttribute("conversation.title")
    messages = factory.LazyFunction(
        lambda: [{"role": "user", "content": "A shared question", "model": None, "created_at": "2026-01-02T03:04:05+00:00"}]
    )
