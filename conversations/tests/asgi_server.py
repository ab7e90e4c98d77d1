"""Run chatter under uvicorn in a subprocess on the current test database."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import requests
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    password = quote(db["PASSWORD"] or "", safe="")
    return f"postgres://{user}:{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AsgiServer:
    def __init__(self, *, env: dict[str, str], options: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.options = options or ["--lifespan", "off", "--log-level", "warning", "--no-access-log"]
        self.process: subprocess.Popen | None = None

    @classmethod
    def for_test_database(
        cls, *, secret_key: str, options: list[str] | None = None, env: dict[str, str] | None = None
    ) -> "AsgiServer":
        """Served on the test database; `options`: uvicorn's, instead of the quiet defaults;
        `env`: more settings (e.g. REDIS_URL)."""
        more = env or {}
        env = {
            **os.environ,
            "CHATTER_ENV_FILE": os.devnull,
            "SECRET_KEY": secret_key,
            "DATABASE_URL": database_url(),
            "DEBUG": "true",  # static files by their plain names (no collectstatic manifest)
            "EMAIL_VERIFICATION_REQUIRED": "true",
            "LLM_MAX_RETRIES": "0",
            "GENERATED_TITLES": "false",  # no extra requests to the fake upstream
            **more,
        }
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        return cls(env=env, options=options)

    def __enter__(self) -> "AsgiServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "chatter.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), *self.options],
            cwd=BASE_DIR, env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}")
            try:
                requests.get(f"{self.url}/accounts/login/", timeout=5)
                return self
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)  # polling for the state "listening", bounded by the deadline
        self.__exit__(None, None, None)  # never leave the process behind
        raise RuntimeError("uvicorn did not start within 60 seconds")

    def __exit__(self, *exc_info) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
