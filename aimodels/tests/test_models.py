import re
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.test.utils import CaptureQueriesContext

from aimodels.forms import AIModelForm
from aimodels.models import AIModel, EditConflict, name_from_model_id
from aimodels.tests.factories import AIModelFactory

GOOD = {
    "name": "gpt-4o-mini",
    "provider": "openai",
    "api_endpoint": "",
    "deployment_name": "gpt-4o-mini",
    "api_version": "",
    "api_key_env": "OPENAI_API_KEY",
    "description": "",
    "temperature": Decimal("0.7"),
    "context_window": 128_000,
    "max_completion_tokens": 4096,
    "is_reasoning": False,
    "system_prompt_handling": "developer",
    "supports_streaming": True,
    "is_default": False,
    "is_active": True,
}
AZURE = GOOD | {
    "provider": "azure",
    "api_endpoint": "https://example-resource.openai.azure.com",
    "deployment_name": "gpt-4o-mini-prod",
    "api_version": "2024-10-21",
    "api_key_env": "AZURE_OPENAI_API_KEY",
}
COMPATIBLE = GOOD | {
    "provider": "openai_compatible",
    "api_endpoint": "http://localhost:11434/v1",
    "deployment_name": "llama3.2:3b",
    "api_key_env": "",
}

# (base values, changes, the field that must report an error, or None when the values are good)
CASES = {
    # name
    "name one character": (GOOD, {"name": "a"}, None),
    "name with dots and dashes": (GOOD, {"name": "gpt-4.1-mini"}, None),
    "name with underscore": (GOOD, {"name": "Model_2"}, None),
    "name starting with a digit": (GOOD, {"name": "9lives"}, None),
    "name of 50 characters": (GOOD, {"name": "x" * 50}, None),
    "name empty": (GOOD, {"name": ""}, "name"),
    "name starting with a dash": (GOOD, {"name": "-lead"}, "name"),
    "name starting with a dot": (GOOD, {"name": ".lead"}, "name"),
    "name starting with an underscore": (GOOD, {"name": "_lead"}, "name"),
    "name of 51 characters": (GOOD, {"name": "x" * 51}, "name"),
    "name with a space": (GOOD, {"name": "has space"}, "name"),
    "name with a non-ASCII letter": (GOOD, {"name": "ümlaut"}, "name"),
    "name with a slash": (GOOD, {"name": "a/b"}, "name"),
    "name with a colon": (GOOD, {"name": "a:b"}, "name"),
    # provider
    "provider unknown": (GOOD, {"provider": "anthropic"}, "provider"),
    "provider empty": (GOOD, {"provider": ""}, "provider"),
    # api_endpoint
    "endpoint empty for openai (public API)": (GOOD, {"api_endpoint": ""}, None),
    "endpoint https": (COMPATIBLE, {"api_endpoint": "https://llm.example.com/v1"}, None),
    "endpoint http to localhost": (COMPATIBLE, {"api_endpoint": "http://localhost:11434/v1"}, None),
    "endpoint http to 127.0.0.1": (COMPATIBLE, {"api_endpoint": "http://127.0.0.1:8000/v1"}, None),
    "endpoint http to 127.9.9.9": (COMPATIBLE, {"api_endpoint": "http://127.9.9.9/v1"}, None),
    "endpoint http to ::1": (COMPATIBLE, {"api_endpoint": "http://[::1]:8080/v1"}, None),
    "endpoint empty for compatible": (COMPATIBLE, {"api_endpoint": ""}, "api_endpoint"),
    "endpoint empty for azure": (AZURE, {"api_endpoint": ""}, "api_endpoint"),
    "endpoint http to a public host": (COMPATIBLE, {"api_endpoint": "http://llm.example.com/v1"}, "api_endpoint"),
    "endpoint http to a private address": (COMPATIBLE, {"api_endpoint": "http://10.0.0.1/v1"}, "api_endpoint"),
    "endpoint http to a lookalike of localhost": (
        COMPATIBLE,
        {"api_endpoint": "http://localhost.example.com/v1"},
        "api_endpoint",
    ),
    "endpoint ftp": (COMPATIBLE, {"api_endpoint": "ftp://example.com/v1"}, "api_endpoint"),
    "endpoint not a URL": (COMPATIBLE, {"api_endpoint": "not a url"}, "api_endpoint"),
    "endpoint with credentials": (COMPATIBLE, {"api_endpoint": "https://me:secret@example.com/v1"}, "api_endpoint"),
    "endpoint with a query": (COMPATIBLE, {"api_endpoint": "https://example.com/v1?api-key=abc"}, "api_endpoint"),
    "endpoint with a fragment": (COMPATIBLE, {"api_endpoint": "https://example.com/v1#x"}, "api_endpoint"),
    "endpoint too long": (COMPATIBLE, {"api_endpoint": "https://" + "a" * 250 + ".com"}, "api_endpoint"),
    "azure endpoint ending in /openai": (
        AZURE,
        {"api_endpoint": "https://example-resource.openai.azure.com/openai"},
        "api_endpoint",
    ),
    # deployment_name
    "deployment with dots": (GOOD, {"deployment_name": "gpt-4.1-mini"}, None),
    "deployment with a colon": (COMPATIBLE, {"deployment_name": "llama3.2:3b"}, None),
    "deployment with a slash": (COMPATIBLE, {"deployment_name": "org/Model-7B"}, None),
    "deployment of 128 characters": (GOOD, {"deployment_name": "x" * 128}, None),
    "deployment empty": (GOOD, {"deployment_name": ""}, "deployment_name"),
    "deployment of 129 characters": (GOOD, {"deployment_name": "x" * 129}, "deployment_name"),
    "deployment with a space": (GOOD, {"deployment_name": "gpt 4o"}, "deployment_name"),
    "deployment with an at sign": (GOOD, {"deployment_name": "a@b"}, "deployment_name"),
    "deployment non-ASCII": (GOOD, {"deployment_name": "modèle"}, "deployment_name"),
    "azure deployment with a slash": (AZURE, {"deployment_name": "org/model"}, "deployment_name"),
    "azure deployment with a colon": (AZURE, {"deployment_name": "llama:3b"}, "deployment_name"),
    # api_version
    "api version allowed": (AZURE, {"api_version": "2024-10-21"}, None),
    "api version preview allowed": (AZURE, {"api_version": "2025-01-01-preview"}, None),
    "api version empty for azure": (AZURE, {"api_version": ""}, "api_version"),
    "api version with another suffix": (AZURE, {"api_version": "2024-10-21-beta"}, "api_version"),
    "api version without dashes": (AZURE, {"api_version": "20241021"}, "api_version"),
    "api version not a date": (AZURE, {"api_version": "2024-13-01"}, "api_version"),
    "api version not in AZURE_API_VERSIONS": (AZURE, {"api_version": "2023-05-15"}, "api_version"),
    "api version on an openai model": (GOOD, {"api_version": "2024-10-21"}, "api_version"),
    # api_key_env
    "key variable": (GOOD, {"api_key_env": "OPENAI_API_KEY"}, None),
    "key variable starting with underscore": (GOOD, {"api_key_env": "_KEY_2"}, None),
    "key variable empty for a local server": (COMPATIBLE, {"api_key_env": ""}, None),
    "key variable empty for openai": (GOOD, {"api_key_env": ""}, "api_key_env"),
    "key variable empty for azure": (AZURE, {"api_key_env": ""}, "api_key_env"),
    "a key instead of a variable": (GOOD, {"api_key_env": "sk-proj-abc123"}, "api_key_env"),
    "key variable in lower case": (GOOD, {"api_key_env": "openai_api_key"}, "api_key_env"),
    "key variable starting with a digit": (GOOD, {"api_key_env": "1KEY"}, "api_key_env"),
    "key variable with a space": (GOOD, {"api_key_env": "MY KEY"}, "api_key_env"),
    "key variable of 101 characters": (GOOD, {"api_key_env": "K" * 101}, "api_key_env"),
    # description
    "description of 500 characters": (GOOD, {"description": "x" * 500}, None),
    "description on two lines": (GOOD, {"description": "Two lines\nof text."}, None),
    "description of 501 characters": (GOOD, {"description": "x" * 501}, "description"),
    "description with a control character": (GOOD, {"description": "bell\x07"}, "description"),
    # temperature
    "temperature 0": (GOOD, {"temperature": Decimal("0")}, None),
    "temperature 2": (GOOD, {"temperature": Decimal("2")}, None),
    "temperature 1.25": (GOOD, {"temperature": Decimal("1.25")}, None),
    "temperature below 0": (GOOD, {"temperature": Decimal("-0.1")}, "temperature"),
    "temperature above 2": (GOOD, {"temperature": Decimal("2.01")}, "temperature"),
    "temperature with 3 decimals": (GOOD, {"temperature": Decimal("0.001")}, "temperature"),
    "temperature not a number": (GOOD, {"temperature": "warm"}, "temperature"),
    # context_window and max_completion_tokens
    "context window 513 with 1 reply token": (GOOD, {"context_window": 513, "max_completion_tokens": 1}, None),
    "context window 512 with 1 reply token": (
        GOOD,
        {"context_window": 512, "max_completion_tokens": 1},
        "context_window",
    ),
    "context window 2 with 1 reply token": (GOOD, {"context_window": 2, "max_completion_tokens": 1}, "context_window"),
    "context window 2,000,000": (GOOD, {"context_window": 2_000_000}, None),
    "context window 0": (GOOD, {"context_window": 0, "max_completion_tokens": 1}, "context_window"),
    "context window above 2,000,000": (GOOD, {"context_window": 2_000_001}, "context_window"),
    "context window negative": (GOOD, {"context_window": -5}, "context_window"),
    "max reply tokens 1": (GOOD, {"max_completion_tokens": 1}, None),
    "max reply tokens leaving the margin and the smallest prompt": (GOOD, {"max_completion_tokens": 127_488}, None),
    "max reply tokens eating into the smallest prompt": (
        GOOD,
        {"max_completion_tokens": 127_489},
        "max_completion_tokens",
    ),
    "max reply tokens window - 1": (GOOD, {"max_completion_tokens": 127_999}, "max_completion_tokens"),
    "max reply tokens 0": (GOOD, {"max_completion_tokens": 0}, "max_completion_tokens"),
    "max reply tokens equal to the window": (GOOD, {"max_completion_tokens": 128_000}, "max_completion_tokens"),
    "max reply tokens above the window": (GOOD, {"max_completion_tokens": 128_001}, "max_completion_tokens"),
    # flags
    "reasoning folding the system prompt": (GOOD, {"is_reasoning": True, "system_prompt_handling": "fold"}, None),
    "system prompt handling unknown": (GOOD, {"system_prompt_handling": "system"}, "system_prompt_handling"),
    "default and active": (GOOD, {"is_default": True}, None),
    "default but inactive": (GOOD, {"is_default": True, "is_active": False}, "is_default"),
}


