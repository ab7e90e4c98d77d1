"""Rules of the aimodels app that mutation testing (make mutants, docs/mutants.md) found untested:
each test here fails on a mutant that the rest of the suite let survive. The admin shows these
messages beside the field as they are, so their words and codes are part of the rule."""

import pytest
from django.core.exceptions import ValidationError

from django.forms.models import model_to_dict

from aimodels.forms import AIModelForm
from aimodels.models import CONFLICT_MESSAGE, AIModel
from aimodels.tests.factories import AIModelFactory
from aimodels.validators import (
    validate_api_endpoint,
    validate_api_version,
    validate_plain_text,
    validate_token_budget,
)


def refusal(validator, value) -> tuple[str, str]:
    with pytest.raises(ValidationError) as raised:
        validator(value)
    error = raised.value
    return error.code, error.message % (error.params or {})


@pytest.mark.parametrize("value", ["2024-10-21x", "24-10-21", "2024-13-01", "2024-02-30", "2023-02-29"])
def test_an_api_version_that_is_not_a_real_date_in_the_form_is_refused_with_the_form(value):
    assert refusal(validate_api_version, value) == (
        "invalid_api_version",
        "Use the form YYYY-MM-DD or YYYY-MM-DD-preview.",
    )


def test_the_leap_day_of_a_leap_year_is_a_date(settings):
    settings.AZURE_API_VERSIONS = ["2024-02-29"]
    validate_api_version("2024-02-29")


def test_a_real_date_not_listed_is_refused_naming_the_allowed_versions(settings):
    settings.AZURE_API_VERSIONS = ["2024-10-21", "2025-01-01-preview"]
    assert refusal(validate_api_version, "2024-02-29") == (
        "api_version_not_allowed",
        "This API version is not allowed here. Allowed: 2024-10-21, 2025-01-01-preview (set by AZURE_API_VERSIONS).",
    )


def test_no_version_is_allowed_while_the_setting_lists_none(settings):
    settings.AZURE_API_VERSIONS = []
    assert refusal(validate_api_version, "2024-10-21") == (
        "api_version_not_allowed",
        "No Azure API version is allowed yet: list the allowed versions in the AZURE_API_VERSIONS setting.",
    )


@pytest.mark.parametrize(
    "url, code, message",
    [
        (
            "http://example.com/v1",
            "insecure_endpoint",
            "Use https. Plain http is allowed only to this machine (localhost, 127.0.0.1, ::1).",
        ),
        ("ftp://example.com/v1", "invalid_scheme", "Use an https URL (or http to localhost)."),
        *[
            (
                url,
                "credentials_in_url",
                "Remove the user name and password from the URL; the key goes in the environment variable "
                "named in the API key variable field.",
            )
            for url in ["https://sk-key@example.com/v1", "https://user:sk-key@example.com/v1"]
        ],
        *[
            (url, "query_in_url", "Remove the query string (?...) and fragment (#...) from the URL.")
            for url in ["https://example.com/v1?key=sk-key", "https://example.com/v1#sk-key"]
        ],
    ],
    ids=["http elsewhere", "not http", "a user name alone", "user and password", "query", "fragment"],
)
def test_each_endpoint_refusal_names_its_rule(url, code, message):
    assert refusal(validate_api_endpoint, url) == (code, message)


@pytest.mark.parametrize("url", ["http:///v1", "ftp:///v1?x=1", "https://[::1/v1"])
def test_the_endpoint_rule_leaves_a_url_without_a_host_to_the_url_validator(url):
    assert validate_api_endpoint(url) is None


@pytest.mark.django_db
def test_a_stale_version_is_refused_with_the_conflict_code():
    ai_model = AIModelFactory()
    data = {name: value for name, value in model_to_dict(ai_model).items() if value is not None}
    AIModel.objects.get(pk=ai_model.pk).save()  # version 2 meanwhile

    form = AIModelForm(data=data | {"version": 1}, instance=AIModel.objects.get(pk=ai_model.pk))

    assert not form.is_valid()
    assert [(e.code, e.message) for e in form.non_field_errors().as_data()] == [("conflict", CONFLICT_MESSAGE)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field, typed", [("api_key_env", "sk-live-0123456789"), ("api_endpoint", "https://example.com/v1?key=sk-live-0123")]
)
def test_a_refused_value_that_may_be_a_key_comes_back_empty(field, typed):
    data = model_to_dict(AIModelFactory.build(name="fresh"), exclude=["id", "version", "seeded_version"])
    form = AIModelForm(data={k: v for k, v in data.items() if v is not None} | {field: typed})

    assert not form.is_valid()
    assert form[field].value() == ""


