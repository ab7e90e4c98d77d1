import html
from collections.abc import AsyncIterator
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Q
from django.template.defaultfilters import pluralize
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from accounts import limits
from conversations import services
from conversations.forms import MessageForm
from conversations.models import STALE_STREAM, Conversation, Message

PAGE = "conversations/chat.html"


def _page_context(request: HttpRequest, conversation: Conversation | None, form: MessageForm) -> dict:
    return {
        "conversation": conversation,
        "conversations": Conversation.objects.for_user(request.user).only("public_id", "title", "updated_at")[:50],
        "chat_messages": conversation.messages.select_related("model") if conversation else [],
        "form": form,
    }


@require_GET
def conversation_index(request: HttpRequest) -> HttpResponse:
    newest = Conversation.objects.for_user(request.user).first()
    if newest is None:
        return conversation_new(request)
    return redirect(newest)


@require_GET
def conversation_new(request: HttpRequest) -> HttpResponse:
    form = MessageForm(user=request.user)
    return render(request, PAGE, _page_context(request, None, form))


@require_GET
def conversation_detail(request: HttpRequest, public_id: UUID) -> HttpResponse:
    conversation = get_object_or_404(Conversation.objects.for_user(request.user), public_id=public_id)
    form = MessageForm(user=request.user, conversation=conversation)
    return render(request, PAGE, _page_context(request, conversation, form))


@require_POST
def message_create(request: HttpRequest, public_id: UUID | None = None) -> HttpResponse:
    conversation = None
    if public_id is not None:
        conversation = get_object_or_404(
            Conversation.objects.for_user(request.user).select_related("model"), public_id=public_id
        )
    form = MessageForm(request.POST, user=request.user, conversation=conversation)
    if not form.is_valid():
        return _composer_refused(request, form, conversation, status=422)
    if wait := limits.seconds_to_wait(
        request, group="conversations.send", rate=settings.SEND_RATE_PER_USER, key=lambda group, r: str(r.user.pk)
    ):
        form.add_error(
            None,
            f"You are sending messages faster than chatter allows ({_rate_words(settings.SEND_RATE_PER_USER)}). "
            f"You can send again in {wait} second{pluralize(wait)}; your text is kept.",
        )
        response = _composer_refused(request, form, conversation, status=429)
        response["Retry-After"] = str(wait)
        return response
    question, reply = form.save()
    context = {
        **_page_context(request, form.conversation, MessageForm(user=request.user, conversation=form.conversation)),
        "turn": [question, reply],
        "started": conversation is None,
    }
    response = render(request, f"{PAGE}#turn", context)
    if conversation is None:
        response["HX-Push-Url"] = form.conversation.get_absolute_url()
    return response


def _composer_refused(request: HttpRequest, form: MessageForm, conversation: Conversation | None, *, status: int):
    """The composer again, with the text in the box and the reason beside it; nothing was saved."""
    response = render(request, f"{PAGE}#composer", {"form": form, "conversation": conversation}, status=status)
    response["HX-Retarget"] = "#composer"
    response["HX-Reswap"] = "outerHTML"
    return response


def _rate_words(rate: str) -> str:
    """"20/m" -> "20 messages a minute"."""
    count, period = rate.split("/")
    unit = {"s": "second", "m": "minute", "h": "hour", "d": "day"}.get(period[-1:], period)
    every = f"every {period[:-1]} {unit}s" if period[:-1] else f"a {unit}"
    return f"{count} messages {every}"


def _reply_for(request: HttpRequest, public_id: UUID, pk: int) -> Message:
    return get_object_or_404(
        Message.objects.select_related("conversation", "model"),
        pk=pk,
        role=Message.Role.ASSISTANT,
        conversation__public_id=public_id,
        conversation__user=request.user,
    )


@require_POST
def reply_stop(request: HttpRequest, public_id: UUID, pk: int) -> HttpResponse:
    reply = _reply_for(request, public_id, pk)
    # Not started yet: nothing will stream, so it ends here. Streaming: the stream sees the flag.
    Message.objects.filter(pk=reply.pk, status=Message.Status.PENDING).update(
        status=Message.Status.FAILED, error=services.STOPPED, stop_requested=True
    )
    Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING).update(stop_requested=True)
    return HttpResponse(status=204)


@require_POST
def reply_retry(request: HttpRequest, public_id: UUID, pk: int) -> HttpResponse:
    reply = _reply_for(request, public_id, pk)
    is_last = not reply.conversation.messages.filter(pk__gt=reply.pk).exists()
    retryable = Q(status__in=Message.RETRYABLE) | Q(
        status=Message.Status.STREAMING, updated_at__lt=timezone.now() - STALE_STREAM
    )
    reset = is_last and Message.objects.filter(retryable, pk=reply.pk).update(
        status=Message.Status.PENDING, content="", error="", usage=None, token_count=None, stop_requested=False,
        model=reply.conversation.model,
    )
    if not reset:
        return HttpResponseClientRefresh()  # the page is out of date: show what is there now
    reply.refresh_from_db()
    return render(request, f"{PAGE}#message", {"conversation": reply.conversation, "message": reply, "is_last": True})


def _sse(event: str, data: str) -> str:
    # Every line break (\r too: browsers split on it) starts a new data line, so text can
    # never end the event early or forge a field of its own.
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


@require_GET
async def reply_stream(request: HttpRequest, public_id: UUID, pk: int) -> StreamingHttpResponse:
    """Server-sent events for one reply: 'delta' events carry HTML-escaped text as it arrives;
    a final 'done' event carries the finished bubble, rendered server-side."""
    user = await request.auser()
    try:
        reply = await Message.objects.select_related("conversation", "model").aget(
            pk=pk, role=Message.Role.ASSISTANT, conversation__public_id=public_id, conversation__user=user
        )
    except Message.DoesNotExist:
        raise Http404 from None

    async def events() -> AsyncIterator[str]:
        yield ": stream open\n\n"  # sent at once, so the browser knows the stream is up
        if reply.status == Message.Status.PENDING:
            async for text in services.reply_stream(reply=reply):
                yield _sse("delta", html.escape(text, quote=False))
        # The retry button goes on the last reply only.
        is_last = reply.status in Message.RETRYABLE and not await Message.objects.filter(
            conversation_id=reply.conversation_id, pk__gt=reply.pk
        ).aexists()
        # Markdown, highlighting and cleaning are CPU work: done off the event loop.
        bubble = await sync_to_async(render_to_string, thread_sensitive=False)(
            f"{PAGE}#message", {"conversation": reply.conversation, "message": reply, "is_last": is_last}
        )
        yield _sse("done", bubble)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-store, private"
    response["X-Accel-Buffering"] = "no"
    return response
