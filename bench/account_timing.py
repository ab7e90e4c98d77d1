"""Benchmark: do account requests take the same time whether or not an address has an account?

    .venv/bin/python -m bench.account_timing [--requests 200] [--signups 20]

It builds a throwaway SQLite database with one user, serves chatter under uvicorn (one worker,
DEBUG off, rate limits off so nothing is refused, emails to the console and dropped), and times
POSTs of the password reset form for that user's address and for an unknown one, interleaved,
then sign-ups with a free and with a taken address: each POST until its answer (a redirect, not
followed). It prints the medians and their difference; nothing here is a test. Emails are queued
once the answer has gone, so neither kind of request sends one itself.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from conversations.tests.asgi_server import free_port  # noqa: E402

KNOWN = "known@example.com"
PASSWORD = "Analytical-Engine-1843"


def timed_post(session: requests.Session, url: str, data: dict) -> float:
    page = session.get(url, timeout=30).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    started = time.perf_counter()
    response = session.post(
        url, data={**data, "csrfmiddlewaretoken": token}, headers={"Referer": url}, timeout=30, allow_redirects=False
    )
    elapsed = time.perf_counter() - started  # the POST's own answer: its redirect is not followed
    if response.status_code != 302:
        raise RuntimeError(f"{url} answered {response.status_code}")
    return elapsed


def report(label: str, a_name: str, a: list[float], b_name: str, b: list[float]) -> None:
    ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
    print(f"{label}: {a_name} {ma:.1f} ms, {b_name} {mb:.1f} ms (median of {len(a)} each); difference {ma - mb:+.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--signups", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "CHATTER_ENV_FILE": os.devnull,
            "SECRET_KEY": "bench-only-" + "x" * 40,
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "RATELIMIT_ENABLE": "false",
            "LOG_LEVEL": "WARNING",
        }
        for command in (["migrate"], ["collectstatic", "--no-input"]):  # DEBUG off serves the manifest's files
            subprocess.run([sys.executable, "manage.py", *command, "-v", "0"], cwd=BASE_DIR, env=env, check=True)
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c",
             f"from accounts.models import User; User.objects.create_user('known', '{KNOWN}', '{PASSWORD}')"],
            cwd=BASE_DIR, env=env, check=True,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "chatter.asgi:application", "--port", str(port),
             "--no-proxy-headers", "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
            cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    requests.get(f"{base}/accounts/login/", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            session = requests.Session()
            reset = f"{base}/accounts/password_reset/"
            for _ in range(20):  # warm up both paths
                timed_post(session, reset, {"email": KNOWN})
                timed_post(session, reset, {"email": "nobody@example.com"})
            known, unknown = [], []
            for n in range(args.requests):
                known.append(timed_post(session, reset, {"email": KNOWN}))
                unknown.append(timed_post(session, reset, {"email": f"nobody{n}@example.com"}))
            report("password reset", "known address", known, "unknown address", unknown)

            register = f"{base}/accounts/register/"
            free, taken = [], []
            for n in range(args.signups):
                data = {"password1": PASSWORD, "password2": PASSWORD}
                free.append(timed_post(requests.Session(), register, {**data, "username": f"f{n}", "email": f"f{n}@example.com"}))
                taken.append(timed_post(requests.Session(), register, {**data, "username": f"t{n}", "email": KNOWN}))
            report("sign-up", "free address", free, "taken address", taken)
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
