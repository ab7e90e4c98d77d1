"""Which models the chat offers: active ones that can be called, i.e. keyless (a local server) or
with their API key variable set on the server. A model whose key is missing would fail on its
first message, so it is not offered at all (the admin flags it instead)."""

import pytest

from accounts.tests.factories import UserFactory
from aimodels.models import AIModel
from aimodels.tests.factories import AIModelFactory
from conversations.forms import MessageForm

KEY_VARIABLE = "CHATTER_USABLE_TEST_KEY"


@pytest.fixture
def key_unset(monkeypatch):
    monkeypatch.delenv(KEY_VARIABLE, raising=False)


@pytest.fixture
def key_set(monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, "sk-usable-test")


@pytest.mark.django_db
def test_usable_lists_the_active_models_that_are_keyless_or_have_their_key_set(key_set):
    keyless = AIModelFactory(name="a-keyless", compatible=True)
    keyed = AIModelFactory(name="b-keyed", api_key_env=KEY_VARIABLE)
    AIModelFactory(name="c-key-missing", api_key_env="CHATTER_USABLE_TEST_UNSET")
    AIModelFactory(name="d-inactive", compatible=True, is_active=False)

    assert list(AIModel.objects.usable()) == [keyless, keyed]


@pytest.mark.django_db
def test_a_key_variable_set_but_empty_does_not_make_a_model_usable(monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, "")
    AIModelFactory(api_key_env=KEY_VARIABLE)

    assert not AIModel.objects.usable().exists()


@pytest.mark.django_db
def test_usable_reads_the_environment_each_time_it_is_asked(monkeypatch, key_unset):
    ai_model = AIModelFactory(api_key_env=KEY_VARIABLE)
    before = list(AIModel.objects.usable())
    monkeypatch.setenv(KEY_VARIABLE, "sk-now-set")

    assert (before, list(AIModel.objects.usable())) == ([], [ai_model])


@pytest.mark.django_db
def test_usable_agrees_with_each_models_own_reason(monkeypatch, key_set):
    models = [
        AIModelFactory(compatible=True),
        AIModelFactory(api_key_env=KEY_VARIABLE),
        AIModelFactory(api_key_env="CHATTER_USABLE_TEST_UNSET"),
        AIModelFactory(is_active=False),
    ]

    assert set(AIModel.objects.usable()) == {m for m in models if not m.unusable_reason}


# The chat's model picker ----------------------------------------------------------------------
@pytest.mark.django_db
def test_the_chat_does_not_offer_a_model_whose_key_is_not_set(key_unset):
    offered = AIModelFactory(name="local", compatible=True)
    AIModelFactory(name="cloud", api_key_env=KEY_VARIABLE)

    form = MessageForm(user=UserFactory())

    assert list(form.fields["model"].queryset) == [offered]


@pytest.mark.django_db
def test_choosing_a_model_whose_key_is_not_set_is_refused_before_anything_is_saved(key_unset):
    AIModelFactory(name="local", compatible=True)
    hidden = AIModelFactory(name="cloud", api_key_env=KEY_VARIABLE)

    form = MessageForm({"content": "Hello", "model": hidden.pk}, user=UserFactory())

    assert not form.is_valid()
    assert list(form.errors) == ["model"]


@pytest.mark.django_db
def test_a_default_model_whose_key_is_not_set_is_not_preselected(key_unset):
    AIModelFactory(name="cloud", api_key_env=KEY_VARIABLE, is_default=True)
    AIModelFactory(name="local", compatible=True)

    form = MessageForm(user=UserFactory())

    assert form.fields["model"].initial is None
