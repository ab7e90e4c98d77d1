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
