"""The LLM client: an AIModel turned into an openai SDK client and request arguments, and
provider failures turned into messages a user understands.

The API key is read from the environment variable the model names, at the moment a request
is sent; it is never stored on the model, logged, or put into a message.
"""

import asyncio
import json
import logging
import math
import os
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx2
import openai
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from aimodels.models import OPENAI_PUBLIC_ENDPOINT, AIModel, name_from_model_id

logger = logging.getLogger(__name__)

# Sent as the key to keyless local servers only to satisfy the SDK: the Authorization header
# itself is left out of every request to them (chat_request_kwargs).
KEYLESS = "no-key"
PROBE_PROMPT = "Reply with the single word OK."
PROBE_MAX_TOKENS = 16
TITLE_PROMPT = (
    "Write a title of two to six words for a conversation that begins with the message below. "
    "Answer with the title only: no quotes, no full stop."
)
TITLE_MAX_TOKENS = 24  # a reasoning model spends tokens thinking first: it gets TITLE_REASONING_TOKENS
TITLE_REASONING_TOKENS = 1_000
TITLE_MAX_LENGTH = 80
TITLE_SOURCE_CHARACTERS = 2_000


class FailureKind(StrEnum):
    """What went wrong, as a short machine-readable word (for logs and code, never shown)."""

    MISSING_KEY = "missing_key"
    AUTH = "auth"  # 401: the key was rejected
    PERMISSION = "permission"  # 403: the key was accepted but may not use this model/deployment
    QUOTA = "quota"
    RATE_LIMIT = "rate_limit"
    CONTEXT_LENGTH = "context_length"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    UNKNOWN_HOST = "unknown_host"  # the endpoint's host name does not resolve
    CONNECTION_REFUSED = "connection_refused"  # nothing listens at the endpoint
    CONNECTION = "connection"  # could not connect for another reason (TLS, unreachable network)
    CONNECTION_CUT = "connection_cut"  # the connection broke before the reply was complete
    BAD_REQUEST = "bad_request"
    SERVER = "server"
    STREAM = "stream_error"  # the provider sent an error event in the middle of the stream
    CUT_SHORT = "cut_short"  # the stream ended without a finish_reason (detected by the reader)
    OTHER = "other"


class ProviderError(Exception):
    """A failure talking to an AI provider, with a message fit to show the user, and what a
    log line may say about it: the kind, the HTTP status, the provider's error code and the
    request id the provider gave its response (x-request-id), where there are ones."""

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind,
        retry_after: int | None = None,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retry_after = retry_after
        self.status = status
        self.code = code
        self.request_id = request_id


@dataclass(frozen=True)
class ConnectionCheck:
    latency_ms: int
    reply: str


# Clients -------------------------------------------------------------------------------------
# One AsyncOpenAI client (one connection pool) per event loop and connection setting; a client
# is bound to the loop it first ran on, so a new loop (a test, a second server thread) gets its own.
_async_clients: dict[tuple, openai.AsyncOpenAI] = {}


def _read_key(variable: str) -> str:
    if value := os.environ.get(variable):
        return value
    raise ProviderError(
        f"The API key is not configured: the environment variable {variable} is not set on the server.",
        kind=FailureKind.MISSING_KEY,
    )


def _connection_options(model: AIModel) -> dict[str, Any]:
    if model.provider == AIModel.Provider.AZURE:
        return {"azure_endpoint": model.api_endpoint, "api_version": model.api_version}
    return {"base_url": model.api_endpoint or OPENAI_PUBLIC_ENDPOINT}


def _timeout(read: float) -> openai.Timeout:
    return openai.Timeout(read, connect=settings.LLM_CONNECT_TIMEOUT)


