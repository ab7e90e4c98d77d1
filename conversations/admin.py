"""Staff's view of what people do in the chat: conversations and messages, read-only, and each
user's usage (messages and the tokens the providers reported).

Nothing here adds, changes or deletes: a conversation is its user's own record, and the admin
only looks; but staff may revoke (delete) a share link. Everything a user or a model wrote is
shown escaped (the admin's own rendering).
"""

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import (
    BigIntegerField,
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from accounts.admin import StaffAccessMixin
from accounts.models import User
from conversations.models import Conversation, Message, Share

INLINE_MESSAGES = 50  # the newest messages shown under a conversation; all of them are a link away
USAGE_PER_PAGE = 50
EXCERPT = 80


def _tokens(path: str, key: str):
    """The provider-reported count `key` of Message.usage at `path`, as a number (NULL if absent)."""
    return Cast(KeyTextTransform(key, path), BigIntegerField())


def _usage_sum(path: str, key: str, **extra):
    return Coalesce(Sum(_tokens(path, key), **extra), Value(0), output_field=BigIntegerField())


def _usage_of(message: Message, key: str) -> int | None:
    value = message.usage.get(key) if isinstance(message.usage, dict) else None
    return value if isinstance(value, int) else None


def usage_per_user(*, since=None, search: str = "") -> QuerySet[User]:
    """Every user with at least one message (since `since`, if given), with their conversations,
    messages sent, replies, and the prompt and completion tokens the providers reported for those
    replies; the heaviest users first."""
    messages = "conversations__messages"

    def where(**conditions) -> Q | None:
        condition = Q(**{f"{messages}__{name}": value for name, value in conditions.items()})
        return condition if condition else None

    within = {"created_at__gte": since} if since else {}
    users = User.objects.all()
    if search:
        users = users.filter(Q(username__icontains=search) | Q(email__icontains=search))
    return (
        users.annotate(
            conversation_count=Count("conversations", filter=where(**within), distinct=True),
            sent=Count(messages, filter=where(role=Message.Role.USER, **within)),
            replies=Count(messages, filter=where(role=Message.Role.ASSISTANT, **within)),
            prompt_tokens=_usage_sum(f"{messages}__usage", "prompt_tokens", filter=where(**within)),
            completion_tokens=_usage_sum(f"{messages}__usage", "completion_tokens", filter=where(**within)),
            last_message_at=Max(f"{messages}__created_at", filter=where(**within)),
        )
        .filter(Q(sent__gt=0) | Q(replies__gt=0))
        .order_by((F("prompt_tokens") + F("completion_tokens")).desc(), "-sent", "username")
    )


class UsageFilterForm(forms.Form):
    PERIODS = {"": None, "1": timedelta(days=1), "7": timedelta(days=7), "30": timedelta(days=30)}

    q = forms.CharField(label="User", required=False, max_length=150)
    days = forms.ChoiceField(
        label="Period",
        required=False,
        choices=[("", "All time"), ("1", "Last 24 hours"), ("7", "Last 7 days"), ("30", "Last 30 days")],
    )

    def since(self):
        period = self.PERIODS[self.cleaned_data.get("days") or ""]
        return timezone.now() - period if period else None


# Filters ------------------------------------------------------------------------------------
class SelectedOnlyFilter(admin.SimpleListFilter):
    """A filter on a related row reached by a link (a user's conversations, a conversation's
    messages): the sidebar shows the selected one with "All" to clear it, never a list of every
    user. Subclasses name the parameter, the lookup and the model."""

    lookup: str
    related_model: type

    def lookups(self, request, model_admin):
        value = self.value()
        if not (value and value.isdigit()):
            return []
        selected = self.related_model._default_manager.filter(pk=value).first()
        return [(value, str(selected))] if selected else []

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.lookup: self.value()})
        return queryset


class ConversationUserFilter(SelectedOnlyFilter):
    title = "user"
    parameter_name = "user"
    lookup = "user_id"
    related_model = User


class MessageUserFilter(ConversationUserFilter):
    lookup = "conversation__user_id"


class MessageConversationFilter(SelectedOnlyFilter):
    title = "conversation"
    parameter_name = "conversation"
    lookup = "conversation_id"
    related_model = Conversation


class ReplyStatusFilter(admin.SimpleListFilter):
    """Conversations with at least one reply in a given state (e.g. the failed ones)."""

    title = "reply status"  # the admin shows "By reply status"
    parameter_name = "reply_status"

    def lookups(self, request, model_admin):
        return [(status.value, status.label) for status in Message.Status]

    def queryset(self, request, queryset):
        if self.value() in Message.Status.values:
            replies = Message.objects.filter(
                conversation=OuterRef("pk"), role=Message.Role.ASSISTANT, status=self.value()
            )
            return queryset.filter(Exists(replies))
        return queryset


