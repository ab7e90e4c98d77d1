import os
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from django.conf import settings
from django.urls import reverse

BASE_DIR = Path(settings.BASE_DIR)


def csp_directives(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


@pytest.mark.django_db
@pytest.mark.parametrize("name, signed_in", [("login", False), ("accounts:register", False), ("conversations:index", True)])
def test_pages_carry_a_strict_csp_with_a_nonce(client, user, name, signed_in):
    if signed_in:
        client.force_login(user)

    response = client.get(reverse(name))

    assert response.status_code == 200
    csp = csp_directives(response)
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert csp["script-src"].startswith("'self' 'nonce-")
    assert csp["object-src"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    nonce = csp["script-src"].split("'nonce-")[1].rstrip("'")
    soup = BeautifulSoup(response.content, "html.parser")
    scripts = soup.find_all("script")
    assert scripts, "the page loads htmx"
    for script in scripts:
        assert script.get("nonce") == nonce
        assert script.get("src"), "no inline script bodies"
        assert not script.string


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name, signed_in",
    [("login", False), ("accounts:register", False), ("conversations:index", True), ("accounts:profile", True)],
)
def test_no_inline_handlers_or_styles(client, user, name, signed_in):
    if signed_in:
        client.force_login(user)

    response = client.get(reverse(name))

    assert response.status_code == 200
    soup = BeautifulSoup(response.content, "html.parser")
    for tag in soup.find_all(True):
        assert not [a for a in tag.attrs if a.startswith("on")], tag
        assert "style" not in tag.attrs, tag
    assert not soup.find_all("style")


@pytest.mark.django_db
def test_security_headers(client):
    response = client.get(reverse("login"))

    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
def test_csrf_token_reaches_htmx_through_body_headers(client, user):
    client.force_login(user)

    body = BeautifulSoup(client.get(reverse("conversations:index")).content, "html.parser").body

    assert '"X-CSRFToken"' in body["hx-headers"]


def production_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(
        DEBUG="false",
        SECRET_KEY="p" * 20 + "-Zq8#kL2$mN5&xR7!vB4^wC9*" + "q" * 30,
        ALLOWED_HOSTS="chat.example.com",
        DATABASE_URL=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        CHATTER_ENV_FILE=os.devnull,
        EMAIL_URL="smtp+tls://mailer:secret@smtp.example.com:587",
    )
    env.update(extra)
    return env


def manage(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_catches_debug_in_production():
    # Proves the check above can fail: the same command with DEBUG on is refused.
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(DEBUG="true"))

    assert result.returncode != 0
    assert "security.W018" in result.stderr + result.stdout


def test_production_cookies_are_secure_and_http_only():
    code = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, s.DEBUG)"
    )
    result = manage("shell", "--no-imports", "-c", code, env=production_env())

    assert result.stdout.split() == ["True", "True", "True", "True", "True", "False"], result.stderr


def test_debug_is_off_unless_set():
    env = production_env()
    env.pop("DEBUG")
    result = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='chatter.settings';"
         "from django.conf import settings; print(settings.DEBUG)"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )

    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_headers_and_csrf_hold_under_asgi_too(user):
    from django.test import AsyncClient

    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)

    page = await client.get(reverse("accounts:profile"))
    refused = await client.post(reverse("logout"))

    assert page["X-Frame-Options"] == "DENY"
    assert "'nonce-" in page["Content-Security-Policy"]
    assert page["Referrer-Policy"] == "same-origin"
    assert refused.status_code == 403
    assert b'class="brand"' in refused.content
