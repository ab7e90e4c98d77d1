"""manage.py seed_models: create the default set of AI models, idempotently.

The set: the models in aimodels/seed_models.json (or --file PATH); an Azure model when
AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT are set; the models a local Ollama lists
when OLLAMA_BASE_URL is set. A model is matched by name (ignoring case).

A model the seed wrote is updated when its entry changes. A model an admin has edited since
(its version is past the seeded_version the seed recorded), or one the seed did not create,
is left alone unless --update is given. The default flag is applied only when a model is
created and no other model is the default.
"""

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from aimodels.models import AIModel, name_from_model_id
from aimodels.services import ProviderError, endpoint_models_list

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "seed_models.json"
SEED_FIELDS = {f.name for f in AIModel._meta.concrete_fields if f.editable and not f.primary_key} - {"is_default"}


class Command(BaseCommand):
    help = "Create or update the default AI models (idempotent). Edited models are kept unless --update."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="JSON file with the models to seed.")
        parser.add_argument("--update", action="store_true", help="Overwrite models an admin has edited.")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; write nothing.")

    def handle(self, *args: Any, file: Path, update: bool, dry_run: bool, **options: Any) -> None:
        entries = self._file_entries(file) + self._azure_entries() + self._ollama_entries()
        counts = {"created": 0, "updated": 0, "unchanged": 0, "kept": 0}
        with transaction.atomic():
            seen: set[str] = set()
            for entry in entries:
                name = entry["name"].lower()
                if name in seen:
                    self.stderr.write(f"Skipped a second entry named “{entry['name']}”.")
                    continue
                seen.add(name)
                outcome = self._seed(entry, update=update)
                counts[outcome] += 1
                if outcome != "unchanged":
                    note = " (edited in the admin; --update overwrites it)" if outcome == "kept" else ""
                    self.stdout.write(f"  {outcome} {entry['name']}{note}")
            if dry_run:
                transaction.set_rollback(True)
        summary = ", ".join(f"{n} {what}" for what, n in counts.items())
        if dry_run:
            self.stdout.write(f"Dry run, nothing written. Would have: {summary}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"AI models: {summary}."))

    def _seed(self, entry: dict[str, Any], *, update: bool) -> str:
        fields = {k: v for k, v in entry.items() if k != "is_default"}
        existing = AIModel.objects.filter(name__iexact=entry["name"]).first()
        candidate = AIModel.objects.get(pk=existing.pk) if existing else AIModel()
        for field, value in fields.items():
            setattr(candidate, field, value)
        try:
            candidate.full_clean()
        except ValidationError as error:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
            raise CommandError(f"Seed entry “{entry['name']}” is invalid: {problems}") from None

        if existing is None:
            has_default = AIModel.objects.filter(is_default=True).exists()
            candidate.is_default = bool(entry.get("is_default")) and not has_default
            candidate.seeded_version = 1
            candidate.save()
            return "created"
        if all(getattr(candidate, field) == getattr(existing, field) for field in fields):
            return "unchanged"
        if existing.seeded_version != existing.version and not update:
            return "kept"
        candidate.seeded_version = existing.version + 1
        candidate.save()
        return "updated"

    def _file_entries(self, path: Path) -> list[dict[str, Any]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}.") from None
        except ValueError as error:
            raise CommandError(f"{path} is not valid JSON: {error}.") from None
        entries = data.get("models") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise CommandError(f'{path} must hold {{"models": [{{...}}, ...]}}.')
        for entry in entries:
            if not isinstance(entry.get("name"), str):
                raise CommandError(f"Every entry in {path} needs a name.")
            if unknown := set(entry) - SEED_FIELDS - {"is_default"}:
                raise CommandError(f"Seed entry “{entry['name']}” has unknown fields: {', '.join(sorted(unknown))}.")
        return entries

    def _azure_entries(self) -> list[dict[str, Any]]:
        if not settings.AZURE_OPENAI_ENDPOINT:
            return []
        deployment = settings.AZURE_OPENAI_DEPLOYMENT
        if not deployment:
            self.stderr.write("AZURE_OPENAI_ENDPOINT is set but AZURE_OPENAI_DEPLOYMENT is not: no Azure model seeded.")
            return []
        return [
            {
                "name": name_from_model_id(deployment, prefix="azure-"),
                "provider": AIModel.Provider.AZURE,
                "api_endpoint": settings.AZURE_OPENAI_ENDPOINT,
                "deployment_name": deployment,
                "api_version": settings.AZURE_OPENAI_API_VERSION,
                "api_key_env": settings.AZURE_OPENAI_API_KEY_ENV,
                "description": f"Azure OpenAI deployment {deployment}.",
                "context_window": 128_000,
                "max_completion_tokens": 4096,
            }
        ]

    def _ollama_entries(self) -> list[dict[str, Any]]:
        if not settings.OLLAMA_BASE_URL:
            return []
        base = settings.OLLAMA_BASE_URL.rstrip("/")
        endpoint = base if base.endswith("/v1") else f"{base}/v1"
        probe = AIModel(provider=AIModel.Provider.OPENAI_COMPATIBLE, api_endpoint=endpoint, name="ollama")
        try:
            ids = endpoint_models_list(model=probe)
        except ProviderError as failure:
            self.stderr.write(f"Could not list the models of the Ollama at {base}: {failure.message}")
            return []
        return [
            {
                "name": name_from_model_id(model_id, prefix="ollama-"),
                "provider": AIModel.Provider.OPENAI_COMPATIBLE,
                "api_endpoint": endpoint,
                "deployment_name": model_id,
                "api_key_env": "",
                "description": f"{model_id}, served by the local Ollama.",
                "context_window": 4096,
                "max_completion_tokens": 1024,
            }
            for model_id in ids
        ]
