import os

import pytest
import pytest_asyncio

from aimodels.tests.factories import AIModelFactory
from conversations.tests.factories import ConversationFactory


@pytest.fixture(autouse=True)
def _no_retries(settings):
    # A scripted provider error must reach the test, not be retried by the SDK.
    settings.LLM_MAX_RETRIES = 0


@pytest.fixture
def chat_model(db, fake_upstream):
    """A keyless OpenAI-compatible model served by the fake upstream."""
    return AIModelFactory(
        name="fake-gpt",
        provider="openai_compatible",
        api_endpoint=fake_upstream.openai_base_url,
        deployment_name="gpt-4o-mini",
        api_key_env="",
        context_window=16_000,
        max_completion_tokens=1_000,
        is_default=True,
    )


@pytest.fixture
def conversation(user, chat_model):
    return ConversationFactory(user=user, model=chat_model, system_prompt="")


@pytest.fixture
def client_in(async_client, user):
    """The async test client, signed in as `user`."""
    async_client.force_login(user)
    return async_client


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def asgi_server(transactional_db, settings):
    """chatter served by uvicorn in its own process, on the test database: real ASGI streaming
    (pytest-django's live_server is WSGI and buffers a stream)."""
    from conversations.tests.asgi_server import AsgiServer

    with AsgiServer.for_test_database(secret_key=settings.SECRET_KEY) as server:
        yield server


def redis_url_or_skip() -> str:
    """TEST_REDIS_URL: a Redis database the tests may empty (.ci/run starts one). Tests that
    need Redis are skipped without it."""
    url = os.environ.get("TEST_REDIS_URL", "")
    if not url:
        pytest.skip("needs Redis: set TEST_REDIS_URL=redis://127.0.0.1:PORT/0 (a database the tests may empty)")
    import redis

    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
def redis_url() -> str:
    return redis_url_or_skip()


def relay_swap(monkeypatch, new) -> None:
    """`new` becomes the relay that services and views use (they import the module's `relay`)."""
    from conversations import relay as relay_module
    from conversations import services, views

    for module in (relay_module, services, views):
        monkeypatch.setattr(module, "relay", new)


@pytest_asyncio.fixture(params=["local", "redis"])
async def any_relay(request, monkeypatch):
    """Each relay in turn, as the one the app uses: in-process, then Redis (TEST_REDIS_URL)."""
    from conversations.relay import LocalRelay, RedisRelay

    new = LocalRelay() if request.param == "local" else RedisRelay(redis_url_or_skip())
    relay_swap(monkeypatch, new)
    yield new
    if isinstance(new, RedisRelay):
        await new.aclose()


@pytest_asyncio.fixture
async def redis_relay(redis_url, monkeypatch):
    """A RedisRelay as the one the app uses."""
    from conversations.relay import RedisRelay

    new = RedisRelay(redis_url)
    relay_swap(monkeypatch, new)
    yield new
    await new.aclose()


@pytest.fixture
def upstream_gate(monkeypatch):
    """A gate the test opens: with it, a FakeReply's `hang_after=N` pauses the fake upstream after
    N deltas until the test calls `upstream_gate.set()`, then the reply goes on to its end
    (without it, the fake stays silent for good). So a test sees the reply mid-way for sure,
    however slow the machine, instead of racing a reply that takes a few seconds."""
    import asyncio
    import threading
    import time

    from bench import fake_upstream as fake_upstream_module

    gate = threading.Event()

    async def paused() -> None:
        deadline = time.monotonic() + 120  # a test that never opens the gate fails by its own timeout
        while not gate.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # polling for the state "opened", bounded by the deadline

    monkeypatch.setattr(fake_upstream_module, "_hang", paused)
    yield gate
    gate.set()
