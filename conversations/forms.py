import unicodedata
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django import forms
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Subquery

from aimodels.models import AIModel
from conversations import lookups, tokens
from conversations.context import DEFAULT_MARGIN, ContextTooLong, select_context
from conversations.models import Conversation, Message, Share, Step
from conversations.tokens import REPLY_PRIMING


class ModelSelect(forms.Select):
    """A model per option, its description as the option's hint."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if description := getattr(getattr(value, "instance", None), "description", ""):
            option["attrs"].update({"title": description, "data-description": description})
        return option


class _ListedChoices(forms.models.ModelChoiceIterator):
    def __iter__(self):
        for model in self.field.models:
            yield self.choice(model)

    def __len__(self) -> int:
        return len(self.field.models)

    def __bool__(self) -> bool:
        return bool(self.field.models)


class UsableModelField(forms.ModelChoiceField):
    """The models on offer, read once (one query) into `models`: the picker's options, the
    default and the check of what was sent all use that list, not a query each."""

    iterator = _ListedChoices

    def __init__(self, **kwargs) -> None:
        super().__init__(queryset=AIModel.objects.none(), empty_label=None, **kwargs)
        self.models: list[AIModel] = []

    def offer(self, models: list[AIModel]) -> None:
        self.models = models
        self.queryset = AIModel.objects.filter(pk__in=[model.pk for model in models])  # for code that asks

    def to_python(self, value) -> AIModel | None:
        if value in self.empty_values:
            return None
        for model in self.models:
            if str(model.pk) == str(getattr(value, "pk", value)):
                return model
        raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")


class MessageForm(forms.Form):
    """One message from the user, and the model to answer it (any usable model, the
    conversation's last one preselected). With no conversation yet, it also starts one.
    Every check runs before anything is saved or sent."""

    content = forms.CharField(
        label="Message",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Ask anything…", "autofocus": True}),
        error_messages={"required": "Type a message first."},
    )
    model = UsableModelField(
        label="Model",
        widget=ModelSelect,
        error_messages={"invalid_choice": "That model is not available. Pick another."},
    )
    system_prompt = forms.CharField(
        label="System prompt",
        required=False,
        max_length=8000,
        widget=forms.Textarea(attrs={"rows": 3, "form": "composer"}),
        help_text="Instructions the model gets before the conversation. Starts as your account's default.",
    )
    web_lookups = forms.BooleanField(
        label="Web lookups",
        required=False,
        initial=True,
        help_text="“search for …”, “what's the weather in …”, “summarize <link>”; and models that support tools "
        "look things up themselves.",
    )

    def __init__(
        self, *args, user, conversation: Conversation | None = None, models: list[AIModel] | None = None, **kwargs
    ) -> None:
        """`models`: the usable models, when the caller has read them already (the form that
        follows a sent one); otherwise they are read here."""
        super().__init__(*args, **kwargs)
        self.user = user
        self.conversation = conversation
        # No maxlength: a browser would cut a long paste silently. The page counts instead.
        self.fields["content"].widget.attrs["data-max-length"] = str(settings.MESSAGE_MAX_LENGTH)
        if models is None:
            models = list(AIModel.objects.offered())
        self.fields["model"].offer(models)
        last = conversation.model if conversation else None
        self.fields["model"].initial = last if last in models else next((m for m in models if m.is_default), None)
        # A conversation goes on with its last model when none is sent (and says so if it cannot).
        self.fields["model"].required = conversation is None
        if conversation is None:  # a new conversation starts with the user's default instructions
            self.fields["system_prompt"].initial = user.default_system_prompt
        else:  # an existing one changes them with SystemPromptForm, and its lookups with LookupsForm
            del self.fields["system_prompt"]
        if conversation is not None or not self.lookups_offered:
            del self.fields["web_lookups"]
        self.lookup: lookups.LookupRequest | None = None

    @property
    def lookups_offered(self) -> bool:
        return settings.WEB_LOOKUPS

    def _lookups_on(self, data: dict) -> bool:
        if not self.lookups_offered:
            return False
        return self.conversation.web_lookups if self.conversation else data.get("web_lookups", False)

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
        model = data.get("model") or (self.conversation.model if self.conversation else None)
        if model is None or "content" not in data:
            return data
        if self._lookups_on(data):
            try:
                self.lookup = lookups.lookup_requested(data["content"])
            except forms.ValidationError as error:
                self.add_error("content", error)
                return data
        if reason := model.unusable_reason:
            self.add_error(None, reason)
            return data
        replying = Message.objects.filter(conversation__user=self.user).replying().aggregate(
            here=Count("pk", filter=Q(conversation=self.conversation)), anywhere=Count("pk")
        )  # one query for both rules
        if replying["here"]:
            self.add_error(None, "A reply is still being written. Wait for it to finish, or press Stop.")
        elif (writing := replying["anywhere"]) >= (most := settings.REPLIES_AT_ONCE_PER_USER):
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
        if self.conversation:
            system_tokens = self.conversation.system_prompt_tokens
        else:
            prompt = self.cleaned_data.get("system_prompt", "")
            system_tokens = tokens.message_tokens(role="system", content=prompt, encoding=encoding) if prompt else 0
        try:
            select_context(
                system_tokens=system_tokens,
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
        conversation, model = self._conversation_saved()
        question = Message.objects.create(
            # After the branch's last message, read in the insert itself (no query of its own).
            conversation=conversation, parent_id=Subquery(conversation.branch().order_by("-pk").values("pk")[:1]),
            role=Message.Role.USER, content=self.cleaned_data["content"], token_count=self.token_count,
        )
        return question, self._reply_add(question, model)

    def _conversation_saved(self, *, as_last_model: bool = True) -> tuple[Conversation, AIModel]:
        """The conversation (created, for a first message) and the model that will answer, which
        becomes the conversation's last model (preselected next time) unless told otherwise."""
        conversation = self.conversation
        model = self.cleaned_data["model"] or conversation.model
        if conversation is None:
            conversation = Conversation(
                user=self.user,
                model=model,
                system_prompt=self.cleaned_data["system_prompt"],
                web_lookups=self.cleaned_data.get("web_lookups", False),
            )
            conversation.title = conversation.title_from(self.cleaned_data["content"])
            conversation.save()
            self.conversation = conversation
        else:
            if as_last_model:
                conversation.model = model
            conversation.archived_at = None  # a message sent in an archived conversation restores it
            conversation.save(update_fields=["model", "archived_at", "updated_at"])
        return conversation, model

    def _reply_fields(self, model: AIModel) -> dict:
        """A pending reply by `model`, with the lookup the message asks for (run by the reply's
        job before the model is asked)."""
        steps = [Step(kind=self.lookup.kind, query=self.lookup.query).as_json()] if self.lookup else []
        return {"role": Message.Role.ASSISTANT, "status": Message.Status.PENDING, "model": model, "steps": steps}

    def _reply_add(self, question: Message, model: AIModel) -> Message:
        return Message.objects.create(conversation=question.conversation, parent=question, **self._reply_fields(model))


class _VersionForm(MessageForm):
    """A new version of a message on the active branch (see Message.version_add), checked as a
    sent message is: the model usable, no reply being written here, the rate of replies, the
    question fitting the model's window."""

    def __init__(self, *args, message: Message, **kwargs) -> None:
        super().__init__(*args, conversation=message.conversation, **kwargs)
        self.message = message

    def clean(self) -> dict:
        if not self.message.active:
            raise forms.ValidationError(
                "That message is no longer on the conversation's shown branch. Reload the page.", code="off_branch"
            )
        return super().clean()


class ReplyRegenerateForm(_VersionForm):
    """Regenerate a reply: its question asked again, of the model chosen (the conversation's
    by default), for a new version of the reply beside the old one. A model chosen for one
    version does not become the conversation's: the composer's stays preselected."""

    def __init__(self, data, *, reply: Message, **kwargs) -> None:
        data = {"content": reply.parent.content if reply.parent else "", "model": data.get("model", "")}
        super().__init__(data, message=reply, **kwargs)

    @transaction.atomic
    def save(self) -> Message:
        _, model = self._conversation_saved(as_last_model=False)
        return self.message.version_add(**self._reply_fields(model))


class MessageEditForm(_VersionForm):
    """A user's message changed and sent again: a new version of it (a new branch from its
    parent) and its pending reply. The old message and all that followed it are kept."""

    def __init__(self, *args, message: Message, **kwargs) -> None:
        kwargs.setdefault("auto_id", f"edit-{message.pk}-%s")  # unique in the page, beside the composer
        super().__init__(*args, message=message, initial={"content": message.content}, **kwargs)

    @transaction.atomic
    def save(self) -> tuple[Message, Message]:
        _, model = self._conversation_saved()
        question = self.message.version_add(
            role=Message.Role.USER, content=self.cleaned_data["content"], token_count=self.token_count
        )
        return question, self._reply_add(question, model)


class EarlierMessagesForm(forms.Form):
    """Where a page of earlier messages ends: ?before=<pk> of the oldest message on screen,
    which must be one of this conversation's."""

    before = forms.ModelChoiceField(queryset=Message.objects.none(), required=False)

    def __init__(self, *args, conversation: Conversation, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["before"].queryset = conversation.branch().only("pk", "created_at")


class LookupsForm(forms.ModelForm):
    """A conversation's switch for web lookups."""

    class Meta:
        model = Conversation
        fields = ("web_lookups",)


# A system prompt must leave room for at least a short message.
SHORTEST_MESSAGE_TOKENS = 64


class SystemPromptForm(forms.ModelForm):
    """A conversation's instructions to the model, which must fit its model's window with room
    for a message and the reply."""

    class Meta:
        model = Conversation
        fields = ("system_prompt",)
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 4})}
        help_texts = {"system_prompt": "Instructions the model gets before the conversation."}

    def clean_system_prompt(self) -> str:
        prompt = self.cleaned_data["system_prompt"].strip()
        model = self.instance.model
        if prompt:
            count = tokens.message_tokens(
                role="system", content=prompt, encoding=tokens.encoding_for(model.deployment_name)
            )
            room = (
                model.context_window - model.max_completion_tokens - DEFAULT_MARGIN - REPLY_PRIMING
                - SHORTEST_MESSAGE_TOKENS
            )
            if count > room:
                raise forms.ValidationError(
                    f"This system prompt is {count:,} tokens; {model.name} leaves room for at most {max(room, 0):,} "
                    "beside a message and its reply. Shorten it.",
                    code="too_long",
                )
        return prompt


