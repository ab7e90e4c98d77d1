from django import forms
from django.core.exceptions import ValidationError

from aimodels.models import CONFLICT_MESSAGE, AIModel

# Errors after which a field's typed value is not shown again: it may be a key pasted into the
# wrong field, and the key never enters a page.
SECRET_ERRORS = {
    "api_key_env": None,  # any error
    "api_endpoint": {"credentials_in_url", "query_in_url"},
}


class AIModelForm(forms.ModelForm):
    """Every rule lives on the model; this form adds the optimistic lock: it carries the version
    the page was opened at, and a save over a newer version is refused with a form error."""

    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)

    class Meta:
        model = AIModel
        fields = [
            "name",
            "description",
            "is_active",
            "is_default",
            "provider",
            "api_endpoint",
            "deployment_name",
            "api_version",
            "api_key_env",
            "context_window",
            "max_completion_tokens",
            "temperature",
            "is_reasoning",
            "system_prompt_handling",
            "supports_streaming",
            "supports_tools",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3, "cols": 60})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["version"].initial = self.instance.version

    def clean(self) -> dict:
        cleaned_data = super().clean()
        if self.instance.pk is not None:
            opened = cleaned_data.get("version")
            current = AIModel.objects.filter(pk=self.instance.pk).values_list("version", flat=True).first()
            if opened is None or opened != current:
                raise ValidationError(CONFLICT_MESSAGE, code="conflict")
            # save() compares against the version the page was opened at, not the one just read,
            # so a save that lands between this check and the write is refused as well.
            self.instance.version = opened
        return cleaned_data

    def _post_clean(self) -> None:
        super()._post_clean()
        errors = self.errors.as_data()
        hidden = [
            name
            for name, codes in SECRET_ERRORS.items()
            if name in errors and (codes is None or any(e.code in codes for e in errors[name]))
        ]
        if hidden:
            self.data = self.data.copy()
            for name in hidden:
                self.data[self.add_prefix(name)] = ""
