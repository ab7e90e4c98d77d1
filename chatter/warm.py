"""What a server process loads once, loaded when it starts (chatter/asgi.py, chatter/wsgi.py),
so that the first message after a start does not wait for it: about a second each on a small
machine. The token counter's default encoding, and the openai SDK's chat resources (which the
SDK imports only when they are first used)."""

import importlib

from conversations import tokens

SDK_MODULES = ("openai.resources.chat.completions.completions",)


def warm() -> None:
    tokens.warm()
    for module in SDK_MODULES:
        importlib.import_module(module)