# Sidebar ----------------------------------------------------------------------------------------
def refuse_control_characters(value: str) -> None:
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise forms.ValidationError("Control characters (tabs, line breaks and the like) cannot be used here.",
                                    code="control_characters")


class ConversationRenameForm(forms.ModelForm):
    """A conversation's new title: 1 to 200 characters once stripped, no control characters."""

    title = forms.CharField(
        label="Title",
        max_length=Conversation._meta.get_field("title").max_length,
        validators=[refuse_control_characters],
        error_messages={"required": "Give the conversation a title."},
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"}),
    )

    class Meta:
        model = Conversation
        fields = ("title",)


class TitleWatchForm(forms.Form):
    """The title a new conversation got from its first words: watched until another replaces it."""

    fallback = forms.CharField(max_length=Conversation._meta.get_field("title").max_length, strip=False)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ListCursor(NamedTuple):
    """Where a page of a list ends, in a newest-first order by a time then the pk (the sidebar's
    by updated_at, the Archived page's by archived_at): the last row's (time, pk), written as
    "<microseconds since 1970>-<pk>" in the next page's URL."""

    at: datetime
    pk: int

    @classmethod
    def after(cls, row: Conversation, field: str) -> "ListCursor":
        """The place right after `row` in the order by `field`."""
        return cls(getattr(row, field), row.pk)

    def __str__(self) -> str:
        return f"{(self.at - _EPOCH) // _MICROSECOND}-{self.pk}"


