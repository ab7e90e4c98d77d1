import json
import re
import socket
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from aimodels.models import AIModel
from aimodels.tests.factories import AIModelFactory

pytestmark = pytest.mark.django_db


def seed(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("seed_models", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write_seed(tmp_path, *entries: dict):
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": list(entries)}))
    return path


ENTRY = {
    "name": "house-model",
    "provider": "openai",
    "deployment_name": "gpt-4o-mini",
    "api_key_env": "OPENAI_API_KEY",
    "context_window": 128000,
    "max_completion_tokens": 4096,
}


def test_a_fresh_install_gets_the_openai_models_with_gpt_4o_mini_as_default():
    out, _ = seed()

    models = {m.name: m for m in AIModel.objects.all()}
    assert set(models) == {"gpt-4o-mini", "gpt-4o", "o1"}
    assert [m.name for m in AIModel.objects.filter(is_default=True)] == ["gpt-4o-mini"]
    assert models["o1"].is_reasoning and not models["gpt-4o"].is_reasoning
    assert all(m.api_key_env == "OPENAI_API_KEY" and m.is_active for m in models.values())
    assert all(m.supports_tools for m in models.values())  # README: the seeded OpenAI models get the lookups as tools
    assert "AI models: 3 created, 0 updated, 0 unchanged, 0 kept." in out


def test_a_second_run_changes_nothing():
    seed()
    before = list(AIModel.objects.values_list("name", "version", "updated_at"))

    out, _ = seed()

    assert "AI models: 0 created, 0 updated, 3 unchanged, 0 kept." in out
    assert list(AIModel.objects.values_list("name", "version", "updated_at")) == before


def test_dry_run_writes_nothing_and_says_what_it_would_do():
    out, _ = seed("--dry-run")

    assert not AIModel.objects.exists()
    assert "Dry run, nothing written. Would have: 3 created, 0 updated, 0 unchanged, 0 kept." in out


def test_dry_run_leaves_an_update_unwritten(tmp_path):
    seed("--file", str(write_seed(tmp_path, ENTRY)))

    out, _ = seed("--file", str(write_seed(tmp_path, ENTRY | {"max_completion_tokens": 8000})), "--dry-run")

    assert "1 updated" in out
    assert AIModel.objects.get().max_completion_tokens == 4096


def test_a_model_edited_in_the_admin_is_kept_unless_update(tmp_path):
    path = write_seed(tmp_path, ENTRY)
    seed("--file", str(path))
    edited = AIModel.objects.get()
    edited.max_completion_tokens = 1000
    edited.save()

    out, _ = seed("--file", str(path))
    kept = AIModel.objects.get()
    out_update, _ = seed("--file", str(path), "--update")
    overwritten = AIModel.objects.get()

    assert "kept house-model (edited in the admin; --update overwrites it)" in out
    assert "0 created, 0 updated, 0 unchanged, 1 kept" in out
    assert kept.max_completion_tokens == 1000
    assert "0 created, 1 updated, 0 unchanged, 0 kept" in out_update
    assert overwritten.max_completion_tokens == 4096
    assert overwritten.version == 3 and overwritten.seeded_version == 3


def test_a_changed_seed_entry_updates_a_model_nobody_edited(tmp_path):
    seed("--file", str(write_seed(tmp_path, ENTRY)))

    out, _ = seed("--file", str(write_seed(tmp_path, ENTRY | {"description": "Now described."})))

    updated = AIModel.objects.get()
    assert "0 created, 1 updated, 0 unchanged, 0 kept" in out
    assert (updated.description, updated.version, updated.seeded_version) == ("Now described.", 2, 2)
    again, _ = seed("--file", str(write_seed(tmp_path, ENTRY | {"description": "Now described."})))
    assert "0 created, 0 updated, 1 unchanged, 0 kept" in again


def test_a_model_the_admin_created_with_the_same_name_is_not_taken_over(tmp_path):
    AIModelFactory(name="House-Model", deployment_name="gpt-4o")

    out, _ = seed("--file", str(write_seed(tmp_path, ENTRY)))

    assert "1 kept" in out
    assert AIModel.objects.get().deployment_name == "gpt-4o"


def test_the_seed_does_not_take_the_default_from_an_existing_one():
    mine = AIModelFactory(name="mine", is_default=True)

    seed()

    assert list(AIModel.objects.filter(is_default=True)) == [mine]


def test_an_invalid_entry_is_refused_by_name_and_nothing_is_written(tmp_path):
    path = write_seed(tmp_path, ENTRY | {"name": "fine"}, ENTRY | {"temperature": "3"})

    with pytest.raises(CommandError, match="Seed entry “house-model” is invalid: temperature: "):
        seed("--file", str(path))

    assert not AIModel.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"models": {}}', 'must hold {"models": [{...}, ...]}'),
        ('{"models": [{"provider": "openai"}]}', "needs a name"),
        ('{"models": [{"name": "x", "api_key": "sk-1"}]}', "Seed entry “x” has unknown fields: api_key."),
    ],
)
def test_a_malformed_file_is_refused_clearly(tmp_path, content, message):
    path = tmp_path / "models.json"
    path.write_text(content)

    with pytest.raises(CommandError, match=re.escape(message)):
        seed("--file", str(path))


