import os

from django.core.asgi import get_asgi_application

from chatter.limits import EscapeRawQueryBytes, RequestBodyLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatter.settings")

# A body over REQUEST_BODY_MAX_BYTES is refused before Django reads it; a raw non-UTF-8 query
# string reaches Django escaped, for chatter.middleware to refuse (chatter/limits.py).
application = RequestBodyLimit(EscapeRawQueryBytes(get_asgi_application()))

from chatter.warm import warm  # noqa: E402  (needs the settings above)

warm()
