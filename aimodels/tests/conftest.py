import pytest
from django.apps import apps
from django.db import connection, models

from accounts.tests.factories import UserFactory
from aimodels.models import AIModel

OPENAI_KEY = "sk-test-openai-0123456789"
AZURE_KEY = "azure-test-key-abcdef"


@pytest.fixture(autouse=True)
def _no_retries(settings):
    # A scripted error must reach the test, not be retried after its Retry-After.
    settings.LLM_MAX_RETRIES = 0


@pytest.fixture
def api_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    return {"OPENAI_API_KEY": OPENAI_KEY, "AZURE_OPENAI_API_KEY": AZURE_KEY}


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(staff=True))
    return client


@pytest.fixture
def conversation_model(transactional_db):
    """A throwaway model that points at AIModel with on_delete=PROTECT, as
    conversations.Conversation will: its table exists for one test only."""

    class TestConversation(models.Model):
        ai_model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="test_conversations")

        class Meta:
            app_label = "aimodels"
            verbose_name = "test conversation"

    with connection.schema_editor() as editor:
        editor.create_model(TestConversation)
    yield TestConversation
    with connection.schema_editor() as editor:
        editor.delete_model(TestConversation)
    del apps.all_models["aimodels"]["testconversation"]
    apps.clear_cache()


@pytest.fixture(autouse=True)
def _azure_api_versions(settings):
    # The allowed versions come from the environment; tests fix them here.
    settings.AZURE_API_VERSIONS = ["2024-10-21", "2025-01-01-preview"]
