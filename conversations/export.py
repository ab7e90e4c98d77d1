"""Exports of conversations: one as JSON or Markdown, or all of a user's as one JSON document.

Both formats hold the active branch only (the messages the page shows), in the order they
were written. The JSON shapes (docs/export.md) are stable: a change that breaks a reader gets a
new version.

A conversation, {"format": "chatter.conversation", "version": 1, ...}:
    id (its public id), title, model (the conversation's model's name), system_prompt,
    created_at, updated_at, pinned_at, archived_at (ISO 8601 with the time zone, or null), and
    messages: each {role, content, model (the reply's model's name, null for the user's),
    created_at, status, error (null when none), usage ({prompt_tokens, completion_tokens} as the
    provider reported them, or null), sources ([{title, url}] of its web lookups)}.
    status is complete, interrupted, failed, or in_progress: a reply still being written is
    exported with its text so far (what a page would show now), so that the export holds every
    message there is and says which one was not finished.

All of a user's, {"format": "chatter.account", "version": 1, "exported_at", "user": {username,
    email, date_joined, default_system_prompt}, "conversations": [a conversation as above, ...]}.
"""

import json
import re
from collections.abc import Iterator
from urllib.parse import quote

from django.utils import timezone
from django.utils.text import slugify

from conversations.models import Conversation, Message

FORMAT_VERSION = 1
FILENAME_LENGTH = 60  # characters of the title in a download's name
CONVERSATIONS_CHUNK = 100  # conversations read in one query by the account export
IN_PROGRESS = "in_progress"


def _time(value) -> str | None:
    return value.isoformat() if value else None


def _status(message: Message) -> str:
    status = message.display_status  # a reply nobody writes any more is interrupted
    return IN_PROGRESS if status in Message.IN_PROGRESS else status


def _usage(usage: dict | None) -> dict | None:
    if not usage:
        return None
    return {kind: usage.get(kind) for kind in ("prompt_tokens", "completion_tokens")}


def message_data(message: Message) -> dict:
    return {
        "role": message.role,
        "content": message.content,
        "model": message.model.name if message.model_id else None,
        "created_at": _time(message.created_at),
        "status": _status(message),
        "error": message.error or None,
        "usage": _usage(message.usage),
        "sources": [{"title": source.get("title") or "", "url": source["url"]} for source in message.lookup_sources],
    }


def conversation_data(conversation: Conversation) -> dict:
    """The conversation as a chatter.conversation document: one query, for the messages of its
    active branch (`conversation.model` is expected loaded with it)."""
    messages = conversation.branch().select_related("model").defer("content_html").order_by("created_at", "pk")
    return {
        "format": "chatter.conversation",
        "version": FORMAT_VERSION,
        "id": str(conversation.public_id),
        "title": conversation.title,
        "model": conversation.model.name,
        "system_prompt": conversation.system_prompt,
        "created_at": _time(conversation.created_at),
        "updated_at": _time(conversation.updated_at),
        "pinned_at": _time(conversation.pinned_at),
        "archived_at": _time(conversation.archived_at),
        "messages": [message_data(message) for message in messages.iterator()],
    }


def account_json(user) -> Iterator[str]:
    """All of the user's conversations (archived ones too) as one chatter.account document, in
    pieces: one conversation at a time, read a chunk of conversations per query and one query per
    conversation for its messages, so that the whole never needs to be in memory."""
    head = json.dumps({
        "format": "chatter.account",
        "version": FORMAT_VERSION,
        "exported_at": _time(timezone.now()),
        "user": {
            "username": user.username,
            "email": user.email,
            "date_joined": _time(user.date_joined),
            "default_system_prompt": user.default_system_prompt,
        },
    }, ensure_ascii=False)
    yield head[:-1] + ', "conversations": [\n'
    rows = Conversation.objects.for_user(user).select_related("model").order_by("pk")
    after, separator = 0, ""
    while chunk := list(rows.filter(pk__gt=after)[:CONVERSATIONS_CHUNK]):
        for conversation in chunk:
            yield separator + json.dumps(conversation_data(conversation), ensure_ascii=False)
            separator = ",\n"
        after = chunk[-1].pk
    yield "\n]}\n"


# Markdown ------------------------------------------------------------------------------------
# The layout: the title, the conversation's facts, then each message under a "## User" or
# "## Assistant" heading with its facts. Headings only ever come from here: what a user wrote
# (messages, system prompt) is plain text and goes in a fenced block longer than any run of
# backticks in it, so it shows as written and no line of it can end the block; a reply is
# Markdown and goes in a block quote (every line starts with "> "), so it renders as written,
# inside the quote, and a heading in it is never one of the export's. One-line texts (title,
# names, errors, sources) have the punctuation that could make markup escaped.
ROLE_HEADINGS = {"user": "User", "assistant": "Assistant", "system": "System"}
STATUS_WORDS = {
    "complete": "complete",
    "interrupted": "interrupted (cut short)",
    "failed": "failed",
    IN_PROGRESS: "in progress (still being written when exported: the text so far)",
}
_PUNCTUATION = re.compile(r"([\\`*_\[\]<>#!|~&])")  # what could start markup inside a line
_BACKTICKS = re.compile(r"`+")


def _line(text: str) -> str:
    """One line of text, with a backslash before what could make markup (line breaks become spaces)."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))


def _fenced(text: str) -> str:
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _link(source: dict) -> str:
    url = quote(source["url"], safe=":/?#[]@!$&'()*+,;=%~")  # no space, <, > or line break left
    return f"- [{_line(source['title'] or source['url'])}](<{url}>)"


def _message_markdown(message: dict) -> str:
    facts = []
    if message["model"]:
        facts.append(f"- Model: {_line(message['model'])}")
    facts.append(f"- Time: {message['created_at']}")
    status = STATUS_WORDS.get(message["status"], message["status"])
    facts.append(f"- Status: {status}" + (f". {_line(message['error'])}" if message["error"] else ""))
    if usage := message["usage"]:
        facts.append(f"- Tokens: {usage['prompt_tokens']} prompt, {usage['completion_tokens']} completion")
    parts = [f"## {ROLE_HEADINGS.get(message['role'], _line(message['role']))}", "\n".join(facts)]
    if message["content"]:
        parts.append(_fenced(message["content"]) if message["role"] != "assistant" else _quoted(message["content"]))
    if message["sources"]:
        parts.append("Sources:\n\n" + "\n".join(_link(source) for source in message["sources"]))
    return "\n\n".join(parts)


def conversation_markdown(data: dict) -> str:
    """A chatter.conversation document (conversation_data) as Markdown."""
    facts = [
        f"- Model: {_line(data['model'])}",
        f"- Created: {data['created_at']}",
        f"- Updated: {data['updated_at']}",
    ]
    if data["archived_at"]:
        facts.append(f"- Archived: {data['archived_at']}")
    parts = [f"# {_line(data['title']) or 'Conversation'}", "\n".join(facts)]
    if data["system_prompt"]:
        parts.append("## System prompt\n\n" + _fenced(data["system_prompt"]))
    parts += [_message_markdown(message) for message in data["messages"]]
    return "\n\n---\n\n".join([parts[0] + "\n\n" + parts[1], *parts[2:]]) + "\n"


def export_filename(title: str, extension: str) -> str:
    """A download's name from a title: its words in lowercase, joined by hyphens (letters, digits,
    hyphens and underscores only: no quote, slash, dot, space or control character), or
    "conversation" when none are left."""
    name = slugify(title, allow_unicode=True)[:FILENAME_LENGTH].strip("-_") or "conversation"
    return f"{name}.{extension}"
