"""pytest fixtures for tests that need an AI provider: register with
pytest_plugins = ["bench.pytest_fixtures"] in the root conftest.py."""

from collections.abc import Iterator

import pytest

from bench.fake_upstream import FakeUpstream


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A fake OpenAI-compatible server on 127.0.0.1 for one test, sync or async. Script it with
    fake_upstream.script(FakeReply(...)) / fake_upstream.queue_error(status=...); read what the
    SDK sent in fake_upstream.requests."""
    with FakeUpstream() as upstream:
        yield upstream
