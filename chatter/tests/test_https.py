"""HTTPS as a production server answers it (README, "Production" and "Behind a reverse proxy").

These settings are read when the settings module is imported, from the environment, so each
test runs a fresh Python with production's environment (DEBUG off, no .env) and asks it for
pages through Django's test client: the answers are the real middleware's, not a setting's
value read back."""

import json
import subprocess
import sys

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.tests.factories import PASSWORD
from chatter.tests.test_security import BASE_DIR, production_env

ONE_YEAR = 60 * 60 * 24 * 365
LOGIN = "/accounts/login/"

# Runs in the fresh process. Prints what the client saw, as JSON.
PROBE = r"""
import json, sys
import django
django.setup()
from django.conf import settings
from django.test import Client

# Static files by their plain names: the hashed manifest exists only after collectstatic.
settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}

def seen(response):
    return {
        "status": response.status_code,
        "location": response.get("Location"),
        "hsts": response.get("Strict-Transport-Security"),
        "cookies": {
            name: {"secure": bool(morsel["secure"]), "httponly": bool(morsel["httponly"])}
            for name, morsel in response.cookies.items()
        },
    }

host = {"HTTP_HOST": "chat.example.com"}
out = {
    "plain": seen(Client(**host).get("/accounts/login/")),
    "tls": seen(Client(**host).get("/accounts/login/", secure=True)),
    "forwarded_https": seen(Client(**host).get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")),
}
if len(sys.argv) == 3:  # a real sign-in, over TLS: the session cookie
    username, password = sys.argv[1:]
    out["login"] = seen(Client(**host).post("/accounts/login/", {"username": username, "password": password}, secure=True))
print(json.dumps(out))
"""


def probe(*args: str, **env: str) -> dict:
    environment = production_env(DJANGO_SETTINGS_MODULE="chatter.settings", **env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> dict:
    """What a production server (DEBUG off, no proxy named) answers; no database is touched."""
    return probe(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('db') / 'unused.sqlite3'}")


@pytest.fixture(scope="module")
def behind_tls_proxy(tmp_path_factory) -> dict:
    return probe(
        DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('db') / 'unused.sqlite3'}", BEHIND_TLS_PROXY="true"
    )


def test_with_debug_off_plain_http_is_redirected_to_https(production):
    assert production["plain"]["status"] == 301
    assert production["plain"]["location"] == f"https://chat.example.com{LOGIN}"


def test_with_debug_off_https_answers_carry_hsts_for_a_year(production):
    assert production["tls"]["status"] == 200
    assert production["tls"]["hsts"].split(";")[0] == f"max-age={ONE_YEAR}"  # 31536000


def test_with_debug_off_the_csrf_cookie_is_secure_and_http_only(production):
    assert production["tls"]["cookies"]["csrftoken"] == {"secure": True, "httponly": True}


@pytest.mark.django_db(transaction=True)
def test_with_debug_off_the_session_cookie_is_secure_and_http_only(user):
    from conversations.tests.asgi_server import database_url

    # The other process knows the production hashers only (tests hash with MD5 for speed).
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    user.save()

    seen = probe(user.username, PASSWORD, DATABASE_URL=database_url())

    assert seen["login"]["status"] == 302  # signed in
    assert seen["login"]["cookies"]["sessionid"] == {"secure": True, "httponly": True}


def test_without_behind_tls_proxy_a_forwarded_proto_header_is_not_trusted(production):
    # Anyone can send the header: without a proxy named, the request is still plain HTTP.
    assert production["forwarded_https"]["status"] == 301
    assert production["forwarded_https"]["hsts"] is None


def test_behind_tls_proxy_the_proxys_forwarded_proto_makes_a_request_https(behind_tls_proxy):
    assert behind_tls_proxy["forwarded_https"]["status"] == 200  # not redirected again (no loop)
    assert behind_tls_proxy["forwarded_https"]["hsts"].split(";")[0] == f"max-age={ONE_YEAR}"
    assert behind_tls_proxy["plain"]["status"] == 301  # without the header, still plain HTTP
