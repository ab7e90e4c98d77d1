import pytest
from django.forms.models import model_to_dict

from aimodels.forms import AIModelForm
from aimodels.models import AIModel, EditConflict
from aimodels.tests.factories import AIModelFactory

CONFLICT = "This model was changed by someone else since you opened it; reload to see the change."


def opened(ai_model: AIModel) -> dict:
    """The data a browser posts back from the change page, as it was when opened."""
    form = AIModelForm(instance=ai_model)
    data = {name: form[name].value() for name in form.fields}
    return {k: v for k, v in data.items() if v is not None and v is not False}


@pytest.mark.django_db
def test_the_form_carries_the_version_it_was_opened_at():
    ai_model = AIModelFactory()
    AIModel.objects.filter(pk=ai_model.pk).update(version=7)
    ai_model.refresh_from_db()

    html = AIModelForm(instance=ai_model).as_p()

    assert '<input type="hidden" name="version" value="7"' in html


@pytest.mark.django_db
def test_the_second_of_two_saves_from_the_same_page_gets_a_form_error_and_overwrites_nothing():
    ai_model = AIModelFactory(description="original")
    page_one, page_two = opened(ai_model), opened(ai_model)

    first = AIModelForm(data=page_one | {"description": "from page one"}, instance=AIModel.objects.get(pk=ai_model.pk))
    assert first.is_valid(), first.errors
    first.save()
    second = AIModelForm(data=page_two | {"description": "from page two"}, instance=AIModel.objects.get(pk=ai_model.pk))

    assert not second.is_valid()
    assert second.non_field_errors() == [CONFLICT]
    ai_model.refresh_from_db()
    assert (ai_model.description, ai_model.version) == ("from page one", 2)


@pytest.mark.django_db
def test_a_save_that_lands_between_the_check_and_the_write_is_refused_too():
    ai_model = AIModelFactory(description="original")
    form = AIModelForm(data=opened(ai_model) | {"description": "late"}, instance=AIModel.objects.get(pk=ai_model.pk))
    assert form.is_valid()

    AIModel.objects.get(pk=ai_model.pk).save()  # someone else saves after the check
    with pytest.raises(EditConflict):
        form.save()

    ai_model.refresh_from_db()
    assert (ai_model.description, ai_model.version) == ("original", 2)


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["", "0", "2"], ids=["missing", "zero", "from the future"])
def test_a_missing_or_tampered_version_is_refused(version):
    ai_model = AIModelFactory()

    form = AIModelForm(data=opened(ai_model) | {"version": version}, instance=ai_model)

    assert not form.is_valid()
    assert CONFLICT in form.non_field_errors()


@pytest.mark.django_db
def test_a_new_model_needs_no_version():
    data = model_to_dict(AIModelFactory.build(name="fresh"), exclude=["id", "version", "seeded_version"])

    form = AIModelForm(data={k: v for k, v in data.items() if v is not False})

    assert form.is_valid(), form.errors
    assert form.save().version == 1


@pytest.mark.django_db
def test_a_key_pasted_as_the_variable_name_is_not_shown_again():
    key = "sk-proj-Abc123Secret"
    data = opened(AIModelFactory.build()) | {"name": "new", "api_key_env": key}

    form = AIModelForm(data=data)

    assert not form.is_valid()
    assert "api_key_env" in form.errors
    assert key not in form.as_p()


@pytest.mark.django_db
def test_credentials_in_the_endpoint_url_are_not_shown_again():
    data = opened(AIModelFactory.build(compatible=True)) | {
        "name": "new",
        "api_endpoint": "https://me:hunter2secret@llm.example.com/v1",
    }

    form = AIModelForm(data=data)

    assert not form.is_valid()
    assert "hunter2secret" not in form.as_p()


@pytest.mark.django_db
def test_an_ordinary_bad_endpoint_is_shown_again_for_correction():
    data = opened(AIModelFactory.build(compatible=True)) | {"name": "new", "api_endpoint": "http://llm.example.com/v1"}

    form = AIModelForm(data=data)

    assert not form.is_valid()
    assert 'value="http://llm.example.com/v1"' in form.as_p()