def form_data(values: dict) -> dict:
    return {k: ("on" if v is True else str(v)) for k, v in values.items() if v is not False}


@pytest.mark.django_db
@pytest.mark.parametrize(("base", "changes", "error_field"), CASES.values(), ids=CASES.keys())
def test_field_rule_on_the_model(base, changes, error_field):
    ai_model = AIModel(**(base | changes))

    if error_field is None:
        ai_model.full_clean()
        ai_model.save()
        assert AIModel.objects.count() == 1
    else:
        with pytest.raises(ValidationError) as raised:
            ai_model.full_clean()
        assert list(raised.value.message_dict) == [error_field]
        assert not AIModel.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("base", "changes", "error_field"), CASES.values(), ids=CASES.keys())
def test_field_rule_through_the_form(base, changes, error_field):
    form = AIModelForm(data=form_data(base | changes))

    if error_field is None:
        assert form.is_valid(), form.errors
        form.save()
        assert AIModel.objects.count() == 1
    else:
        assert not form.is_valid()
        assert list(form.errors) == [error_field]
        assert not AIModel.objects.exists()


def test_a_reply_limit_leaving_no_room_for_a_prompt_is_refused_with_the_numbers():
    ai_model = AIModel(**GOOD | {"context_window": 4096, "max_completion_tokens": 4000})

    with pytest.raises(ValidationError) as raised:
        ai_model.clean()

    assert raised.value.message_dict == {
        "max_completion_tokens": [
            "At most 3,584 with a context window of 4,096 tokens: the window must hold the reply, the 256 tokens the "
            "chat keeps spare and a prompt of at least 256 tokens. Lower the reply limit, or raise the context window "
            "to at least 4,512."
        ]
    }


