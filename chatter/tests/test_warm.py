"""A server process loads, when it starts, what the first message would otherwise wait for."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chatter.warm import SDK_MODULES
from conversations.tokens import DEFAULT_ENCODING

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_a_server_loads_the_token_counter_and_the_sdks_chat_when_it_starts(server):
    script = f"""
        import sys
        import tiktoken.registry
        before = [name for name in {SDK_MODULES!r} if name in sys.modules]
        import chatter.{server}
        print(before, {DEFAULT_ENCODING!r} in tiktoken.registry.ENCODINGS, all(name in sys.modules for name in {SDK_MODULES!r}))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[] True True"
