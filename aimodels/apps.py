from django.apps import AppConfig


class AimodelsConfig(AppConfig):
    name = "aimodels"
    verbose_name = "AI models"
