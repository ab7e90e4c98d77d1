"""An honest OpenAI-compatible HTTP server for tests and benchmarks.

It speaks plain HTTP/1.1 on 127.0.0.1 (keep-alive, chunked streaming like the real services)
from an asyncio loop in a background thread, so the real openai SDK talks to it over real
sockets from sync code, async code, or another process. It serves

    POST /v1/chat/completions                                   OpenAI and compatible servers
    POST /openai/deployments/<name>/chat/completions?api-version=...   Azure OpenAI
    GET  /v1/models and GET /openai/models                      model lists

records every request it receives (`requests`), and answers each one from a queue of scripts
(`script()`, `queue_error()`), falling back to `default_reply` when the queue is empty. Every
response carries an x-request-id header, as OpenAI's and Azure's do; the recorded request
holds the id its response got (`request_id`):

    with FakeUpstream() as upstream:
        upstream.script(FakeReply(text="Hello there", chunks=2, delay=0.05))
        upstream.queue_error(status=429, retry_after=7)
        client = AsyncOpenAI(base_url=upstream.openai_base_url, api_key="sk-test")
        ...
        assert upstream.last.body["model"] == "gpt-4o-mini"

Tool calling works as in OpenAI's Chat Completions API: a reply with `tool_calls` answers with
`message.tool_calls` and finish_reason "tool_calls", or streams each call as a header delta
(index, id, type, name, arguments "") and then its arguments in `argument_chunks` fragments.
The client's next request, with the `role: "tool"` messages, is recorded like any other:

    upstream.script(
        FakeReply(tool_calls=[FakeToolCall("get_weather", {"city": "Paris"})]),
        FakeReply(text="It is sunny in Paris."),
    )
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

Route = Literal["chat", "models"]

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
CHAT_PATH = re.compile(r"^(?:/v1|/openai/deployments/(?P<deployment>[^/]+))/chat/completions$")
MODELS_PATHS = ("/v1/models", "/openai/models")
MAX_BODY = 32 * 1024 * 1024
DEFAULT_TEXT = "Hello! This is the fake upstream answering."
# The x-request-id of the response being written, set per request (each connection is a task).
_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("fake_upstream_request_id")


@dataclass
class FakeToolCall:
    """One function call of a reply. A dict `arguments` is sent as json.dumps of it, a str as
    it is (it need not be valid JSON). Without an `id`, it gets a fresh "call_…" id when
    created, which it keeps every time it is sent."""

    name: str
    arguments: str | dict
    id: str | None = None

    def __post_init__(self) -> None:
        if self.id is None:
            self.id = f"call_{uuid.uuid4().hex[:24]}"

    @property
    def arguments_json(self) -> str:
        """The arguments as sent on the wire."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    def to_message(self) -> dict[str, Any]:
        """As in a non-streamed message's tool_calls."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments_json}}


@dataclass
class FakeReply:
    """A chat completion reply.

    Streamed as `chunks` content deltas (default: one per word), after `first_delay` seconds
    and with `delay` seconds between deltas; or as one JSON document when the request does not
    stream (after `first_delay`). Mid-stream faults: `error_after` sends an {"error": ...} event
    after that many deltas; `cut_after` closes the socket after that many deltas without
    finishing the response; `hang_after` stops sending after that many deltas (0: before the
    response starts) and keeps the connection open until the client gives up. Streams use
    chunked transfer encoding like the real services (a cut is then a broken response); with
    chunked=False the body ends when the connection closes (a cut then looks like a normal end).

    Tool calls: with `tool_calls`, the reply has no text unless `text` is given (it defaults to
    DEFAULT_TEXT only without tool calls) and finish_reason defaults to "tool_calls" (else
    "stop"). Streamed, the text deltas (if any) come first; then, for call i, one delta
    {"tool_calls": [{"index": i, "id", "type": "function", "function": {"name", "arguments": ""}}]}
    and `argument_chunks` deltas {"tool_calls": [{"index": i, "function": {"arguments": part}}]}
    (at most one per character). The mid-stream faults count all of these deltas, so they can
    break a call midway. Not streamed, message.tool_calls holds the calls and content is null
    unless there is text.
    """

    text: str | None = None  # None: DEFAULT_TEXT, or "" when there are tool calls
    chunks: int | None = None
    delay: float = 0.0
    first_delay: float = 0.0
    finish_reason: str | None = None  # None: "tool_calls" when there are tool calls, else "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_after: int | None = None
    error_message: str = "The server had an error while processing your request."
    cut_after: int | None = None
    hang_after: int | None = None
    chunked: bool = True
    route: Route = "chat"
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    argument_chunks: int = 3

    def __post_init__(self) -> None:
        if self.text is None:
            self.text = "" if self.tool_calls else DEFAULT_TEXT
        if self.finish_reason is None:
            self.finish_reason = "tool_calls" if self.tool_calls else "stop"

    def pieces(self) -> list[str]:
        """The text's content deltas (none when a reply with tool calls has no text)."""
        assert self.text is not None
        if self.tool_calls and not self.text:
            return []
        if self.chunks is None:
            return re.findall(r"\s*\S+", self.text) or [self.text]
        return _split(self.text, self.chunks)

    def deltas(self) -> list[dict[str, Any]]:
        """Every delta streamed after the role chunk and before the finish chunk, in order."""
        deltas: list[dict[str, Any]] = [{"content": piece} for piece in self.pieces()]
        for index, call in enumerate(self.tool_calls):
            function = {"name": call.name, "arguments": ""}
            deltas.append({"tool_calls": [{"index": index, "id": call.id, "type": "function", "function": function}]})
            deltas += [
                {"tool_calls": [{"index": index, "function": {"arguments": part}}]}
                for part in _split(call.arguments_json, self.argument_chunks)
            ]
        return deltas