def test_a_window_too_small_for_any_reply_is_refused_on_the_window_with_the_numbers():
    ai_model = AIModel(**GOOD | {"context_window": 300, "max_completion_tokens": 100})

    with pytest.raises(ValidationError) as raised:
        ai_model.clean()

    assert raised.value.message_dict == {
        "context_window": [
            "At least 513 tokens: the chat keeps 256 tokens spare in every request and needs room for a prompt of at "
            "least 256 tokens and a reply of at least 1."
        ]
    }


def test_a_model_at_the_edge_of_the_rule_still_takes_a_message_filling_the_smallest_prompt():
    from aimodels.validators import MIN_PROMPT_TOKENS
    from conversations.context import select_context
    from conversations.tokens import REPLY_PRIMING

    ai_model = AIModel(**GOOD | {"context_window": 4096, "max_completion_tokens": 3584})
    ai_model.clean()
    message = MIN_PROMPT_TOKENS - REPLY_PRIMING

    plan = select_context(
        system_tokens=0,
        history=[("message", message)],
        context_window=ai_model.context_window,
        max_completion_tokens=ai_model.max_completion_tokens,
    )

    assert plan.total_tokens == MIN_PROMPT_TOKENS


@pytest.mark.django_db
def test_the_allowed_api_versions_come_from_the_setting(settings):
    settings.AZURE_API_VERSIONS = ["2023-05-15"]

    AIModel(**AZURE | {"api_version": "2023-05-15"}).full_clean()
    with pytest.raises(ValidationError) as raised:
        AIModel(**AZURE | {"api_version": "2024-10-21"}).full_clean()

    assert "2023-05-15" in raised.value.message_dict["api_version"][0]