def test_a_missing_file_is_refused_clearly(tmp_path):
    with pytest.raises(CommandError, match="Cannot read .*nope.json"):
        seed("--file", str(tmp_path / "nope.json"))


def test_an_azure_model_is_seeded_when_its_settings_are_set(settings):
    settings.AZURE_OPENAI_ENDPOINT = "https://example-resource.openai.azure.com/"
    settings.AZURE_OPENAI_DEPLOYMENT = "gpt-4o-prod"
    settings.AZURE_OPENAI_API_VERSION = "2025-01-01-preview"
    settings.AZURE_OPENAI_API_KEY_ENV = "MY_AZURE_KEY"

    seed()

    azure = AIModel.objects.get(provider="azure")
    assert (azure.name, azure.api_endpoint, azure.deployment_name, azure.api_version, azure.api_key_env) == (
        "azure-gpt-4o-prod",
        "https://example-resource.openai.azure.com",
        "gpt-4o-prod",
        "2025-01-01-preview",
        "MY_AZURE_KEY",
    )
    assert "0 created, 0 updated, 4 unchanged" in seed()[0]


def test_an_azure_endpoint_without_a_deployment_is_reported(settings):
    settings.AZURE_OPENAI_ENDPOINT = "https://example-resource.openai.azure.com"
    settings.AZURE_OPENAI_DEPLOYMENT = ""

    _, err = seed()

    assert "AZURE_OPENAI_DEPLOYMENT is not" in err
    assert not AIModel.objects.filter(provider="azure").exists()


def test_the_models_of_a_local_ollama_are_seeded(settings, fake_upstream):
    settings.OLLAMA_BASE_URL = fake_upstream.url
    fake_upstream.models = ["llama3.2:3b", "qwen2.5-coder:7b"]

    seed()

    local = AIModel.objects.filter(provider="openai_compatible").order_by("name")
    assert [(m.name, m.deployment_name, m.api_endpoint, m.api_key_env) for m in local] == [
        ("ollama-llama3.2-3b", "llama3.2:3b", fake_upstream.openai_base_url, ""),
        ("ollama-qwen2.5-coder-7b", "qwen2.5-coder:7b", fake_upstream.openai_base_url, ""),
    ]
    assert (fake_upstream.last.path, fake_upstream.last.auth_kind) == ("/v1/models", None)
    assert AIModel.objects.count() == 5


def test_an_unreachable_ollama_is_reported_and_the_rest_is_seeded(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.OLLAMA_BASE_URL = f"http://127.0.0.1:{port}"

    _, err = seed()

    assert f"Could not list the models of the Ollama at http://127.0.0.1:{port}" in err
    assert AIModel.objects.count() == 3


def test_seeded_values_are_validated_and_typed():
    seed()

    assert AIModel.objects.get(name="gpt-4o").temperature == Decimal("0.70")
    assert AIModel.objects.get(name="o1").max_completion_tokens < AIModel.objects.get(name="o1").context_window
