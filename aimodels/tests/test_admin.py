"""The Django admin for AI models; the actions talk to the fake upstream over real HTTP."""

import re

import pytest
from bs4 import BeautifulSoup
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.tests.factories import UserFactory
from aimodels.forms import AIModelForm
from aimodels.models import AIModel
from aimodels.tests.conftest import OPENAI_KEY
from aimodels.tests.factories import AIModelFactory
from bench.fake_upstream import FakeError, FakeReply

CHANGELIST = reverse("admin:aimodels_aimodel_changelist")
ADD = reverse("admin:aimodels_aimodel_add")
CONFLICT = "This model was changed by someone else since you opened it; reload to see the change."


def change_url(ai_model: AIModel) -> str:
    return reverse("admin:aimodels_aimodel_change", args=[ai_model.pk])


def delete_url(ai_model: AIModel) -> str:
    return reverse("admin:aimodels_aimodel_delete", args=[ai_model.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def run_action(client, action: str, *models: AIModel, **extra):
    data = {"action": action, "_selected_action": [m.pk for m in models], "index": 0, **extra}
    return client.post(CHANGELIST, data, follow=True)


def page_form(client, ai_model: AIModel) -> dict:
    """The change page's form fields as the browser would post them back."""
    response = client.get(change_url(ai_model))
    form = response.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    return {k: v for k, v in data.items() if v is not None and v is not False}


def served_by(upstream, **traits) -> AIModel:
    ai_model = AIModelFactory.build(**traits)
    ai_model.api_endpoint = upstream.azure_endpoint if ai_model.provider == "azure" else upstream.openai_base_url
    ai_model.save()
    return ai_model


# Access -------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert "login" in response["Location"]


@pytest.mark.django_db
def test_a_user_who_is_not_staff_cannot_see_ai_models(client):
    client.force_login(UserFactory())

    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert "login" in response["Location"]


# Pages --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_list_shows_the_models_with_their_columns(staff_client):
    AIModelFactory(name="gpt-4o-mini", is_default=True)
    AIModelFactory(name="local-llama", compatible=True, is_active=False)

    response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    content = response.content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', content)
    assert headers == [
        "name", "provider", "deployment_name", "is_default", "is_active", "key_set", "version", "updated_at"
    ]
    assert [m.name for m in response.context["cl"].result_list] == ["gpt-4o-mini", "local-llama"]
    assert "llama3.2:3b" in content


@pytest.mark.django_db
def test_the_list_filters_by_provider_and_searches_deployments(staff_client):
    AIModelFactory(name="cloud")
    AIModelFactory(name="azure-one", azure=True)
    AIModelFactory(name="local", compatible=True)

    by_provider = staff_client.get(CHANGELIST, {"provider__exact": "azure"})
    by_search = staff_client.get(CHANGELIST, {"q": "llama3.2"})

    assert [m.name for m in by_provider.context["cl"].result_list] == ["azure-one"]
    assert [m.name for m in by_search.context["cl"].result_list] == ["local"]
    filters = [spec.title for spec in by_provider.context["cl"].filter_specs]
    assert filters == ["provider", "active", "key set", "default", "reasoning model", "supports streaming", "supports tools"]


@pytest.mark.django_db
def test_the_add_page_explains_every_field(staff_client):
    response = staff_client.get(ADD)

    assert response.status_code == 200
    content = response.content.decode()
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        if name != "version":
            assert field.help_text, f"{name} has no help text"
            assert str(field.help_text) in content


@pytest.mark.django_db
def test_adding_a_valid_model(staff_client):
    data = page_form(staff_client, AIModelFactory(name="template"))
    data |= {"name": "new-model", "version": ""}

    response = staff_client.post(ADD, data)

    assert response.status_code == 302
    assert AIModel.objects.get(name="new-model").version == 1


@pytest.mark.django_db
def test_adding_an_invalid_model_shows_the_error_on_its_field_and_saves_nothing(staff_client):
    data = page_form(staff_client, AIModelFactory(name="template"))
    data |= {"name": "new-model", "version": "", "temperature": "2.5"}

    response = staff_client.post(ADD, data)

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["temperature"]
    assert not AIModel.objects.filter(name="new-model").exists()


@pytest.mark.django_db
def test_the_change_page_says_whether_the_key_is_set_but_never_shows_it(staff_client, api_keys):
    ai_model = AIModelFactory()

    content = staff_client.get(change_url(ai_model)).content.decode()

    assert "OPENAI_API_KEY is set in the server&#x27;s environment." in content
    assert OPENAI_KEY not in content


@pytest.mark.django_db
def test_two_admins_saving_the_same_model_the_second_gets_the_form_error(staff_client, client):
    ai_model = AIModelFactory(description="original")
    other_admin = client.__class__()
    other_admin.force_login(UserFactory(staff=True))
    first_page, second_page = page_form(staff_client, ai_model), page_form(other_admin, ai_model)

    first = staff_client.post(change_url(ai_model), first_page | {"description": "first"})
    second = other_admin.post(change_url(ai_model), second_page | {"description": "second"})

    assert first.status_code == 302
    assert second.status_code == 200
    assert second.context["adminform"].form.non_field_errors() == [CONFLICT]
    assert CONFLICT in second.content.decode()
    ai_model.refresh_from_db()
    assert (ai_model.description, ai_model.version) == ("first", 2)


@pytest.mark.django_db
def test_a_save_losing_the_race_after_the_check_is_refused_with_a_message(staff_client, monkeypatch):
    ai_model = AIModelFactory(description="original")
    data = page_form(staff_client, ai_model) | {"description": "mine"}
    checked = AIModelForm.clean

    def check_then_someone_else_saves(form):
        cleaned = checked(form)
        AIModel.objects.get(pk=ai_model.pk).save()
        return cleaned

    monkeypatch.setattr(AIModelForm, "clean", check_then_someone_else_saves)
    response = staff_client.post(change_url(ai_model), data, follow=True)

    assert CONFLICT in messages_of(response)
    assert response.redirect_chain[-1][0] == change_url(ai_model)
    ai_model.refresh_from_db()
    assert ai_model.description == "original"


# Deleting -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_deleting_the_default_model_is_refused_with_the_reason(staff_client):
    ai_model = AIModelFactory(name="main", is_default=True)

    response = staff_client.post(delete_url(ai_model), {"post": "yes"}, follow=True)

    assert messages_of(response) == [
        "“main” cannot be deleted: it is the default model (make another model the default first)."
    ]
    assert response.redirect_chain[-1][0] == change_url(ai_model)
    assert AIModel.objects.filter(pk=ai_model.pk).exists()


@pytest.mark.django_db
def test_deleting_an_unused_model_asks_then_deletes(staff_client):
    ai_model = AIModelFactory()

    confirm = staff_client.get(delete_url(ai_model))
    response = staff_client.post(delete_url(ai_model), {"post": "yes"})

    assert confirm.status_code == 200
    assert response.status_code == 302
    assert not AIModel.objects.exists()


@pytest.mark.django_db
def test_bulk_delete_with_the_default_selected_deletes_nothing(staff_client):
    default = AIModelFactory(name="main", is_default=True)
    other = AIModelFactory(name="spare")

    response = run_action(staff_client, "delete_selected", default, other, post="yes")

    assert "“main” cannot be deleted: it is the default model (make another model the default first)." in (
        messages_of(response)
    )
    assert AIModel.objects.count() == 2


@pytest.mark.django_db
def test_bulk_delete_of_unused_models_asks_then_deletes(staff_client):
    one, two = AIModelFactory(), AIModelFactory()

    confirm = run_action(staff_client, "delete_selected", one, two)
    done = run_action(staff_client, "delete_selected", one, two, post="yes")

    assert "Are you sure" in confirm.content.decode()
    assert "Successfully deleted 2 AI models." in messages_of(done)
    assert not AIModel.objects.exists()


def test_deleting_a_model_in_use_says_how_many_use_it(client, conversation_model):
    client.force_login(UserFactory(staff=True))
    ai_model = AIModelFactory(name="busy")
    for _ in range(3):
        conversation_model.objects.create(ai_model=ai_model)

    one = client.post(delete_url(ai_model), {"post": "yes"}, follow=True)
    bulk = run_action(client, "delete_selected", ai_model, post="yes")

    expected = "“busy” cannot be deleted: 3 test conversations use it."
    assert messages_of(one) == [expected]
    assert expected in messages_of(bulk)
    assert AIModel.objects.filter(pk=ai_model.pk).exists()


# Make default -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_make_default_action(staff_client):
    old = AIModelFactory(is_default=True)
    new = AIModelFactory(name="next")

    response = run_action(staff_client, "make_default", new)

    assert messages_of(response) == ["“next” is now the default model."]
    old.refresh_from_db()
    new.refresh_from_db()
    assert new.is_default and not old.is_default


@pytest.mark.django_db
def test_make_default_needs_exactly_one_model(staff_client):
    one, two = AIModelFactory(), AIModelFactory()

    response = run_action(staff_client, "make_default", one, two)

    assert messages_of(response) == ["Select exactly one model to make the default."]
    assert not AIModel.objects.filter(is_default=True).exists()


@pytest.mark.django_db
def test_make_default_refuses_an_inactive_model(staff_client):
    inactive = AIModelFactory(name="off", is_active=False)

    response = run_action(staff_client, "make_default", inactive)

    assert messages_of(response) == ["“off” is inactive: activate it before making it the default."]
    inactive.refresh_from_db()
    assert not inactive.is_default


# Test connection ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_test_connection_reports_success_with_latency(staff_client, fake_upstream, api_keys):
    fake_upstream.script(FakeReply(text="OK", first_delay=0.02))
    ai_model = served_by(fake_upstream, name="cloud")

    response = run_action(staff_client, "test_connection", ai_model)

    [message] = messages_of(response)
    assert re.fullmatch(r"“cloud” answered in (\d+) ms and replied “OK”\.", message)
    assert int(re.search(r"\d+", message)[0]) >= 20
    assert fake_upstream.last.path == "/v1/chat/completions"
    assert fake_upstream.last.api_key == OPENAI_KEY


@pytest.mark.django_db
def test_test_connection_reports_the_providers_error_in_plain_words(staff_client, fake_upstream, api_keys):
    fake_upstream.script(FakeError(status=404, code="DeploymentNotFound", message="The API deployment does not exist."))
    ai_model = served_by(fake_upstream, name="az", azure=True)

    response = run_action(staff_client, "test_connection", ai_model)

    assert messages_of(response) == [
        "“az” failed: Azure OpenAI has no deployment named “gpt-4o-mini-prod” (used by az), or the endpoint URL is "
        f"wrong. (Endpoint: {fake_upstream.azure_endpoint})"
    ]
    assert fake_upstream.last.query == {"api-version": "2024-10-21"}


@pytest.mark.django_db
def test_test_connection_names_a_missing_key_variable(staff_client, fake_upstream, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    ai_model = served_by(fake_upstream, name="cloud")

    response = run_action(staff_client, "test_connection", ai_model)

    assert messages_of(response) == [
        "“cloud” failed: The API key is not configured: the environment variable OPENAI_API_KEY is not set on the "
        "server."
    ]
    assert not fake_upstream.requests


@pytest.mark.django_db
def test_test_connection_reports_each_selected_model(staff_client, fake_upstream, api_keys):
    fake_upstream.script(FakeReply(text="OK"), FakeError.bad_key())
    good, bad = served_by(fake_upstream, name="a-good"), served_by(fake_upstream, name="b-bad")

    response = run_action(staff_client, "test_connection", good, bad)

    first, second = messages_of(response)
    assert first.startswith("“a-good” answered in")
    assert second.startswith("“b-bad” failed: OpenAI rejected the API key for b-bad")


# Import models ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_import_creates_inactive_configs_for_new_ids_only(staff_client, fake_upstream):
    fake_upstream.models = ["llama3.2:3b", "qwen2.5:7b", "org/Model-7B"]
    source = served_by(fake_upstream, name="local", compatible=True, context_window=8192, max_completion_tokens=2048)

    response = run_action(staff_client, "import_models", source)

    assert messages_of(response) == [
        f"Imported 2 new models from {fake_upstream.openai_base_url}: qwen2.5-7b, org-Model-7B. "
        "They are inactive: check each one, then activate it."
    ]
    assert fake_upstream.last.path == "/v1/models"
    imported = AIModel.objects.exclude(pk=source.pk).order_by("deployment_name")
    assert [(m.name, m.deployment_name, m.is_active) for m in imported] == [
        ("org-Model-7B", "org/Model-7B", False),
        ("qwen2.5-7b", "qwen2.5:7b", False),
    ]
    assert {(m.api_endpoint, m.provider, m.context_window, m.max_completion_tokens) for m in imported} == {
        (source.api_endpoint, "openai_compatible", 8192, 2048)
    }


@pytest.mark.django_db
def test_importing_again_finds_nothing_new(staff_client, fake_upstream):
    fake_upstream.models = ["llama3.2:3b", "phi4"]
    source = served_by(fake_upstream, compatible=True)
    run_action(staff_client, "import_models", source)

    response = run_action(staff_client, "import_models", source)

    assert messages_of(response) == [f"No new models at {fake_upstream.openai_base_url}."]
    assert AIModel.objects.count() == 2


@pytest.mark.django_db
def test_import_gives_a_taken_name_a_suffix_and_skips_ids_that_break_the_rules(staff_client, fake_upstream):
    AIModelFactory(name="phi4")
    fake_upstream.models = ["phi4", "has spaces in it"]
    source = served_by(fake_upstream, compatible=True)

    response = run_action(staff_client, "import_models", source)

    assert messages_of(response)[1] == "Skipped ids that break the naming rules: has spaces in it."
    assert AIModel.objects.get(deployment_name="phi4", provider="openai_compatible").name == "phi4-2"


@pytest.mark.django_db
def test_import_reports_the_endpoints_error(staff_client, fake_upstream):
    fake_upstream.queue_error(status=500)
    source = served_by(fake_upstream, name="local", compatible=True)

    response = run_action(staff_client, "import_models", source)

    assert messages_of(response) == [
        "Import from “local” failed: The server behind local had an internal error (HTTP 500). Try again in a moment. "
        f"(Endpoint: {fake_upstream.openai_base_url})"
    ]
    assert AIModel.objects.count() == 1


@pytest.mark.django_db
def test_import_skips_models_not_on_a_compatible_server(staff_client, fake_upstream):
    source = served_by(fake_upstream, name="cloud")

    response = run_action(staff_client, "import_models", source)

    assert messages_of(response) == [
        "“cloud” is not on an OpenAI-compatible server; models are imported from those only."
    ]
    assert not fake_upstream.requests


# The key, in the list --------------------------------------------------------------------------
KEY_VARIABLE = "CHATTER_ADMIN_TEST_KEY"


@pytest.fixture
def keys_for_the_list(monkeypatch):
    """Three models: one whose key variable is set, one whose is not, one that needs none."""
    monkeypatch.setenv(KEY_VARIABLE, "sk-admin-list-test")
    monkeypatch.delenv("CHATTER_ADMIN_TEST_UNSET", raising=False)
    return {
        "a-set": AIModelFactory(name="a-set", api_key_env=KEY_VARIABLE),
        "b-missing": AIModelFactory(name="b-missing", api_key_env="CHATTER_ADMIN_TEST_UNSET"),
        "c-keyless": AIModelFactory(name="c-keyless", compatible=True),
    }


@pytest.mark.django_db
def test_the_list_flags_each_models_key_as_set_not_set_or_not_needed(staff_client, keys_for_the_list):
    page = BeautifulSoup(staff_client.get(CHANGELIST).content, "html.parser")

    flags = [(cell.img["alt"] if cell.img else "", cell.text.strip()) for cell in page.select("td.field-key_set")]

    assert flags == [
        ("Set", KEY_VARIABLE), ("Not set", "CHATTER_ADMIN_TEST_UNSET is not set"), ("", "No key needed")
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "names"), [("set", ["a-set"]), ("missing", ["b-missing"]), ("none", ["c-keyless"])]
)
def test_the_list_filters_by_whether_the_key_is_set(staff_client, keys_for_the_list, value, names):
    response = staff_client.get(CHANGELIST, {"key": value})

    assert [m.name for m in response.context["cl"].result_list] == names


# The token budget, beside its field ------------------------------------------------------------
@pytest.mark.django_db
def test_a_reply_limit_leaving_no_room_for_a_prompt_is_refused_beside_its_field(staff_client):
    ai_model = AIModelFactory(context_window=4096, max_completion_tokens=1024)
    data = page_form(staff_client, ai_model) | {"max_completion_tokens": "4000"}

    response = staff_client.post(change_url(ai_model), data)

    assert response.status_code == 200
    field = BeautifulSoup(response.content, "html.parser").select_one(".field-max_completion_tokens")
    assert "At most 3,584 with a context window of 4,096 tokens" in field.select_one(".errorlist").text
    ai_model.refresh_from_db()
    assert (ai_model.max_completion_tokens, ai_model.version) == (1024, 1)


# The change page's buttons ---------------------------------------------------------------------
def connection_test_url(ai_model: AIModel) -> str:
    return reverse("admin:aimodels_aimodel_test_connection", args=[ai_model.pk])


def import_url(ai_model: AIModel) -> str:
    return reverse("admin:aimodels_aimodel_import_models", args=[ai_model.pk])


def tool_forms(response) -> dict[str, str]:
    """The change page's object tools that post: their button's text -> where they post."""
    page = BeautifulSoup(response.content, "html.parser")
    return {form.button.text.strip(): form["action"] for form in page.select(".object-tools form[method=post]")}



@pytest.mark.django_db
def test_the_change_page_of_a_compatible_model_has_both_buttons(staff_client):
    ai_model = AIModelFactory(compatible=True)

    response = staff_client.get(change_url(ai_model))

    assert tool_forms(response) == {
        "Test connection": connection_test_url(ai_model),
        "Import models": import_url(ai_model),
    }


@pytest.mark.django_db
def test_the_change_page_of_a_cloud_model_offers_no_import(staff_client):
    ai_model = AIModelFactory()

    response = staff_client.get(change_url(ai_model))

    assert tool_forms(response) == {"Test connection": connection_test_url(ai_model)}


@pytest.mark.django_db
def test_the_add_page_has_no_buttons(staff_client):
    assert tool_forms(staff_client.get(ADD)) == {}


@pytest.mark.django_db
def test_the_change_page_has_no_inline_styles_or_handlers_for_the_csp(staff_client):
    ai_model = AIModelFactory(compatible=True)

    html = staff_client.get(change_url(ai_model)).content.decode()

    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert not re.search(r"<script(?![^>]*\ssrc=)", html)


@pytest.mark.django_db
def test_the_test_connection_button_reports_on_the_change_page(staff_client, fake_upstream, api_keys):
    fake_upstream.script(FakeReply(text="OK"))
    ai_model = served_by(fake_upstream, name="cloud")

    response = staff_client.post(connection_test_url(ai_model), follow=True)

    assert response.redirect_chain == [(change_url(ai_model), 302)]
    [message] = messages_of(response)
    assert re.fullmatch(r"“cloud” answered in \d+ ms and replied “OK”\.", message)
    assert fake_upstream.last.path == "/v1/chat/completions"


@pytest.mark.django_db
def test_the_test_connection_button_tells_staff_the_endpoint_that_failed(staff_client, fake_upstream):
    fake_upstream.script(FakeError.server_error())
    ai_model = served_by(fake_upstream, name="local", compatible=True)

    response = staff_client.post(connection_test_url(ai_model), follow=True)

    assert messages_of(response) == [
        "“local” failed: The server behind local had an internal error (HTTP 500). Try again in a moment. "
        f"(Endpoint: {fake_upstream.openai_base_url})"
    ]


@pytest.mark.django_db
def test_the_import_button_imports_and_reports_on_the_change_page(staff_client, fake_upstream):
    fake_upstream.models = ["llama3.2:3b", "phi4"]
    source = served_by(fake_upstream, name="local", compatible=True)

    response = staff_client.post(import_url(source), follow=True)

    assert response.redirect_chain == [(change_url(source), 302)]
    assert messages_of(response) == [
        f"Imported 1 new model from {fake_upstream.openai_base_url}: phi4. They are inactive: check each one, then "
        "activate it."
    ]
    assert AIModel.objects.filter(deployment_name="phi4", is_active=False).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url", [connection_test_url, import_url], ids=["test connection", "import"])
def test_the_buttons_act_only_on_post(staff_client, fake_upstream, url):
    ai_model = served_by(fake_upstream, compatible=True)

    response = staff_client.get(url(ai_model))

    assert response.status_code == 405
    assert not fake_upstream.requests


@pytest.mark.django_db
@pytest.mark.parametrize("url", [connection_test_url, import_url], ids=["test connection", "import"])
def test_the_buttons_refuse_a_post_without_the_csrf_token(fake_upstream, url):
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(UserFactory(staff=True))
    ai_model = served_by(fake_upstream, compatible=True)

    response = staff.post(url(ai_model))

    assert response.status_code == 403
    assert not fake_upstream.requests


@pytest.mark.django_db
def test_the_test_connection_button_works_with_the_pages_csrf_token(fake_upstream):
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(UserFactory(staff=True))
    ai_model = served_by(fake_upstream, compatible=True)
    form = BeautifulSoup(staff.get(change_url(ai_model)).content, "html.parser").select_one(".object-tools form")

    response = staff.post(form["action"], {"csrfmiddlewaretoken": form.select_one("[name=csrfmiddlewaretoken]")["value"]})

    assert response.status_code == 302
    assert fake_upstream.last.path == "/v1/chat/completions"


@pytest.mark.django_db
@pytest.mark.parametrize("url", [connection_test_url, import_url], ids=["test connection", "import"])
def test_the_buttons_are_for_staff_only(client, fake_upstream, url):
    client.force_login(UserFactory())
    ai_model = served_by(fake_upstream, compatible=True)

    response = client.post(url(ai_model))

    assert response.status_code == 302
    assert "login" in response["Location"]
    assert not fake_upstream.requests


@pytest.mark.django_db
def test_a_button_for_a_model_deleted_meanwhile_says_so(staff_client):
    response = staff_client.post(reverse("admin:aimodels_aimodel_test_connection", args=[999]), follow=True)

    assert response.status_code == 200
    assert messages_of(response) == ["AI model with ID “999” doesn’t exist. Perhaps it was deleted?"]