@pytest.mark.django_db
def test_names_are_unique_ignoring_case():
    AIModelFactory(name="GPT-4o")

    with pytest.raises(ValidationError) as raised:
        AIModel(**GOOD | {"name": "gpt-4o"}).full_clean()

    assert raised.value.message_dict == {"name": ["An AI model with this name already exists (names ignore case)."]}


@pytest.mark.django_db
def test_the_database_refuses_a_name_differing_only_in_case():
    AIModelFactory(name="GPT-4o")

    with pytest.raises(IntegrityError), transaction.atomic():
        AIModel.objects.bulk_create([AIModel(**GOOD | {"name": "gpt-4O"})])


@pytest.mark.django_db
def test_the_database_allows_only_one_default():
    AIModelFactory(is_default=True)
    other = AIModelFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        AIModel.objects.filter(pk=other.pk).update(is_default=True)

    assert AIModel.objects.filter(is_default=True).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes",
    [
        {"temperature": Decimal("2.5")},
        {"context_window": 0},
        {"context_window": 2_000_001},
        {"max_completion_tokens": 128_000},
        {"max_completion_tokens": 0},
        {"provider": "anthropic"},
        {"provider": "openai_compatible", "api_endpoint": ""},
        {"is_default": True, "is_active": False},
        {"version": 0},
    ],
    ids=repr,
)
def test_the_database_checks_the_rules_that_span_fields(changes):
    ai_model = AIModelFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        AIModel.objects.filter(pk=ai_model.pk).update(**changes)