@pytest.mark.parametrize("text", ["bell\x07", "nul\x00", "delete\x7f", "escape\x1b[0m", "next line\x85", "C1 escape\x9b31m"])
def test_control_characters_are_refused_with_the_rule(text):
    assert refusal(validate_plain_text, text) == ("control_characters", "Use plain text without control characters.")


@pytest.mark.parametrize("text", ["tab\tnew line\ncarriage return\r", "café ~ €", "no-break\xa0space"])
def test_tabs_line_breaks_and_printable_characters_are_plain_text(text):
    assert validate_plain_text(text) is None


@pytest.mark.parametrize(
    "context_window, max_completion_tokens, field, code",
    [(512, 1, "context_window", "window_too_small"), (4096, 3585, "max_completion_tokens", "no_room_for_prompt")],
)
def test_each_token_budget_refusal_has_its_code(context_window, max_completion_tokens, field, code):
    with pytest.raises(ValidationError) as raised:
        validate_token_budget(context_window=context_window, max_completion_tokens=max_completion_tokens)

    assert [e.code for e in raised.value.error_dict[field]] == [code]


@pytest.mark.parametrize(
    "context_window, max_completion_tokens, field, code",
    [(512, 1, "context_window", "window_too_small"), (4096, 3585, "max_completion_tokens", "no_room_for_prompt")],
)
def test_a_models_token_budget_refusal_keeps_its_code(context_window, max_completion_tokens, field, code):
    model = AIModelFactory.build(context_window=context_window, max_completion_tokens=max_completion_tokens)

    with pytest.raises(ValidationError) as raised:
        model.clean()

    assert [e.code for e in raised.value.error_dict[field]] == [code]


# AIModel (models.py): names, the key filter, clean()'s refusals, constraints, default, delete ---
def test_a_name_from_a_model_id_keeps_a_leading_capital_x():
    from aimodels.models import name_from_model_id

    assert name_from_model_id("Xwin-LM:13b") == "Xwin-LM-13b"


@pytest.mark.django_db
def test_a_model_whose_key_variable_is_named_xxxx_has_its_key_set(monkeypatch):
    monkeypatch.setenv("XXXX", "sk-test")
    model = AIModelFactory(api_key_env="XXXX")

    assert list(AIModel.objects.key_set()) == [model]


def test_clean_strips_only_slashes_from_the_end_of_the_endpoint():
    model = AIModelFactory.build(compatible=True, api_endpoint=" http://localhost:8080/BOX/ ")
    model.clean()

    assert model.api_endpoint == "http://localhost:8080/BOX"


def clean_refusals(**fields) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        AIModelFactory.build(**fields).clean()
    return raised.value.message_dict


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"compatible": True, "api_endpoint": ""}, "api_endpoint", "Required for Azure and OpenAI-compatible servers."),
        (
            {"azure": True, "api_endpoint": "https://example-resource.openai.azure.com/openai"},
            "api_endpoint",
            "Give the resource endpoint without /openai, e.g. https://NAME.openai.azure.com.",
        ),
        ({"api_version": "2024-10-21"}, "api_version", "Only Azure models take an API version; leave it empty."),
        ({"azure": True, "api_version": ""}, "api_version", "Required for Azure models."),
        (
            {"azure": True, "deployment_name": "-gpt4o"},
            "deployment_name",
            "An Azure deployment name uses letters, digits, '.', '_' and '-', starting with a letter or digit.",
        ),
        (
            {"api_key_env": ""},
            "api_key_env",
            "Required for OpenAI and Azure models (only local servers may need no key).",
        ),
        ({"is_default": True, "is_active": False}, "is_default", "The default model must be active."),
    ],
    ids=[
        "no endpoint", "endpoint with /openai", "version not for azure", "azure without a version",
        "azure deployment name", "no key", "inactive default",
    ],
)
def test_each_refusal_of_clean_says_what_to_do(fields, field, message):
    assert clean_refusals(**fields) == {field: [message]}


@pytest.mark.django_db
def test_a_window_below_one_is_refused_by_its_own_rule_alone():
    model = AIModelFactory.build(context_window=0, max_completion_tokens=1)
    with pytest.raises(ValidationError) as raised:
        model.full_clean(validate_unique=False, validate_constraints=False)

    assert [e.code for e in raised.value.error_dict["context_window"]] == ["min_value"]
    assert raised.value.error_dict.keys() == {"context_window"}


def test_a_window_of_one_token_is_refused_as_too_small_for_any_reply():
    with pytest.raises(ValidationError) as raised:
        AIModelFactory.build(context_window=1, max_completion_tokens=1).clean()

    [message] = raised.value.message_dict["context_window"]
    assert message.startswith("At least ") and "a reply of at least 1" in message