class ListPlaceForm(forms.Form):
    """Where a page of a list starts: after `cursor` (a ListCursor), or at the first row."""

    cursor = forms.RegexField(regex=r"^\d{1,18}-\d{1,18}$", required=False, max_length=40)

    def clean_cursor(self) -> ListCursor | None:
        if not (cursor := self.cleaned_data["cursor"]):
            return None
        micros, pk = cursor.split("-")
        try:
            return ListCursor(_EPOCH + int(micros) * _MICROSECOND, int(pk))
        except OverflowError:
            raise forms.ValidationError("Not a place in the list.", code="invalid") from None


class ConversationSearchForm(ListPlaceForm):
    """The sidebar's list: a search (empty for all conversations) and where the page starts."""

    q = forms.CharField(label="Search", required=False, max_length=200)

    def clean_q(self) -> str:
        return " ".join(self.cleaned_data["q"].split())


# Pin and archive ----------------------------------------------------------------------------------
class PinForm(forms.Form):
    """Pin a conversation (pinned set) or unpin it (pinned empty or absent)."""

    pinned = forms.BooleanField(required=False)


class ArchiveForm(forms.Form):
    """Archive a conversation (archived set) or restore it (archived empty or absent)."""

    archived = forms.BooleanField(required=False)


# Share links --------------------------------------------------------------------------------------
class ShareForm(forms.ModelForm):
    """A new share link of a conversation: a snapshot of its active branch as it is now, refused
    (Share.clean) when it has no finished message."""

    class Meta:
        model = Share
        fields = ()

    def __init__(self, *args, conversation: Conversation, **kwargs) -> None:
        super().__init__(*args, instance=Share.snapshot_of(conversation), **kwargs)
