"""Production concerns of the project itself: static files served by the app, and logging."""

import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test import Client

from chatter.tests.test_security import BASE_DIR, production_env


@pytest.mark.django_db
def test_static_files_are_served_by_the_app_without_debug(settings, tmp_path):
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()  # a new handler, so the middleware reads the collected files

    page = client.get("/accounts/login/")
    css_url = next(line for line in page.content.decode().splitlines() if "chatter." in line and ".css" in line)
    css_url = css_url.split('href="')[1].split('"')[0]
    response = client.get(css_url)

    assert css_url.startswith("/static/css/chatter.") and css_url != "/static/css/chatter.css"
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert b".bubble" in b"".join(response)


def test_log_file_rotates_when_log_file_is_set(tmp_path):
    log_file = tmp_path / "chatter.log"
    code = (
        "import django, logging, logging.handlers; django.setup();"
        "logging.getLogger('chatter.test').warning('written to the file');"
        "h = [h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.RotatingFileHandler)];"
        "print(len(h), h[0].maxBytes, h[0].backupCount)"
    )
    env = production_env(LOG_FILE=str(log_file), DJANGO_SETTINGS_MODULE="chatter.settings")

    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True)

    assert result.stdout.split() == ["1", str(10 * 1024 * 1024), "5"], result.stderr
    assert "WARNING chatter.test: written to the file" in log_file.read_text()
    assert "written to the file" in result.stderr  # and on the console


def test_no_log_file_unless_set():
    code = (
        "import django, logging, logging.handlers; django.setup();"
        "print(sum(isinstance(h, logging.handlers.RotatingFileHandler) for h in logging.getLogger().handlers))"
    )
    env = production_env(DJANGO_SETTINGS_MODULE="chatter.settings")

    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True)

    assert result.stdout.strip() == "0", result.stderr
