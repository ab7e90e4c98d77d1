import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from chatter.limits import EscapeRawQueryBytes, RequestBodyLimit
from chatter.threads import SharedThreads

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatter.settings")

# A body over REQUEST_BODY_MAX_BYTES is refused before Django reads it; a raw non-UTF-8 query
# string reaches Django escaped, for chatter.middleware to refuse (chatter/limits.py); requests
# share a few threads for their synchronous work (chatter/threads.py).
django_application = get_asgi_application()
application = RequestBodyLimit(
    EscapeRawQueryBytes(SharedThreads(django_application, threads=settings.SYNC_VIEWS_AT_ONCE))
)

from chatter.warm import warm  # noqa: E402  (needs the settings above)

warm()