@dataclass
class FakeError:
    """An HTTP error response with OpenAI's error body:
    {"error": {"message", "type", "param", "code"}}. `route` limits which requests it answers
    (None: the next request of any kind)."""

    status: int = 500
    message: str = "The server had an error while processing your request. Sorry about that!"
    type: str = "server_error"
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    first_delay: float = 0.0
    route: Route | None = None

    @classmethod
    def bad_key(cls, **overrides: Any) -> FakeError:
        return cls(**{
            "status": 401,
            "message": (
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            ),
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            **overrides,
        })

    @classmethod
    def permission_denied(cls, **overrides: Any) -> FakeError:
        """403: the key is valid, but may not use this model (OpenAI's body for it)."""
        return cls(**{
            "status": 403,
            "message": "You are not allowed to sample from this model",
            "type": "invalid_request_error",
            **overrides,
        })

    @classmethod
    def model_not_found(cls, model: str = "missing-model", **overrides: Any) -> FakeError:
        return cls(**{
            "status": 404,
            "message": f"The model `{model}` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "code": "model_not_found",
            **overrides,
        })

    @classmethod
    def rate_limited(cls, retry_after: float | None = 20, **overrides: Any) -> FakeError:
        return cls(**{
            "status": 429,
            "message": "Rate limit reached for requests. Please try again later.",
            "type": "requests",
            "code": "rate_limit_exceeded",
            "retry_after": retry_after,
            **overrides,
        })

    @classmethod
    def context_length_exceeded(cls, limit: int = 8192, requested: int = 9000, **overrides: Any) -> FakeError:
        return cls(**{
            "status": 400,
            "message": (
                f"This model's maximum context length is {limit} tokens. However, your messages "
                f"resulted in {requested} tokens. Please reduce the length of the messages."
            ),
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
            "param": "messages",
            **overrides,
        })

    @classmethod
    def server_error(cls, **overrides: Any) -> FakeError:
        return cls(**{"status": 500, **overrides})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