def client_get(*, model: AIModel) -> openai.AsyncOpenAI:
    """The async SDK client for a model (AsyncAzureOpenAI for Azure), reused across requests.
    Call it from async code. Raises ProviderError when the model's key variable is not set."""
    if model.api_key_env:
        _read_key(model.api_key_env)
    loop = asyncio.get_running_loop()
    options = _connection_options(model)
    cache_key = (
        loop,
        model.provider,
        *sorted(options.items()),
        model.api_key_env,
        settings.LLM_CONNECT_TIMEOUT,
        settings.LLM_READ_TIMEOUT,
        settings.LLM_MAX_RETRIES,
    )
    client = _async_clients.get(cache_key)
    if client is None:
        for stale in [key for key in _async_clients if key[0].is_closed()]:
            del _async_clients[stale]
        if model.api_key_env:
            variable = model.api_key_env

            async def api_key() -> str:
                return _read_key(variable)
        else:
            api_key = KEYLESS
        client_class = openai.AsyncAzureOpenAI if model.provider == AIModel.Provider.AZURE else openai.AsyncOpenAI
        client = client_class(
            **options,
            api_key=api_key,
            timeout=_timeout(settings.LLM_READ_TIMEOUT),
            max_retries=settings.LLM_MAX_RETRIES,
        )
        _async_clients[cache_key] = client
    return client


@contextmanager
def _sync_client(model: AIModel) -> Iterator[openai.OpenAI]:
    """A short-lived sync client for admin work (connection test, model import): no retries,
    the shorter LLM_PROBE_TIMEOUT, closed afterwards."""
    api_key = _read_key(model.api_key_env) if model.api_key_env else KEYLESS
    client_class = openai.AzureOpenAI if model.provider == AIModel.Provider.AZURE else openai.OpenAI
    client = client_class(
        **_connection_options(model), api_key=api_key, timeout=_timeout(settings.LLM_PROBE_TIMEOUT), max_retries=0
    )
    try:
        yield client
    finally:
        client.close()


