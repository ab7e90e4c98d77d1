from django.apps import AppConfig


class ChatterConfig(AppConfig):
    """The project itself, as an app: for its system checks."""

    name = "chatter"

    def ready(self) -> None:
        from chatter import checks  # noqa: F401  (registers them)
