import os
import re
from decimal import Decimal
from urllib.parse import urlsplit

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, router, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from aimodels.validators import (
    CONTEXT_MARGIN,
    ENV_NAME_RE,
    MIN_PROMPT_TOKENS,
    validate_api_endpoint,
    validate_api_key_env,
    validate_api_version,
    validate_deployment_name,
    validate_name,
    validate_plain_text,
    validate_token_budget,
)

MAX_CONTEXT_WINDOW = 2_000_000
OPENAI_PUBLIC_ENDPOINT = "https://api.openai.com/v1"
AZURE_DEPLOYMENT_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")
CONFLICT_MESSAGE = "This model was changed by someone else since you opened it; reload to see the change."


def name_from_model_id(model_id: str, *, prefix: str = "") -> str:
    """A name that follows the naming rule, made from a provider's model id:
    'llama3.2:3b' -> 'llama3.2-3b', 'org/Model-7B' -> 'org-Model-7B'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix + model_id).lstrip("._-")[:50]
    return name or "model"


class EditConflict(Exception):
    """The row's version moved on since the instance was read: someone else saved it first."""

    def __init__(self, message: str = CONFLICT_MESSAGE) -> None:
        super().__init__(message)


def _set_key_variables() -> list[str]:
    """The names of the environment variables that could hold a key and are set (not empty)."""
    return [name for name, value in os.environ.items() if value and re.match(ENV_NAME_RE, name)]


class AIModelQuerySet(models.QuerySet):
    def active(self) -> "AIModelQuerySet":
        """The models an admin has switched on."""
        return self.filter(is_active=True)

    def key_set(self) -> "AIModelQuerySet":
        """The models whose API key variable is set in this process's environment (read now)."""
        return self.exclude(api_key_env="").filter(api_key_env__in=_set_key_variables())

    def key_missing(self) -> "AIModelQuerySet":
        """The models that name an API key variable which is not set in this process's environment."""
        return self.exclude(api_key_env="").exclude(api_key_env__in=_set_key_variables())

    def usable(self) -> "AIModelQuerySet":
        """The models offered in the chat: active, and keyless or with their key variable set
        (the environment is read when this is called, as unusable_reason reads it)."""
        return self.active().filter(Q(api_key_env="") | Q(api_key_env__in=_set_key_variables()))

    def offered(self) -> "AIModelQuerySet":
        """The usable models in the order the chat offers them: the default first, then by name."""
        return self.usable().order_by("-is_default", "name")

    def delete(self):
        # A bulk delete (the admin's "Delete selected") obeys the same rules as one delete.
        for ai_model in self:
            ai_model.check_deletable()
        return super().delete()

    delete.alters_data = True
    delete.queryset_only = True


