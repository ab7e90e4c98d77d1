import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatter.settings")

application = get_wsgi_application()

from chatter.warm import warm  # noqa: E402  (needs the settings above)

warm()