Script = FakeReply | FakeError
PRESETS = {
    401: FakeError.bad_key,
    404: FakeError.model_not_found,
    429: FakeError.rate_limited,
    500: FakeError.server_error,
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body; the raw text if it was not JSON; None if empty
    request_id: str = ""  # the x-request-id header of the response it got

    @property
    def auth_kind(self) -> str | None:
        """'bearer' (OpenAI style), 'api-key' (Azure style) or None."""
        if self.headers.get("authorization", "").lower().startswith("bearer "):
            return "bearer"
        if "api-key" in self.headers:
            return "api-key"
        return None

    @property
    def api_key(self) -> str | None:
        if self.auth_kind == "bearer":
            return self.headers["authorization"][len("bearer ") :]
        return self.headers.get("api-key")


class _Disconnect(Exception):
    pass


class FakeUpstream:
    """The server. start()/stop(), or use it as a context manager (sync or async)."""

    def __init__(self, *, models: list[str] | None = None, api_key: str | None = None) -> None:
        self.models: list[str] = list(models or ["gpt-4o-mini", "gpt-4o", "o1"])
        # When set, requests without this key (Bearer or api-key) get a 401 like the real service.
        self.api_key = api_key
        self.default_reply = FakeReply()
        self.requests: list[RecordedRequest] = []
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self.port: int | None = None

    # Scripting -----------------------------------------------------------------------------
    def script(self, *items: Script) -> None:
        """Queue replies or errors for the next requests, in order."""
        with self._lock:
            self._scripts.extend(items)

    def queue_error(self, *, status: int, **kwargs: Any) -> FakeError:
        """Queue an error for the next request, e.g. queue_error(status=429, retry_after=7).
        401, 404, 429 and 500 get the real service's body for that status unless overridden."""
        preset = PRESETS.get(status)
        error = preset(**kwargs) if preset else FakeError(status=status, type="invalid_request_error", **kwargs)
        self.script(error)
        return error

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()

    def _next_script(self, route: Route) -> Script | None:
        with self._lock:
            for item in self._scripts:
                if item.route is None or item.route == route:
                    self._scripts.remove(item)
                    return item
        return None

    @property
    def pending_scripts(self) -> int:
        with self._lock:
            return len(self._scripts)

    # Addresses -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, which is also the Azure endpoint (the SDK adds /openai)."""
        if self.port is None:
            raise RuntimeError("The fake upstream is not running.")
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def azure_endpoint(self) -> str:
        return self.url

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if CHAT_PATH.match(r.path)]

    # Lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeUpstream:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve_connection, "127.0.0.1", 0, limit=MAX_BODY)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None
        self.port = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeUpstream:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()

    # HTTP ----------------------------------------------------------------------------------
    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._serve_request(reader, writer):
                pass
        except (_Disconnect, ConnectionError, ValueError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; False when the connection should close."""
        request_line = await reader.readline()
        if not request_line.strip():
            return False
        method, target, version = request_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await reader.readline()).split(b";")[0], 16):
                raw += await reader.readexactly(size)
                await reader.readexactly(2)
            await reader.readline()
        elif length := int(headers.get("content-length") or 0):
            if length > MAX_BODY:
                raise ValueError("request body too large")
            raw = await reader.readexactly(length)

        parts = urlsplit(target)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request_id = f"req_fake_{next(self._request_ids)}"
        _REQUEST_ID.set(request_id)
        request = RecordedRequest(method, parts.path, dict(parse_qsl(parts.query)), headers, body, request_id)
        self.requests.append(request)

        keep_alive = await self._respond(request, writer)
        return keep_alive and version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"

    async def _respond(self, request: RecordedRequest, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the response was delimited by closing the connection."""
        chat = CHAT_PATH.match(request.path)
        if chat and request.method == "POST":
            route: Route = "chat"
        elif request.path in MODELS_PATHS and request.method == "GET":
            route = "models"
        else:
            message = f"Unknown request {request.method} {request.path}"
            await self._send_error(writer, FakeError(status=404, message=message, type="invalid_request_error"))
            return True
        if self.api_key is not None and request.api_key != self.api_key:
            await self._send_error(writer, FakeError.bad_key())
            return True
        if chat and chat["deployment"] and "api-version" not in request.query:
            missing = FakeError(status=404, message="Resource not found", type="invalid_request_error", code="404")
            await self._send_error(writer, missing)
            return True

        script = self._next_script(route)
        if isinstance(script, FakeError):
            await asyncio.sleep(script.first_delay)
            await self._send_error(writer, script)
            return True
        if route == "models":
            created = int(time.time())
            data = [{"id": m, "object": "model", "created": created, "owned_by": "fake-upstream"} for m in self.models]
            await self._send_json(writer, 200, {"object": "list", "data": data})
            return True

        reply = script or self.default_reply
        body = request.body if isinstance(request.body, dict) else {}
        model = chat["deployment"] or str(body.get("model", ""))
        if body.get("stream"):
            await self._stream(writer, reply, body, model, azure=bool(chat["deployment"]))
            return reply.chunked
        await self._whole(writer, reply, body, model)
        return True

    async def _whole(self, writer: asyncio.StreamWriter, reply: FakeReply, body: dict, model: str) -> None:
        if reply.hang_after is not None:
            await _hang()
        await asyncio.sleep(reply.first_delay)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.text or not reply.tool_calls else None,
            "refusal": None,
        }
        if reply.tool_calls:
            message["tool_calls"] = [call.to_message() for call in reply.tool_calls]
        completion = {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": _usage(reply, body, len(reply.deltas())),
        }
        await self._send_json(writer, 200, completion)

    async def _stream(
        self, writer: asyncio.StreamWriter, reply: FakeReply, body: dict, model: str, *, azure: bool
    ) -> None:
        if reply.hang_after == 0:
            await _hang()
        ident = f"chatcmpl-fake-{next(self._ids)}"
        created = int(time.time())

        def chunk(delta: dict | None, finish_reason: str | None = None, **extra: Any) -> dict:
            choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [] if delta is None else choices,
                **extra,
            }

        async def send(data: bytes) -> None:
            writer.write(b"%x\r\n%s\r\n" % (len(data), data) if reply.chunked else data)
            await writer.drain()

        async def event(payload: dict) -> None:
            await send(b"data: " + json.dumps(payload).encode() + b"\n\n")

        async def end() -> None:
            if reply.chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

        async def error_event() -> None:
            await event(
                {"error": {"message": reply.error_message, "type": "server_error", "param": None, "code": None}}
            )
            await end()

        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        if not reply.chunked:
            headers["connection"] = "close"
        await self._write_head(writer, 200, headers, length=None if not reply.chunked else -1)
        await asyncio.sleep(reply.first_delay)
        if azure:
            # Azure opens with a chunk that has no choices, only the prompt filter results.
            await event({
                "id": "", "object": "", "created": 0, "model": "", "choices": [],
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            })
        content = "" if reply.text or not reply.tool_calls else None
        await event(chunk({"role": "assistant", "content": content, "refusal": None}))
        deltas = reply.deltas()
        for sent, delta in enumerate([*deltas, None]):
            if sent == reply.error_after:
                await error_event()
                return
            if sent == reply.cut_after:
                raise _Disconnect
            if sent == reply.hang_after:
                await _hang()
            if delta is None:
                break
            if sent:
                await asyncio.sleep(reply.delay)
            await event(chunk(delta))
        await event(chunk({}, reply.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            await event(chunk(None, usage=_usage(reply, body, len(deltas))))
        await send(b"data: [DONE]\n\n")
        await end()

    async def _send_error(self, writer: asyncio.StreamWriter, error: FakeError) -> None:
        headers = dict(error.headers)
        if error.retry_after is not None:
            headers["retry-after"] = f"{error.retry_after:g}"
        await self._send_json(writer, error.status, error.body(), headers)

    async def _send_json(
        self, writer: asyncio.StreamWriter, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        headers = {"content-type": "application/json", **(headers or {})}
        await self._write_head(writer, status, headers, length=len(data))
        writer.write(data)
        await writer.drain()

    async def _write_head(
        self, writer: asyncio.StreamWriter, status: int, headers: dict[str, str], *, length: int | None
    ) -> None:
        """The status line and headers. length: a Content-Length; -1: chunked; None: the body
        ends when the connection closes."""
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"x-request-id: {_REQUEST_ID.get()}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if length == -1:
            lines.append("transfer-encoding: chunked")
        elif length is not None:
            lines.append(f"content-length: {length}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()


def _split(text: str, parts: int) -> list[str]:
    """text in `parts` pieces of near equal length (at least one, at most one per character)."""
    n = max(1, min(parts, len(text) or 1))
    size = len(text)
    return [text[i * size // n : (i + 1) * size // n] for i in range(n)]


def _usage(reply: FakeReply, body: dict, pieces: int) -> dict[str, int]:
    prompt = reply.prompt_tokens
    if prompt is None:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        prompt = sum(len(str(m.get("content", "")).split()) + 4 for m in messages)
    completion = reply.completion_tokens if reply.completion_tokens is not None else pieces
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _hang() -> None:
    """Keep the connection open without answering, until the client leaves or stop()."""
    await asyncio.Event().wait()
