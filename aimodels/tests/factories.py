from decimal import Decimal

import factory

from aimodels.models import AIModel


class AIModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIModel

    name = factory.Sequence(lambda n: f"model-{n}")
    provider = AIModel.Provider.OPENAI
    api_endpoint = ""
    deployment_name = "gpt-4o-mini"
    api_version = ""
    api_key_env = "OPENAI_API_KEY"
    description = "A model for tests."
    temperature = Decimal("0.70")
    context_window = 128_000
    max_completion_tokens = 4096

    class Params:
        azure = factory.Trait(
            provider=AIModel.Provider.AZURE,
            api_endpoint="https://example-resource.openai.azure.com",
            deployment_name="gpt-4o-mini-prod",
            api_version="2024-10-21",
            api_key_env="AZURE_OPENAI_API_KEY",
        )
        compatible = factory.Trait(
            provider=AIModel.Provider.OPENAI_COMPATIBLE,
            api_endpoint="http://localhost:11434/v1",
            deployment_name="llama3.2:3b",
            api_key_env="",
        )
        reasoning = factory.Trait(
            is_reasoning=True, deployment_name="o1", context_window=200_000, max_completion_tokens=100_000
        )
