from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import ProtectedError, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from accounts.admin import StaffAccessMixin
from aimodels.forms import AIModelForm
from aimodels.models import AIModel, EditConflict
from aimodels.services import ProviderError, connection_test, endpoint_models_import

MAX_TESTED_AT_ONCE = 10


def _refusal(model: AIModel, reasons: list[str]) -> str:
    return f"“{model}” cannot be deleted: {'; '.join(reasons)}."


class KeySetFilter(admin.SimpleListFilter):
    """Whether each model's API key variable is set in the server's environment: a model whose
    key is missing is not offered in the chat (AIModel.objects.usable())."""

    title = "key set"
    parameter_name = "key"

    def lookups(self, request, model_admin):
        return [("set", "Set"), ("missing", "Not set"), ("none", "No key needed")]

    def queryset(self, request, queryset):
        match self.value():
            case "set":
                return queryset.key_set()
            case "missing":
                return queryset.key_missing()
            case "none":
                return queryset.filter(api_key_env="")
        return queryset


@admin.register(AIModel)
class AIModelAdmin(StaffAccessMixin, admin.ModelAdmin):
    form = AIModelForm
    list_display = (
        "name", "provider", "deployment_name", "is_default", "is_active", "key_set", "version", "updated_at"
    )
    list_display_links = ("name",)
    list_filter = ("provider", "is_active", KeySetFilter, "is_default", "is_reasoning", "supports_streaming", "supports_tools")
    search_fields = ("name", "deployment_name", "api_endpoint", "description")
    readonly_fields = ("api_key_status", "created_at", "updated_at")
    actions = ["make_default", "test_connection", "import_models", "delete_selected"]
    fieldsets = (
        (None, {"fields": ("name", "description", "is_active", "is_default", "version")}),
        (
            "Connection",
            {"fields": ("provider", "api_endpoint", "deployment_name", "api_version", "api_key_env", "api_key_status")},
        ),
        (
            "Replies",
            {
                "fields": (
                    "context_window",
                    "max_completion_tokens",
                    "temperature",
                    "is_reasoning",
                    "system_prompt_handling",
                    "supports_streaming",
                    "supports_tools",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        # "version" in the fieldsets is the form's own hidden field (the optimistic lock), not the
        # model's non-editable field of that name: keep it out of the model fields asked for.
        fields = kwargs.get("fields", flatten_fieldsets(self.get_fieldsets(request, obj)))
        if fields is not None:
            kwargs["fields"] = [name for name in fields if name != "version"]
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description="API key")
    def key_set(self, obj: AIModel) -> str:
        """Set, not set (flagged: the model is not offered in the chat), or not needed (a keyless local
        server), in words beside the icon: a bare ✗ would read like the Default column's "no"."""
        if not obj.api_key_env:
            return "No key needed"
        if obj.api_key_is_set:
            return format_html('<img src="{}" alt="Set"> {}', static("admin/img/icon-yes.svg"), obj.api_key_env)
        return format_html(
            '<img src="{}" alt="Not set"> <strong>{} is not set</strong>', static("admin/img/icon-alert.svg"),
            obj.api_key_env,
        )

    @admin.display(description="API key")
    def api_key_status(self, obj: AIModel) -> str:
        if not obj.api_key_env:
            return "None: requests are sent without a key."
        if obj.api_key_is_set:
            return f"{obj.api_key_env} is set in the server's environment."
        return f"{obj.api_key_env} is NOT set in the server's environment: requests will fail until it is."

    # Saving: a save that loses the race after the form's version check is refused too.
    def changeform_view(self, request: HttpRequest, object_id=None, form_url="", extra_context=None) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except EditConflict as conflict:
            self.message_user(request, str(conflict), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # Deleting: the default model and models in use stay, with a message saying why.
    def delete_view(self, request: HttpRequest, object_id, extra_context=None) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and (reasons := obj.delete_blockers()):
            self.message_user(request, _refusal(obj, reasons), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:aimodels_aimodel_change", args=[obj.pk]))
        try:
            return super().delete_view(request, object_id, extra_context)
        except ProtectedError as refused:
            self.message_user(request, refused.args[0], messages.ERROR)
            return HttpResponseRedirect(reverse("admin:aimodels_aimodel_changelist"))

    @admin.action(description="Delete selected AI models", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[AIModel]) -> HttpResponse | None:
        refusals = [_refusal(m, reasons) for m in queryset if (reasons := m.delete_blockers())]
        for refusal in refusals:
            self.message_user(request, refusal, messages.ERROR)
        if refusals:
            return None
        try:
            return django_delete_selected(self, request, queryset)
        except ProtectedError as refused:
            self.message_user(request, refused.args[0], messages.ERROR)
            return None

    # Actions ---------------------------------------------------------------------------------
    @admin.action(description="Make default")
    def make_default(self, request: HttpRequest, queryset: QuerySet[AIModel]) -> None:
        if len(queryset) != 1:
            self.message_user(request, "Select exactly one model to make the default.", messages.ERROR)
            return
        model = queryset[0]
        try:
            model.make_default()
        except ValidationError:
            self.message_user(
                request, f"“{model}” is inactive: activate it before making it the default.", messages.ERROR
            )
            return
        self.message_user(request, f"“{model}” is now the default model.", messages.SUCCESS)

    @admin.action(description="Test connection")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[AIModel]) -> None:
        models = list(queryset[: MAX_TESTED_AT_ONCE + 1])
        if len(models) > MAX_TESTED_AT_ONCE:
            self.message_user(request, f"Test at most {MAX_TESTED_AT_ONCE} models at a time.", messages.ERROR)
            return
        for model in models:
            self._connection_report(request, model)

    @admin.action(description="Import models from endpoint")
    def import_models(self, request: HttpRequest, queryset: QuerySet[AIModel]) -> None:
        for source in queryset:
            self._import_report(request, source)

    def _connection_report(self, request: HttpRequest, model: AIModel) -> None:
        try:
            check = connection_test(model=model)
        except ProviderError as failure:
            self.message_user(request, f"“{model}” failed: {failure.message}", messages.ERROR)
        else:
            replied = f" and replied “{check.reply}”" if check.reply else ""
            self.message_user(request, f"“{model}” answered in {check.latency_ms} ms{replied}.", messages.SUCCESS)

    def _import_report(self, request: HttpRequest, source: AIModel) -> None:
        if source.provider != AIModel.Provider.OPENAI_COMPATIBLE:
            self.message_user(
                request,
                f"“{source}” is not on an OpenAI-compatible server; models are imported from those only.",
                messages.WARNING,
            )
            return
        try:
            created, skipped = endpoint_models_import(source=source)
        except ProviderError as failure:
            self.message_user(request, f"Import from “{source}” failed: {failure.message}", messages.ERROR)
            return
        if created:
            names = ", ".join(m.name for m in created)
            self.message_user(
                request,
                f"Imported {len(created)} new model{'s' if len(created) != 1 else ''} from {source.api_endpoint}: "
                f"{names}. They are inactive: check each one, then activate it.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, f"No new models at {source.api_endpoint}.", messages.INFO)
        if skipped:
            self.message_user(
                request, f"Skipped ids that break the naming rules: {', '.join(skipped)}.", messages.WARNING
            )

    # The same two, as buttons on the change page (POST, then back with a message) ------------
    def get_urls(self):
        # admin_view: staff only, CSRF-protected; require_POST: a GET (a prefetch, a link) acts on nothing.
        tools = [
            path(
                "<path:object_id>/test-connection/",
                self.admin_site.admin_view(require_POST(self.connection_test_view)),
                name="aimodels_aimodel_test_connection",
            ),
            path(
                "<path:object_id>/import-models/",
                self.admin_site.admin_view(require_POST(self.models_import_view)),
                name="aimodels_aimodel_import_models",
            ),
        ]
        return tools + super().get_urls()

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        tools = {}
        if obj is not None:
            tools["connection_test_url"] = reverse("admin:aimodels_aimodel_test_connection", args=[obj.pk])
            if obj.provider == AIModel.Provider.OPENAI_COMPATIBLE and self.has_add_permission(request):
                tools["models_import_url"] = reverse("admin:aimodels_aimodel_import_models", args=[obj.pk])
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **tools})

    def connection_test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Test the saved settings of one model, then back to its page with the result."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        self._connection_report(request, obj)
        return HttpResponseRedirect(reverse("admin:aimodels_aimodel_change", args=[obj.pk]))

    def models_import_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Import the models the model's endpoint lists, then back to its page with the result."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_add_permission(request):
            raise PermissionDenied
        self._import_report(request, obj)
        return HttpResponseRedirect(reverse("admin:aimodels_aimodel_change", args=[obj.pk]))
