"""`make run` serves chatter trusting no forwarded headers: the address a lockout or a rate limit
counts is the connection's own, whatever X-Forwarded-For a client (or a local process) sends."""

import shlex
import subprocess
from pathlib import Path

import pytest
import requests
from axes.models import AccessAttempt

from conversations.tests.asgi_server import AsgiServer

BASE_DIR = Path(__file__).resolve().parents[2]


def make_run_options(**variables: str) -> list[str]:
    """The uvicorn options of the command `make run` would run (make -n prints it, runs nothing)."""
    printed = subprocess.run(
        ["make", "-n", "run", *(f"{k}={v}" for k, v in variables.items())],
        cwd=BASE_DIR, capture_output=True, text=True, check=True,
    ).stdout
    [command] = [line for line in printed.splitlines() if "uvicorn chatter.asgi:application" in line]
    words = shlex.split(command)
    options = words[words.index("chatter.asgi:application") + 1 :]
    for flag in ("--host", "--port", "--workers"):  # the test server chooses its own
        at = options.index(flag)
        del options[at : at + 2]
    return options


def test_make_run_trusts_no_forwarded_headers():
    assert "--no-proxy-headers" in make_run_options()


def test_make_run_trusts_the_named_proxy_only():
    options = make_run_options(FORWARDED_ALLOW_IPS="10.0.0.5")

    assert "--proxy-headers" in options
    assert "--forwarded-allow-ips=10.0.0.5" in options


@pytest.mark.django_db(transaction=True)
def test_a_login_failure_served_like_make_run_counts_the_connections_address(settings):
    with AsgiServer.for_test_database(secret_key=settings.SECRET_KEY, options=make_run_options()) as server:
        session = requests.Session()
        session.get(f"{server.url}/accounts/login/", timeout=30)
        response = session.post(
            f"{server.url}/accounts/login/",
            data={"username": "someone", "password": "wrong", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"X-Forwarded-For": "203.0.113.9", "Referer": f"{server.url}/accounts/login/"},
            timeout=30,
        )

    assert response.status_code == 200
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["127.0.0.1"]
