import threading

from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        # Load the tokenizers in the background at start-up, so the first reply never waits
        # for them inside the event loop.
        from conversations import tokens

        def warm_up() -> None:
            for name in ("gpt-4o", "gpt-4"):  # o200k_base, cl100k_base
                tokens.encoding_for(name)

        threading.Thread(target=warm_up, name="tiktoken-warm-up", daemon=True).start()