# Read-only ----------------------------------------------------------------------------------
class ReadOnlyMixin(StaffAccessMixin):
    """Staff see everything here; nobody adds, changes or deletes."""

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class MessageDisplayMixin:
    """Columns and fields for a message, shared by the inline and the messages' own pages."""

    @admin.display(description="Text")
    def excerpt(self, message: Message) -> str:
        return Truncator(message.content).chars(EXCERPT)

    @admin.display(description="Error")
    def error_excerpt(self, message: Message) -> str:
        return Truncator(message.error).chars(EXCERPT)

    @admin.display(description="Prompt tokens")
    def prompt_tokens(self, message: Message) -> str:
        return self._usage_or_empty(message, "prompt_tokens")

    @admin.display(description="Completion tokens")
    def completion_tokens(self, message: Message) -> str:
        return self._usage_or_empty(message, "completion_tokens")

    def _usage_or_empty(self, message: Message, key: str) -> str:
        value = _usage_of(message, key)
        return self.get_empty_value_display() if value is None else f"{value:,}"  # as the totals: 1,200


class NewestMessagesFormSet(BaseInlineFormSet):
    """The newest INLINE_MESSAGES messages of the conversation's shown branch, oldest of them
    first, each with its place among its versions."""

    def get_queryset(self):
        if not hasattr(self, "_newest"):
            newest = super().get_queryset().filter(active=True).order_by("-created_at", "-pk")[:INLINE_MESSAGES]
            self._newest = list(reversed(newest))
            Message.versions_mark(self._newest)
        return self._newest


class MessageInline(ReadOnlyMixin, MessageDisplayMixin, admin.TabularInline):
    model = Message
    formset = NewestMessagesFormSet
    fields = ("created_at", "role", "status", "model", "excerpt", "version", "error_excerpt", "prompt_tokens",
              "completion_tokens")
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).select_related("model")

    def get_formset(self, request: HttpRequest, obj=None, **kwargs):
        if obj is not None:
            # Per request: the admin makes a new inline instance for each one.
            total = obj.branch().count()
            newest = f"the newest {INLINE_MESSAGES} of {total:,}, " if total > INLINE_MESSAGES else ""
            self.verbose_name_plural = f"messages ({newest}on the branch its user sees)"
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="Version")
    def version(self, message: Message) -> str:
        count = getattr(message, "version_count", 1)
        return f"{message.version_number} of {count}" if count > 1 else "the only one"


