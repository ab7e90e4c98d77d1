from django import forms
from django.conf import settings
from django.db import transaction

from aimodels.models import AIModel
from conversations import tokens
from conversations.context import DEFAULT_MARGIN, ContextTooLong, select_context
from conversations.models import Conversation, Message


class MessageForm(forms.Form):
    """One message from the user. With no conversation yet, it also picks the model and
    starts the conversation. Every check runs before anything is saved or sent."""

    content = forms.CharField(
        label="Message",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Ask anything…", "autofocus": True}),
        error_messages={"required": "Type a message first."},
    )
    model = forms.ModelChoiceField(
        queryset=AIModel.objects.none(),
        required=False,
        empty_label=None,
        label="Model",
    )

    def __init__(self, *args, user, conversation: Conversation | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.conversation = conversation
        # No maxlength: a browser would cut a long paste silently. The page counts instead.
        self.fields["content"].widget.attrs["data-max-length"] = str(settings.MESSAGE_MAX_LENGTH)
        if conversation is None:
            self.fields["model"].queryset = AIModel.objects.usable().order_by("-is_default", "name")
            self.fields["model"].required = True
            default = AIModel.objects.usable().filter(is_default=True).first()
            self.fields["model"].initial = default
        else:
            del self.fields["model"]

    def clean_content(self) -> str:
        content, limit = self.cleaned_data["content"], settings.MESSAGE_MAX_LENGTH
        if len(content) > limit:
            raise forms.ValidationError(
                f"This message is {len(content):,} characters; the limit is {limit:,}. Shorten it or split it up.",
                code="max_length",
            )
        return content

    def clean(self) -> dict:
        data = super().clean()
        model = self.conversation.model if self.conversation else data.get("model")
        if model is None or "content" not in data:
            return data
        if reason := model.unusable_reason:
            self.add_error(None, reason)
        elif self.conversation and self.conversation.messages.replying().exists():
            self.add_error(None, "A reply is still being written. Wait for it to finish, or press Stop.")
        elif (writing := Message.objects.filter(conversation__user=self.user).replying().count()) >= (
            most := settings.REPLIES_AT_ONCE_PER_USER
        ):
            self.add_error(
                None,
                f"{writing} of your replies are being written in other conversations; at most {most} at once. "
                "Wait for one to finish, or stop one.",
            )
        else:
            self._check_fits(model, data["content"])
        return data

    def _check_fits(self, model: AIModel, content: str) -> None:
        encoding = tokens.encoding_for(model.deployment_name)
        # Counted once here; save() stores this count on the message.
        self.token_count = tokens.message_tokens(role="user", content=content, encoding=encoding)
        try:
            select_context(
                system_tokens=self.conversation.system_prompt_tokens if self.conversation else 0,
                history=[(None, self.token_count)],
                context_window=model.context_window,
                max_completion_tokens=model.max_completion_tokens,
                margin=DEFAULT_MARGIN,
            )
        except ContextTooLong as error:
            self.add_error(
                "content",
                f"This message is {error.needed:,} tokens; {model.name} accepts at most {error.available:,} "
                "in one message. Shorten it or split it up.",
            )

    @transaction.atomic
    def save(self) -> tuple[Message, Message]:
        """Commit the user's message (and a new conversation) and the pending reply."""
        content = self.cleaned_data["content"]
        conversation = self.conversation
        if conversation is None:
            conversation = Conversation(user=self.user, model=self.cleaned_data["model"])
            conversation.title = conversation.title_from(content)
            conversation.save()
            self.conversation = conversation
        else:
            conversation.save(update_fields=["updated_at"])
        question = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, content=content, token_count=self.token_count
        )
        reply = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            status=Message.Status.PENDING,
            model=conversation.model,
        )
        return question, reply