class AIModel(models.Model):
    class Provider(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        AZURE = "azure", "Azure OpenAI"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio...)"

    class SystemPromptHandling(models.TextChoices):
        DEVELOPER = "developer", "Send it as a 'developer' message"
        FOLD = "fold", "Fold it into the first user message"

    name = models.CharField(
        max_length=50,
        validators=[validate_name],
        help_text="What users see in the chat. 1-50 letters, digits, '.', '_' or '-', starting with a letter "
        "or digit; unique ignoring case.",
    )
    provider = models.CharField(
        max_length=20,
        choices=Provider,
        default=Provider.OPENAI,
        help_text="Who serves the model: OpenAI, Azure OpenAI, or any server with an OpenAI-compatible API.",
    )
    api_endpoint = models.URLField(
        "API endpoint",
        max_length=255,
        blank=True,
        validators=[validate_api_endpoint],
        help_text="https (plain http only to localhost). OpenAI: leave empty for the public API. Azure: the "
        "resource endpoint, e.g. https://NAME.openai.azure.com (without /openai). OpenAI-compatible: the base "
        "URL including /v1, e.g. http://localhost:11434/v1.",
    )
    deployment_name = models.CharField(
        "model / deployment",
        max_length=128,
        validators=[validate_deployment_name],
        help_text="The model id (e.g. gpt-4.1-mini, llama3.2:3b, org/Model-7B), or for Azure the deployment "
        "name.",
    )
    api_version = models.CharField(
        "API version",
        max_length=20,
        blank=True,
        validators=[validate_api_version],
        help_text="Azure only: YYYY-MM-DD or YYYY-MM-DD-preview, one of the versions allowed by the "
        "AZURE_API_VERSIONS setting.",
    )
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        validators=[validate_api_key_env],
        help_text="The NAME of the server environment variable that holds the key, e.g. OPENAI_API_KEY. The "
        "key itself is never stored here. Leave empty for a local server that needs no key.",
    )
    description = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_plain_text],
        help_text="Plain text shown with the model in the chat, at most 500 characters.",
    )
    temperature = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=Decimal("0.70"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(2))],
        help_text="0 to 2: higher is more varied, lower more focused. Not sent to reasoning models.",
    )
    context_window = models.PositiveIntegerField(
        default=128_000,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CONTEXT_WINDOW)],
        help_text=f"How many tokens the model reads at once, prompt and reply together "
        f"({CONTEXT_MARGIN + MIN_PROMPT_TOKENS + 1:,} to {MAX_CONTEXT_WINDOW:,}). Older messages are left out of "
        "the context to fit.",
    )
    max_completion_tokens = models.PositiveIntegerField(
        "max reply tokens",
        default=4096,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CONTEXT_WINDOW - 1)],
        help_text=f"The longest reply requested, in tokens: at least 1. The context window must hold it, the "
        f"{CONTEXT_MARGIN} tokens the chat keeps spare and a prompt of at least {MIN_PROMPT_TOKENS} tokens.",
    )
    is_reasoning = models.BooleanField(
        "reasoning model",
        default=False,
        help_text="o1/o3-style models: no temperature is sent, max_completion_tokens is sent instead of "
        "max_tokens, and the system prompt is handled as chosen below.",
    )
    system_prompt_handling = models.CharField(
        max_length=20,
        choices=SystemPromptHandling,
        default=SystemPromptHandling.DEVELOPER,
        help_text="Reasoning models only: how the system prompt is sent. Fold it into the first user message "
        "for providers that reject the 'developer' role.",
    )
    supports_streaming = models.BooleanField(
        default=True,
        help_text="Show the reply as it is written. Turn off for models or servers that cannot stream; the "
        "reply then arrives whole.",
    )
    supports_tools = models.BooleanField(
        "supports tools",
        default=False,
        help_text="The model can call tools (OpenAI-style function calling): it is offered web search, weather "
        "and reading a page, and decides itself when to look something up. Leave off for models or servers "
        "that reject the tools parameter.",
    )
    is_default = models.BooleanField(
        "default",
        default=False,
        help_text="The model new conversations start with. Only one model is the default: choosing this one "
        "takes it from the other. The default must be active.",
    )
    is_active = models.BooleanField(
        "active",
        default=True,
        help_text="Inactive models are not offered in the chat.",
    )
    version = models.PositiveIntegerField(
        default=1,
        editable=False,
        help_text="Goes up by one with every save; a save from a page opened at an older version is refused.",
    )
    seeded_version = models.PositiveIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="The version the seed_models command last wrote; a higher version means an admin edited "
        "the model since, and the seed leaves it alone unless run with --update.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the model was added.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the model was last saved.")

    objects = AIModelQuerySet.as_manager()

    class Meta:
        verbose_name = "AI model"
        ordering = [Lower("name")]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="aimodels_aimodel_name_ci_unique",
                violation_error_message="An AI model with this name already exists (names ignore case).",
                violation_error_code="name_taken",
            ),
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="aimodels_aimodel_one_default",
                violation_error_message="Another model is already the default.",
            ),
            models.CheckConstraint(
                condition=Q(provider__in=["openai", "azure", "openai_compatible"]),
                name="aimodels_aimodel_provider_valid",
                violation_error_code="provider",
            ),
            models.CheckConstraint(
                condition=Q(temperature__gte=0, temperature__lte=2),
                name="aimodels_aimodel_temperature_range",
                violation_error_code="temperature",
            ),
            models.CheckConstraint(
                condition=Q(context_window__gte=1, context_window__lte=MAX_CONTEXT_WINDOW),
                name="aimodels_aimodel_context_window_range",
                violation_error_code="context_window",
            ),
            models.CheckConstraint(
                condition=Q(max_completion_tokens__gte=1, max_completion_tokens__lt=F("context_window")),
                name="aimodels_aimodel_max_tokens_fit",
                violation_error_code="max_completion_tokens",
            ),
            models.CheckConstraint(
                condition=Q(provider="openai") | ~Q(api_endpoint=""),
                name="aimodels_aimodel_endpoint_required",
                violation_error_code="api_endpoint",
            ),
            models.CheckConstraint(
                condition=~Q(provider="azure") | ~Q(api_version=""),
                name="aimodels_aimodel_azure_api_version",
                violation_error_code="api_version",
            ),
            models.CheckConstraint(
                condition=~Q(is_default=True, is_active=False),
                name="aimodels_aimodel_default_active",
                violation_error_code="is_default",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="aimodels_aimodel_version_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    # Validation ---------------------------------------------------------------------------
    def clean(self) -> None:
        errors: dict[str, str | list[ValidationError]] = {}
        self.api_endpoint = (self.api_endpoint or "").strip().rstrip("/")
        if self.provider in (self.Provider.AZURE, self.Provider.OPENAI_COMPATIBLE) and not self.api_endpoint:
            errors["api_endpoint"] = "Required for Azure and OpenAI-compatible servers."
        if self.provider == self.Provider.AZURE:
            if self.api_endpoint.lower().endswith("/openai"):
                errors["api_endpoint"] = (
                    "Give the resource endpoint without /openai, e.g. https://NAME.openai.azure.com."
                )
            if not self.api_version:
                errors["api_version"] = "Required for Azure models."
            if self.deployment_name and not AZURE_DEPLOYMENT_RE.match(self.deployment_name):
                errors["deployment_name"] = (
                    "An Azure deployment name uses letters, digits, '.', '_' and '-', starting with a letter or digit."
                )
        elif self.api_version:
            errors["api_version"] = "Only Azure models take an API version; leave it empty."
        if self.provider in (self.Provider.OPENAI, self.Provider.AZURE) and not self.api_key_env:
            errors["api_key_env"] = "Required for OpenAI and Azure models (only local servers may need no key)."
        window_valid = isinstance(self.context_window, int) and 1 <= self.context_window <= MAX_CONTEXT_WINDOW
        if window_valid and isinstance(self.max_completion_tokens, int):
            try:
                validate_token_budget(
                    context_window=self.context_window, max_completion_tokens=self.max_completion_tokens
                )
            except ValidationError as error:
                errors.update(error.error_dict)  # with their codes
        if self.is_default and not self.is_active:
            errors["is_default"] = "The default model must be active."
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude=None) -> None:
        """The database constraints, each failure reported on the field it concerns. The
        one-default rule is left to save(), which hands the default over instead of failing."""
        try:
            super().validate_constraints(exclude={*(exclude or ()), "is_default"})
        except ValidationError as error:
            errors = error.update_error_dict({})
            for err in errors.pop(NON_FIELD_ERRORS, []):
                field = {"name_taken": "name"}.get(err.code, err.code)
                known = field in {f.name for f in self._meta.concrete_fields}
                errors.setdefault(field if known else NON_FIELD_ERRORS, []).append(err)
            raise ValidationError(errors) from None

    # Saving -------------------------------------------------------------------------------
    def save(self, **kwargs) -> None:
        """Insert, or update as a compare-and-set on the version (UPDATE ... WHERE id = %s AND
        version = %s), raising EditConflict when someone else saved first. A model saved as the
        default takes the default from the other one in the same transaction."""
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        update_fields = kwargs.get("update_fields")
        with transaction.atomic(using=using):
            if self.is_default and (update_fields is None or "is_default" in update_fields):
                self._take_default(using)
            if self._state.adding:
                self.version = 1
                super().save(**kwargs)
            else:
                self._save_versioned(using, update_fields)

    def _save_versioned(self, using: str, update_fields) -> None:
        names = None if update_fields is None else {*update_fields, "updated_at"}
        values = {
            f.name: f.pre_save(self, add=False)
            for f in self._meta.concrete_fields
            if not f.primary_key and f.name != "version" and (names is None or f.name in names)
        }
        updated = (
            type(self)
            ._base_manager.using(using)
            .filter(pk=self.pk, version=self.version)
            .update(**values, version=F("version") + 1)
        )
        if not updated:
            raise EditConflict
        self.version += 1

    def _take_default(self, using: str) -> None:
        others = type(self)._base_manager.using(using).filter(is_default=True)
        if self.pk is not None:
            others = others.exclude(pk=self.pk)
        others.update(is_default=False, version=F("version") + 1, updated_at=timezone.now())

    def make_default(self) -> None:
        """Make this model the default, taking it from the current default in one transaction.
        Bumps the version of both, so pages opened before the change refuse to save over it."""
        using = router.db_for_write(type(self), instance=self)
        rows = type(self)._base_manager.using(using)
        with transaction.atomic(using=using):
            current = rows.select_for_update().get(pk=self.pk)
            if not current.is_active:
                raise ValidationError({"is_default": "Activate the model before making it the default."})
            if not current.is_default:
                self._take_default(using)
                rows.filter(pk=self.pk).update(is_default=True, version=F("version") + 1, updated_at=timezone.now())
        self.refresh_from_db(fields=["is_default", "version", "updated_at"])

    # Deleting -----------------------------------------------------------------------------
    def delete_blockers(self) -> list[str]:
        """Why this model cannot be deleted, as phrases for a message; empty when it can be.
        Counts the rows of every relation that protects it (on_delete=PROTECT or RESTRICT), so
        conversations and messages pointing at a model keep it alive."""
        reasons = []
        if self.is_default:
            reasons.append("it is the default model (make another model the default first)")
        for relation in self._meta.related_objects:
            if relation.on_delete not in (models.PROTECT, models.RESTRICT):
                continue
            count = relation.related_model._base_manager.filter(**{relation.field.name: self}).count()
            if count:
                meta = relation.related_model._meta
                noun = meta.verbose_name if count == 1 else meta.verbose_name_plural
                reasons.append(f"{count} {noun} use{'s' if count == 1 else ''} it")
        return reasons

    def check_deletable(self) -> None:
        if reasons := self.delete_blockers():
            raise models.ProtectedError(f"“{self}” cannot be deleted: {'; '.join(reasons)}.", [self])

    def delete(self, *args, **kwargs):
        self.check_deletable()
        return super().delete(*args, **kwargs)

    # The key ------------------------------------------------------------------------------
    @property
    def unusable_reason(self) -> str:
        """Why the chat cannot use this model right now, in words for its users; empty if it can."""
        if not self.is_active:
            return f"{self.name} is no longer available. Start a new conversation with another model."
        if self.api_key_env and not self.api_key_is_set:
            return (
                f"{self.name} cannot be used right now: its API key is not configured on the server. "
                "Ask an admin, or pick another model."
            )
        return ""

    @property
    def endpoint_url(self) -> str:
        """The URL requests go to: the configured endpoint, or OpenAI's public API."""
        return self.api_endpoint or OPENAI_PUBLIC_ENDPOINT

    @property
    def endpoint_host(self) -> str:
        """host[:port] of the endpoint, for log lines and staff (never for a user's eyes)."""
        return urlsplit(self.endpoint_url).netloc.rpartition("@")[2]

    @property
    def api_key_is_set(self) -> bool:
        """Whether the key variable is set in this process's environment (the key is not read)."""
        return bool(self.api_key_env) and bool(os.environ.get(self.api_key_env))