# Conversations ------------------------------------------------------------------------------
def _message_totals(key: str) -> Subquery:
    """A correlated subquery: the conversation's messages aggregated, for the rows on the page only."""
    rows = Message.objects.filter(conversation=OuterRef("pk")).order_by().values("conversation")
    if key == "count":
        aggregate = Count("pk")
    else:
        aggregate = Sum(_tokens("usage", key))
    return Coalesce(Subquery(rows.annotate(total=aggregate).values("total")), Value(0),
                    output_field=BigIntegerField())


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("__str__", "user_link", "model", "message_count", "tokens_used", "updated_at", "created_at")
    list_filter = (ConversationUserFilter, "model", ReplyStatusFilter, "created_at", "updated_at")
    search_fields = ("title", "user__username", "messages__content")
    search_help_text = "Title, user name, or text of any message."
    list_select_related = ("user", "model")
    fields = ("public_id", "title", "user", "model", "system_prompt", "web_lookups", "created_at", "updated_at",
              "message_summary")
    readonly_fields = fields
    inlines = (MessageInline,)
    actions = None
    view_on_site = False  # the chat shows a conversation to its own user only: staff would get a 404

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                message_total=_message_totals("count"),
                prompt_total=_message_totals("prompt_tokens"),
                completion_total=_message_totals("completion_tokens"),
            )
        )

    @admin.display(description="User", ordering="user__username")
    def user_link(self, conversation: Conversation) -> str:
        return format_html('<a href="?{}={}">{}</a>', ConversationUserFilter.parameter_name,
                           conversation.user_id, conversation.user.username)

    @admin.display(description="Messages", ordering="message_total")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_total

    @admin.display(description="Tokens (prompt / completion)")
    def tokens_used(self, conversation: Conversation) -> str:
        return f"{conversation.prompt_total:,} / {conversation.completion_total:,}"

    @admin.display(description="Messages")
    def message_summary(self, conversation: Conversation) -> str:
        url = reverse("admin:conversations_message_changelist")
        return format_html(
            '{} messages; tokens reported: {} prompt, {} completion. <a href="{}?{}={}">All of its messages</a>',
            conversation.message_total,
            f"{conversation.prompt_total:,}",
            f"{conversation.completion_total:,}",
            url,
            MessageConversationFilter.parameter_name,
            conversation.pk,
        )

    # Usage per user ----------------------------------------------------------------------------
    def get_urls(self):
        usage = path("usage/", self.admin_site.admin_view(self.usage_view), name="conversations_conversation_usage")
        return [usage, *super().get_urls()]

    def usage_view(self, request: HttpRequest) -> HttpResponse:
        """Each user's conversations, messages, replies and reported tokens, heaviest first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = UsageFilterForm(request.GET)
        if form.is_valid():
            rows = usage_per_user(since=form.since(), search=form.cleaned_data["q"].strip())
        else:
            rows = User.objects.none()
        page = Paginator(rows, USAGE_PER_PAGE).get_page(request.GET.get(PAGE_VAR))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Usage per user",
            "form": form,
            "page_obj": page,
            "page_var": PAGE_VAR,
            "conversations_url": reverse("admin:conversations_conversation_changelist"),
            "messages_url": reverse("admin:conversations_message_changelist"),
            "user_filter": ConversationUserFilter.parameter_name,
        }
        return render(request, "admin/conversations/usage.html", context)


# Messages -----------------------------------------------------------------------------------
@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, MessageDisplayMixin, admin.ModelAdmin):
    list_display = ("created_at", "user", "conversation_link", "role", "status", "model", "excerpt",
                    "prompt_tokens", "completion_tokens", "error_excerpt")
    list_filter = (MessageUserFilter, MessageConversationFilter, "active", "status", "role", "model", "created_at")
    search_fields = ("content", "error", "conversation__title", "conversation__user__username")
    search_help_text = "Text, error, conversation title or user name."
    list_select_related = ("conversation__user", "model")
    date_hierarchy = "created_at"
    fields = ("conversation", "user", "role", "status", "model", "content", "error", "prompt_tokens",
              "completion_tokens", "usage", "token_count", "context_omitted", "steps", "stop_requested", "created_at",
              "updated_at", "on_branch", "parent_link", "versions_list", "follow_ups")
    readonly_fields = fields
    actions = None

    @admin.display(description="On the shown branch", boolean=True)
    def on_branch(self, message: Message) -> bool:
        return message.active

    @admin.display(description="Follows")
    def parent_link(self, message: Message) -> str:
        if message.parent_id is None:
            return "Nothing: a first message"
        return self._links([message.parent], current=None)

    @admin.display(description="Versions (the same parent)")
    def versions_list(self, message: Message) -> str:
        versions = list(message.versions())
        return self._links(versions, current=message) if len(versions) > 1 else "This is the only version"

    @admin.display(description="Followed by (its versions)")
    def follow_ups(self, message: Message) -> str:
        children = list(message.children.order_by("pk"))
        return self._links(children, current=None) if children else "Nothing yet"

    def _links(self, messages: list[Message], *, current: Message | None) -> str:
        """Each message as a link to its page, with its place, role, status, whether it is shown
        (on the branch) or chosen (the version its branch returns to), and the start of its text."""
        return format_html_join(
            mark_safe("<br>"),
            '{}<a href="{}">#{} {}, {}</a>{}: {}',
            (
                (
                    "▶ " if message == current else "",
                    reverse("admin:conversations_message_change", args=[message.pk]),
                    message.pk,
                    message.role,
                    message.status,
                    " (shown)" if message.active else " (chosen)" if message.chosen else "",
                    Truncator(message.content).chars(EXCERPT),
                )
                for message in messages
            ),
        )

    @admin.display(description="User", ordering="conversation__user__username")
    def user(self, message: Message) -> str:
        return message.conversation.user.username

    @admin.display(description="Conversation", ordering="conversation__title")
    def conversation_link(self, message: Message) -> str:
        url = reverse("admin:conversations_conversation_change", args=[message.conversation_id])
        return format_html('<a href="{}">{}</a>', url, Truncator(str(message.conversation)).chars(EXCERPT))


# Share links: staff list and revoke them ----------------------------------------------------------
@admin.register(Share)
class ShareAdmin(StaffAccessMixin, admin.ModelAdmin):
    """Share links, for staff to find and revoke (delete: the link answers 404 from then on).
    Nobody adds or changes one here: a link is its owner's snapshot."""

    list_display = ("token_shown", "title", "conversation_title", "owner", "created_at")
    list_filter = ("created_at",)
    search_fields = ("token", "title", "conversation__title", "conversation__user__username")
    search_help_text = "Token, title, conversation title or owner's user name."
    list_select_related = ("conversation__user",)
    date_hierarchy = "created_at"
    fields = ("token", "title", "conversation", "owner", "created_at", "message_count")
    readonly_fields = fields
    actions = ("delete_selected",)

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="Token", ordering="token")
    def token_shown(self, share: Share) -> str:
        return Truncator(share.token).chars(SHARE_TOKEN_SHOWN)

    @admin.display(description="Conversation", ordering="conversation__title")
    def conversation_title(self, share: Share) -> str:
        url = reverse("admin:conversations_conversation_change", args=[share.conversation_id])
        return format_html('<a href="{}">{}</a>', url, Truncator(str(share.conversation)).chars(EXCERPT))

    @admin.display(description="Owner", ordering="conversation__user__username")
    def owner(self, share: Share) -> str:
        return share.conversation.user.username

    @admin.display(description="Messages")
    def message_count(self, share: Share) -> int:
        return len(share.messages)


SHARE_TOKEN_SHOWN = 9  # characters of a token in the list, "…" included: enough to tell links apart