# Requests ------------------------------------------------------------------------------------
def _messages_for(model: AIModel, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not model.is_reasoning:
        return [dict(m) for m in messages]
    if model.system_prompt_handling == AIModel.SystemPromptHandling.DEVELOPER:
        return [{**m, "role": "developer"} if m["role"] == "system" else dict(m) for m in messages]
    # Folded: the system prompt (the system messages before the conversation) goes into the first
    # user message; a system message within the conversation (a lookup's results) goes as a user's.
    leading = next((index for index, m in enumerate(messages) if m["role"] != "system"), len(messages))
    system = "\n\n".join(m["content"] for m in messages[:leading])
    rest = [{**m, "role": "user"} if m["role"] == "system" else dict(m) for m in messages[leading:]]
    if system:
        first_user = next((m for m in rest if m["role"] == "user"), None)
        if first_user is None:
            rest.insert(0, {"role": "user", "content": system})
        else:
            first_user["content"] = f"{system}\n\n{first_user['content']}"
    return rest


def chat_request_kwargs(
    *,
    model: AIModel,
    messages: list[dict[str, Any]],
    stream: bool = True,
    max_tokens: int | None = None,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str | None = None,
) -> dict[str, Any]:
    """Arguments for client.chat.completions.create(**kwargs) that follow the model's rules.

    messages are {"role": "system" | "user" | "assistant", "content": str}. Reasoning models get
    no temperature, max_completion_tokens instead of max_tokens, and the system prompt as a
    'developer' message or folded into the first user message. The reply streams (with usage
    in the last chunk) when stream is asked for and the model supports it: kwargs["stream"] says
    which. max_tokens lowers the model's reply limit for this request. tools (OpenAI's function
    definitions) and tool_choice ("auto", "none") are sent as given.
    """
    limit = model.max_completion_tokens if max_tokens is None else min(max_tokens, model.max_completion_tokens)
    kwargs: dict[str, Any] = {"model": model.deployment_name, "messages": _messages_for(model, messages)}
    if model.is_reasoning:
        kwargs["max_completion_tokens"] = limit
    else:
        kwargs["max_tokens"] = limit
        kwargs["temperature"] = float(model.temperature)
    kwargs["stream"] = stream and model.supports_streaming
    if kwargs["stream"]:
        kwargs["stream_options"] = {"include_usage": True}
    if tools:
        kwargs["tools"] = tools
        kwargs["tool_choice"] = tool_choice or "auto"
    if not model.api_key_env:
        kwargs["extra_headers"] = {"Authorization": openai.omit}
    return kwargs


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asks to be called: the call's id, the tool's name and its arguments (the
    model's JSON text, unchecked)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ReplyPiece:
    """Part of a reply as it arrives: some text, and with the last pieces the finish reason
    (None until the provider says the reply is complete), the tools the model asks to be called
    (its streamed calls put together) and the usage the provider reports. The first piece
    carries the request id the provider gave its response (x-request-id)."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    request_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


def _tool_calls_add(calls: dict[int, dict[str, str]], fragments: list[dict[str, Any]]) -> None:
    """Adds a streamed delta's pieces of tool calls to `calls` (by index): the first piece of a
    call has its id and name, each piece a part of its arguments."""
    for fragment in fragments:
        if not isinstance(fragment, dict):
            continue
        call = calls.setdefault(fragment.get("index", len(calls)), {"id": "", "name": "", "arguments": ""})
        call["id"] = fragment.get("id") or call["id"]
        function = fragment.get("function") or {}
        call["name"] += function.get("name") or ""
        call["arguments"] += function.get("arguments") or ""


def _tool_calls(calls: dict[int, dict[str, str]]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(**calls[index]) for index in sorted(calls))


def _usage(usage: Any) -> dict[str, int] | None:
    if not usage:
        return None
    get = usage.get if isinstance(usage, dict) else lambda name: getattr(usage, name, None)
    return {"prompt_tokens": get("prompt_tokens"), "completion_tokens": get("completion_tokens")}


async def reply_pieces(
    *,
    model: AIModel,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str | None = None,
) -> AsyncIterator[ReplyPiece]:
    """Ask the model for a reply and yield it piece by piece the moment each arrives.

    A model that streams is read through the SDK's raw streaming response and each event is
    parsed here with json: the SDK's typed chunks cost about 0.15 ms each to build, most of
    what a delta costs; its first piece, yielded as soon as the response starts, holds only the
    request id. A model that does not stream yields its whole reply as one piece.
    Raises the SDK's errors (openai.APIError and kin, for error_describe) and ProviderError.
    An error raised once the response has started carries its request id (_request_id_of).
    """
    client = client_get(model=model)
    kwargs = chat_request_kwargs(model=model, messages=messages, stream=True, tools=tools, tool_choice=tool_choice)
    if not kwargs["stream"]:
        completion = await client.chat.completions.create(**kwargs)
        choice = completion.choices[0] if completion.choices else None
        calls = [call for call in (choice.message.tool_calls or []) if call.type == "function"] if choice else []
        yield ReplyPiece(
            text=(choice.message.content or "") if choice else "",
            finish_reason=choice.finish_reason if choice else None,
            usage=_usage(completion.usage),
            request_id=getattr(completion, "_request_id", None),
            tool_calls=tuple(ToolCall(call.id, call.function.name, call.function.arguments) for call in calls),
        )
        return
    async with client.chat.completions.with_streaming_response.create(**kwargs) as response:
        request, request_id = response.http_request, response.request_id
        yield ReplyPiece(request_id=request_id)
        calls: dict[int, dict[str, str]] = {}
        try:
            async for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if error := chunk.get("error"):
                    message = error.get("message") if isinstance(error, dict) else None
                    failure = openai.APIError(message or "An error occurred during streaming", request, body=error)
                    raise _answered(failure, request_id)
                choices = chunk.get("choices") or [{}]  # Azure opens, and usage closes, with no choices
                delta = choices[0].get("delta") or {}
                text = delta.get("content") or ""
                if fragments := delta.get("tool_calls"):
                    _tool_calls_add(calls, fragments)
                finish_reason = choices[0].get("finish_reason")
                usage = _usage(chunk.get("usage"))
                if text or finish_reason or usage:
                    # The calls, once put together, come with the reply's end.
                    called = _tool_calls(calls) if finish_reason else ()
                    yield ReplyPiece(text=text, finish_reason=finish_reason, usage=usage, tool_calls=called)
        except httpx2.TimeoutException as error:
            raise _answered(openai.APITimeoutError(request=request), request_id) from error
        except (httpx2.TransportError, httpx2.StreamError) as error:
            raise _answered(openai.APIConnectionError(request=request), request_id) from error


def _answered(error: openai.APIError, request_id: str | None) -> openai.APIError:
    """error, marked with the request id of the response it broke (_request_id_of reads it)."""
    error.request_id = request_id  # type: ignore[attr-defined]  # as APIStatusError has it
    return error


def _request_id_of(error: BaseException) -> str | None:
    """The provider's request id (x-request-id) of the response an error came with, if any:
    APIStatusError has it from the SDK, errors raised mid-stream from reply_pieces."""
    value = getattr(error, "request_id", None)
    return value if isinstance(value, str) and value else None


def title_clean(text: str) -> str:
    """A model's answer to TITLE_PROMPT as a title: its first line, without a "Title:" label,
    quotes, markdown emphasis or a closing full stop; at most TITLE_MAX_LENGTH characters."""
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    line = re.sub(r"^\s*(title\s*:\s*)", "", line, flags=re.IGNORECASE)
    line = " ".join(line.strip().strip("\"'“”‘’«»`*#_ ").split()).rstrip(".")
    return line if len(line) <= TITLE_MAX_LENGTH else line[: TITLE_MAX_LENGTH - 1].rstrip() + "…"


async def title_ask(*, model: AIModel, text: str) -> str:
    """A short title for a conversation that begins with `text`, asked of `model` (one small,
    non-streamed request); "" when the answer holds none. Raises the SDK's errors and ProviderError."""
    messages = [{"role": "system", "content": TITLE_PROMPT}, {"role": "user", "content": text[:TITLE_SOURCE_CHARACTERS]}]
    limit = TITLE_REASONING_TOKENS if model.is_reasoning else TITLE_MAX_TOKENS
    kwargs = chat_request_kwargs(model=model, messages=messages, stream=False, max_tokens=limit)
    completion = await client_get(model=model).chat.completions.create(**kwargs)
    answer = completion.choices[0].message.content if completion.choices else None
    return title_clean(answer or "")


# Errors --------------------------------------------------------------------------------------
def _provider_label(model: AIModel) -> str:
    """Who serves the model, as users may read it: the provider's name, or for a server of our
    own "the server behind <model>". Never the endpoint's host, port or URL: users have no use
    for an internal address (the log line and the admin's messages carry it)."""
    if model.provider == AIModel.Provider.OPENAI_COMPATIBLE:
        return f"the server behind {model.name}"
    return model.get_provider_display()


def _retry_after(response: httpx2.Response) -> int | None:
    headers = response.headers
    seconds: float | None = None
    try:
        if value := headers.get("retry-after-ms"):
            seconds = float(value) / 1000
        elif value := headers.get("retry-after"):
            try:
                seconds = float(value)
            except ValueError:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(1, math.ceil(seconds))


def _provider_message(error: openai.APIError) -> str:
    body = error.body
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.message)[:300]


def _underlying(error: BaseException) -> list[BaseException]:
    """error and every exception under it: causes, contexts, and the members of exception
    groups (anyio raises one when every address of a host refused)."""
    seen: set[int] = set()
    found: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions
    return found


def _connect_failure(error: httpx2.ConnectError) -> tuple[FailureKind, str]:
    """Why a connection could not be made: the kind, and the reason in words."""
    under = _underlying(error)
    if any(isinstance(e, socket.gaierror) for e in under):
        return FailureKind.UNKNOWN_HOST, ""
    if any(isinstance(e, ConnectionRefusedError) for e in under):
        return FailureKind.CONNECTION_REFUSED, "the server refused the connection or is not running."
    if any(isinstance(e, ssl.SSLError) for e in under):
        return FailureKind.CONNECTION, "a secure (TLS) connection could not be set up."
    return FailureKind.CONNECTION, "the server could not be reached."


_LOGGABLE = re.compile(r"[^A-Za-z0-9._:/@+=-]")


def _loggable(value: object, model: AIModel) -> str | None:
    """A provider-given token (an error code, a request id) safe to put in one log line."""
    if value is None or value == "":
        return None
    return _LOGGABLE.sub("?", _scrub(str(value), model))[:100]


def _scrub(text: str, model: AIModel) -> str:
    key = os.environ.get(model.api_key_env) if model.api_key_env else None
    return text.replace(key, "[key]") if key else text


def error_describe(*, error: BaseException, model: AIModel) -> ProviderError:
    """The ProviderError for any failure of a request to the model's provider: what happened,
    in words a user understands, with retry_after seconds for a rate limit."""
    if isinstance(error, ProviderError):
        return error
    who = _provider_label(model)
    Who = who[:1].upper() + who[1:]  # the label at the start of a sentence
    name = model.name
    compatible = model.provider == AIModel.Provider.OPENAI_COMPATIBLE
    # "OpenAI for gpt-4o", but "the server behind local" (which names the model already).
    target = who if compatible else f"{who} for {name}"
    match error:
        case openai.AuthenticationError():
            where = f" (from {model.api_key_env})" if model.api_key_env else ""
            described = ProviderError(
                f"{Who} rejected the API key for {name}{where}. Check that the key is valid and may use this model.",
                kind=FailureKind.AUTH,
            )
        case openai.PermissionDeniedError():
            what = "deployment" if model.provider == AIModel.Provider.AZURE else "model"
            if model.api_key_env:
                denied = (
                    f"{Who} refused access to {name}: the API key (from {model.api_key_env}) was accepted, but it "
                    f"is not allowed to use the {what} “{model.deployment_name}”."
                )
            else:
                denied = f"{Who} refused access to the {what} “{model.deployment_name}” used by {name}."
            described = ProviderError(
                f"{denied} The provider said: {_provider_message(error)}", kind=FailureKind.PERMISSION
            )
        case openai.RateLimitError() if error.code == "insufficient_quota":
            described = ProviderError(
                f"{'The' if compatible else f'The {who}'} account behind {name} has run out of credit or quota.",
                kind=FailureKind.QUOTA,
            )
        case openai.RateLimitError():
            seconds = _retry_after(error.response)
            when = f"in {seconds} second{'s' if seconds != 1 else ''}" if seconds else "in a moment"
            described = ProviderError(
                f"{Who} is limiting how fast {name} can be used. Try again {when}.",
                kind=FailureKind.RATE_LIMIT,
                retry_after=seconds,
            )
        case openai.BadRequestError() if error.code == "context_length_exceeded":
            described = ProviderError(
                f"The conversation is too long for {name}. Start a new conversation or send a shorter message.",
                kind=FailureKind.CONTEXT_LENGTH,
            )
        case openai.NotFoundError():
            what = "deployment" if model.provider == AIModel.Provider.AZURE else "model"
            described = ProviderError(
                f"{Who} has no {what} named “{model.deployment_name}” (used by {name}), or the endpoint URL is wrong.",
                kind=FailureKind.NOT_FOUND,
            )
        case openai.APITimeoutError():
            limits = error.request.extensions.get("timeout", {}) if error.request is not None else {}
            phase = "connect" if isinstance(error.__cause__, httpx2.ConnectTimeout) else "read"
            seconds = limits.get(phase)
            within = f" within {seconds:g} seconds" if isinstance(seconds, (int, float)) else " in time"
            described = ProviderError(f"{Who} did not answer{within}. Try again later.", kind=FailureKind.TIMEOUT)
        case openai.APIConnectionError() if isinstance(error.__cause__, httpx2.ConnectError):
            kind, why = _connect_failure(error.__cause__)
            if kind == FailureKind.UNKNOWN_HOST:
                why = "the endpoint's host name could not be found (the DNS lookup failed)."
            described = ProviderError(f"Could not connect to {target}: {why}", kind=kind)
        case openai.APIConnectionError():
            described = ProviderError(
                f"The connection to {who} broke off before the reply was complete. Try again.",
                kind=FailureKind.CONNECTION_CUT,
            )
        case openai.BadRequestError() | openai.UnprocessableEntityError():
            described = ProviderError(
                f"{Who} refused the request for {name}: {_provider_message(error)}", kind=FailureKind.BAD_REQUEST
            )
        case openai.APIStatusError() if error.status_code >= 500:
            described = ProviderError(
                f"{Who} had an internal error (HTTP {error.status_code}). Try again in a moment.",
                kind=FailureKind.SERVER,
            )
        case openai.APIStatusError():
            described = ProviderError(
                f"{Who} answered with an error (HTTP {error.status_code}): {_provider_message(error)}",
                kind=FailureKind.OTHER,
            )
        case openai.APIError():
            described = ProviderError(
                f"{Who} reported an error during the reply: {_provider_message(error)}", kind=FailureKind.STREAM
            )
        case _:
            described = ProviderError(f"Something went wrong talking to {target}.", kind=FailureKind.OTHER)
    described.message = _scrub(described.message, model)
    described.args = (described.message,)
    described.status = error.status_code if isinstance(error, openai.APIStatusError) else None
    described.code = _loggable(error.code if isinstance(error, openai.APIError) else None, model)
    described.request_id = _loggable(_request_id_of(error), model)
    return described


def _admin_failure(error: Exception, model: AIModel) -> ProviderError:
    """error_describe for the admin's helpers, which catch everything: an error that is not the
    provider's is logged (the chat logs its failures itself). Staff read these messages, so a
    failure of a request names the endpoint it went to, which users' messages never do."""
    if not isinstance(error, (ProviderError, openai.APIError)):
        logger.warning("Unexpected %s from the provider of AI model %s", type(error).__name__, model.pk)
    described = error_describe(error=error, model=model)
    if not isinstance(error, ProviderError):  # a request was sent (a missing key stops it before)
        described.message = f"{described.message} (Endpoint: {model.endpoint_url})"
        described.args = (described.message,)
    return described


# Admin work ----------------------------------------------------------------------------------
def connection_test(*, model: AIModel) -> ConnectionCheck:
    """Send a minimal real chat request to the model. Raises ProviderError."""
    try:
        with _sync_client(model) as client:
            started = time.perf_counter()
            completion = client.chat.completions.create(
                **chat_request_kwargs(
                    model=model,
                    messages=[{"role": "user", "content": PROBE_PROMPT}],
                    stream=False,
                    max_tokens=PROBE_MAX_TOKENS,
                )
            )
            latency = time.perf_counter() - started
    except Exception as error:
        raise _admin_failure(error, model) from error
    reply = (completion.choices[0].message.content or "").strip() if completion.choices else ""
    return ConnectionCheck(latency_ms=round(latency * 1000), reply=reply[:60])


def endpoint_models_list(*, model: AIModel) -> list[str]:
    """The model ids the model's endpoint lists (GET /models). Raises ProviderError."""
    extra = {} if model.api_key_env else {"extra_headers": {"Authorization": openai.omit}}
    try:
        with _sync_client(model) as client:
            return [m.id for m in client.models.list(**extra).data]
    except Exception as error:
        raise _admin_failure(error, model) from error


def endpoint_models_import(*, source: AIModel) -> tuple[list[AIModel], list[str]]:
    """For every id the source's OpenAI-compatible endpoint lists that no model on that endpoint
    uses yet, create an inactive config with the source's connection and limits. Returns the
    new models and the ids skipped because they break the naming rules. Raises ProviderError;
    ValueError for another provider."""
    if source.provider != AIModel.Provider.OPENAI_COMPATIBLE:
        raise ValueError("Models can be imported from OpenAI-compatible servers only.")
    ids = endpoint_models_list(model=source)
    created, skipped = [], []
    with transaction.atomic():
        known = set(
            AIModel.objects.filter(provider=source.provider, api_endpoint=source.api_endpoint).values_list(
                "deployment_name", flat=True
            )
        )
        for model_id in dict.fromkeys(ids):
            if model_id in known:
                continue
            imported = AIModel(
                name=name_available(name_from_model_id(model_id)),
                provider=source.provider,
                api_endpoint=source.api_endpoint,
                deployment_name=model_id,
                api_key_env=source.api_key_env,
                context_window=source.context_window,
                max_completion_tokens=source.max_completion_tokens,
                temperature=source.temperature,
                supports_streaming=source.supports_streaming,
                is_active=False,
                description=f"Imported from {source.api_endpoint}. Check its context window, then activate it.",
            )
            try:
                imported.full_clean()
            except ValidationError:
                skipped.append(model_id)
                continue
            imported.save()
            created.append(imported)
    return created, skipped


def name_available(name: str) -> str:
    """name, or name-2, name-3... : the first that no model uses (ignoring case), within 50 characters."""
    candidate, n = name, 1
    while AIModel.objects.filter(name__iexact=candidate).exists():
        n += 1
        suffix = f"-{n}"
        candidate = name[: 50 - len(suffix)] + suffix
    return candidate