def test_the_largest_window_still_needs_room_for_a_prompt_beside_the_reply():
    from aimodels.models import MAX_CONTEXT_WINDOW

    with pytest.raises(ValidationError) as raised:
        AIModelFactory.build(context_window=MAX_CONTEXT_WINDOW, max_completion_tokens=MAX_CONTEXT_WINDOW - 1).clean()

    [message] = raised.value.message_dict["max_completion_tokens"]
    assert f"with a context window of {MAX_CONTEXT_WINDOW:,} tokens" in message


@pytest.mark.django_db
def test_a_database_constraint_failure_is_reported_on_the_field_it_concerns():
    model = AIModelFactory.build(azure=True, api_version="")
    with pytest.raises(ValidationError) as raised:
        model.validate_constraints()

    assert raised.value.error_dict.keys() == {"api_version"}


@pytest.mark.django_db
def test_a_constraint_failure_without_a_field_stays_a_failure_of_the_whole_model():
    model = AIModelFactory.build(version=0)
    with pytest.raises(ValidationError) as raised:
        model.validate_constraints()

    assert raised.value.error_dict.keys() == {"__all__"}


@pytest.mark.django_db
def test_making_a_model_the_default_moves_its_updated_at():
    model = AIModelFactory()
    before = model.updated_at
    model.make_default()

    model.refresh_from_db()
    assert model.is_default and model.updated_at > before


@pytest.mark.django_db
def test_saving_only_is_default_still_takes_the_default_from_the_other_model():
    old, new = AIModelFactory(is_default=True), AIModelFactory()
    new.is_default = True
    new.save(update_fields=["is_default"])

    old.refresh_from_db()
    assert not old.is_default
    assert list(AIModel.objects.filter(is_default=True)) == [new]


@pytest.mark.django_db
def test_making_a_model_the_default_refreshes_only_the_fields_it_wrote():
    model = AIModelFactory(description="Saved.")
    model.description = "Typed, not saved yet."
    model.make_default()

    assert (model.is_default, model.version, model.description) == (True, 2, "Typed, not saved yet.")


@pytest.mark.django_db
def test_a_refused_delete_lists_every_reason_separated_by_semicolons():
    from django.db.models import ProtectedError

    from conversations.tests.factories import ConversationFactory

    model = AIModelFactory(is_default=True)
    ConversationFactory(model=model)
    with pytest.raises(ProtectedError) as raised:
        model.delete()

    assert raised.value.args[0] == (
        f"“{model}” cannot be deleted: it is the default model (make another model the default first); "
        "1 conversation uses it."
    )


# late survivors of the 2026-11-29 run
A_WHILE_AGO = "2020-01-01T00:00:00Z"


class AIModelsElsewhere:
    """A router that sends the writes of AI models to a database this project does not have."""

    def db_for_write(self, model, **hints):
        return "elsewhere" if model is AIModel else None


ROUTER = f"{__name__}.AIModelsElsewhere"


@pytest.mark.django_db
def test_saving_chosen_fields_also_moves_updated_at():
    model = AIModelFactory()
    AIModel.objects.filter(pk=model.pk).update(updated_at=A_WHILE_AGO)
    model.refresh_from_db()
    model.description = "Changed."
    model.save(update_fields=["description"])

    model.refresh_from_db()
    assert model.description == "Changed." and model.updated_at.year > 2020


@pytest.mark.django_db
def test_saving_an_existing_model_keeps_when_it_was_added():
    model = AIModelFactory()
    AIModel.objects.filter(pk=model.pk).update(created_at=A_WHILE_AGO)
    model.refresh_from_db()
    model.save()

    model.refresh_from_db()
    assert model.created_at.year == 2020


@pytest.mark.django_db
def test_the_model_that_loses_the_default_to_a_saved_one_has_its_updated_at_moved():
    old = AIModelFactory(is_default=True)
    AIModel.objects.filter(pk=old.pk).update(updated_at=A_WHILE_AGO)
    AIModelFactory(is_default=True)

    old.refresh_from_db()
    assert not old.is_default and old.updated_at.year > 2020


@pytest.mark.django_db
def test_a_save_to_a_named_database_writes_there_whatever_the_router_says(settings):
    model = AIModelFactory(is_default=True)
    settings.DATABASE_ROUTERS = [ROUTER]
    model.description = "Changed."
    model.save(using="default")  # every write, the default's hand-over included, on "default"

    model.refresh_from_db()
    assert (model.description, model.version) == ("Changed.", 2)


@pytest.mark.django_db
def test_without_a_named_database_a_save_goes_where_the_router_sends_ai_models(settings):
    from django.utils.connection import ConnectionDoesNotExist

    model = AIModelFactory()
    settings.DATABASE_ROUTERS = [ROUTER]
    model.description = "Changed."
    with pytest.raises(ConnectionDoesNotExist):
        model.save()