@pytest.mark.django_db
def test_the_database_requires_an_api_version_for_azure():
    ai_model = AIModelFactory(azure=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        AIModel.objects.filter(pk=ai_model.pk).update(api_version="")


@pytest.mark.django_db
def test_the_endpoint_is_stored_without_a_trailing_slash():
    ai_model = AIModel(**COMPATIBLE | {"api_endpoint": "http://localhost:11434/v1/"})

    ai_model.full_clean()

    assert ai_model.api_endpoint == "http://localhost:11434/v1"


# Saving as the default ----------------------------------------------------------------------
@pytest.mark.django_db
def test_saving_a_model_as_default_takes_the_default_from_the_other():
    old = AIModelFactory(is_default=True)
    new = AIModel(**GOOD | {"name": "new-default", "is_default": True})

    new.full_clean()
    new.save()

    old.refresh_from_db()
    assert new.is_default and not old.is_default
    assert old.version == 2  # pages opened on the old default before the change refuse to save over it


@pytest.mark.django_db
def test_make_default_moves_the_default_in_one_step():
    old = AIModelFactory(is_default=True)
    new = AIModelFactory()

    new.make_default()

    old.refresh_from_db()
    assert new.is_default and not old.is_default
    assert (new.version, old.version) == (2, 2)
    assert list(AIModel.objects.filter(is_default=True)) == [new]


@pytest.mark.django_db
def test_make_default_on_the_default_changes_nothing():
    current = AIModelFactory(is_default=True)

    current.make_default()

    assert current.is_default and current.version == 1


@pytest.mark.django_db
def test_make_default_refuses_an_inactive_model():
    old = AIModelFactory(is_default=True)
    inactive = AIModelFactory(is_active=False)

    with pytest.raises(ValidationError):
        inactive.make_default()

    old.refresh_from_db()
    assert old.is_default and old.version == 1


# Optimistic locking -------------------------------------------------------------------------
@pytest.mark.django_db
def test_each_save_raises_the_version():
    ai_model = AIModelFactory()

    ai_model.description = "changed"
    ai_model.save()
    ai_model.refresh_from_db()

    assert ai_model.version == 2
    assert ai_model.description == "changed"


@pytest.mark.django_db
def test_of_two_concurrent_saves_the_second_is_refused_and_overwrites_nothing():
    ai_model = AIModelFactory(description="original")
    first = AIModel.objects.get(pk=ai_model.pk)
    second = AIModel.objects.get(pk=ai_model.pk)

    first.description = "first wins"
    first.save()
    second.description = "second loses"
    second.temperature = Decimal("1.50")
    with pytest.raises(EditConflict, match="changed by someone else since you opened it; reload"):
        second.save()

    ai_model.refresh_from_db()
    assert (ai_model.description, ai_model.temperature, ai_model.version) == ("first wins", Decimal("0.70"), 2)


@pytest.mark.django_db
def test_a_save_is_one_compare_and_set_update_on_id_and_version():
    ai_model = AIModelFactory()
    ai_model.description = "changed"

    with CaptureQueriesContext(connection) as queries:
        ai_model.save()

    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    assert re.search(
        rf'WHERE \("aimodels_aimodel"\."id" = {ai_model.pk} AND "aimodels_aimodel"\."version" = 1\)', updates[0]
    )
    assert re.search(r'"version" = \(?"aimodels_aimodel"\."version" \+ 1\)?', updates[0])
    assert not [q for q in queries.captured_queries if q["sql"].startswith("SELECT")]


@pytest.mark.django_db
def test_a_save_with_update_fields_writes_only_those_fields():
    ai_model = AIModelFactory(description="old", deployment_name="gpt-4o-mini")
    ai_model.description = "new"
    ai_model.deployment_name = "gpt-4o"

    ai_model.save(update_fields=["description"])

    ai_model.refresh_from_db()
    assert (ai_model.description, ai_model.deployment_name, ai_model.version) == ("new", "gpt-4o-mini", 2)


@pytest.mark.django_db
def test_a_save_of_a_deleted_model_is_refused():
    ai_model = AIModelFactory()
    AIModel.objects.filter(pk=ai_model.pk).update(is_default=False, version=5)
    AIModel._base_manager.filter(pk=ai_model.pk).delete()

    with pytest.raises(EditConflict):
        ai_model.save()

    assert not AIModel.objects.exists()


# Deleting -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_unused_model_can_be_deleted():
    ai_model = AIModelFactory()

    ai_model.delete()

    assert not AIModel.objects.exists()


@pytest.mark.django_db
def test_the_default_model_cannot_be_deleted():
    ai_model = AIModelFactory(name="main", is_default=True)

    with pytest.raises(models.ProtectedError, match="“main” cannot be deleted: it is the default model"):
        ai_model.delete()

    assert AIModel.objects.filter(pk=ai_model.pk).exists()


@pytest.mark.django_db
def test_a_bulk_delete_refuses_the_default_and_deletes_nothing():
    AIModelFactory(is_default=True)
    AIModelFactory()

    with pytest.raises(models.ProtectedError):
        AIModel.objects.all().delete()

    assert AIModel.objects.count() == 2


def test_a_model_in_use_cannot_be_deleted_and_the_refusal_counts_the_uses(conversation_model):
    ai_model = AIModelFactory(name="busy")
    conversation_model.objects.create(ai_model=ai_model)
    conversation_model.objects.create(ai_model=ai_model)

    assert ai_model.delete_blockers() == ["2 test conversations use it"]
    with pytest.raises(models.ProtectedError, match="“busy” cannot be deleted: 2 test conversations use it."):
        ai_model.delete()
    assert AIModel.objects.filter(pk=ai_model.pk).exists()


def test_a_model_no_longer_in_use_can_be_deleted(conversation_model):
    ai_model = AIModelFactory()
    conversation_model.objects.create(ai_model=ai_model).delete()

    ai_model.delete()

    assert not AIModel.objects.exists()


# Other behaviour ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_active_lists_only_the_models_offered_in_the_chat():
    shown = AIModelFactory(is_active=True)
    AIModelFactory(is_active=False)

    assert list(AIModel.objects.active()) == [shown]


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("llama3.2:3b", "llama3.2-3b"),
        ("org/Model-7B", "org-Model-7B"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("::weird", "weird"),
        ("x" * 80, "x" * 50),
        (":::", "model"),
    ],
)
def test_names_made_from_model_ids_follow_the_naming_rule(model_id, name):
    made = name_from_model_id(model_id)

    assert made == name
    AIModel(name=made).clean_fields(exclude=[f.name for f in AIModel._meta.fields if f.name != "name"])


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("", "api.openai.com"),
        ("http://localhost:11434/v1", "localhost:11434"),
        ("https://example-resource.openai.azure.com", "example-resource.openai.azure.com"),
        ("http://[::1]:8080/v1", "[::1]:8080"),
    ],
)
def test_the_endpoint_host_is_where_requests_go(endpoint, host):
    assert AIModel(api_endpoint=endpoint).endpoint_host == host


def test_api_key_is_set_reads_the_environment_without_returning_the_key(monkeypatch):
    ai_model = AIModel(api_key_env="CHATTER_TEST_KEY")

    monkeypatch.delenv("CHATTER_TEST_KEY", raising=False)
    unset = ai_model.api_key_is_set
    monkeypatch.setenv("CHATTER_TEST_KEY", "sk-secret")

    assert (unset, ai_model.api_key_is_set) == (False, True)


def test_no_azure_version_is_allowed_until_the_setting_lists_some(settings):
    from django.core.exceptions import ValidationError

    from aimodels.validators import validate_api_version

    settings.AZURE_API_VERSIONS = []
    with pytest.raises(ValidationError, match="AZURE_API_VERSIONS"):
        validate_api_version("2024-10-21")
