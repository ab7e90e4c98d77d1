import pytest

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
