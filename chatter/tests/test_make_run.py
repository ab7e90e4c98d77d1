"""`make run` serves chatter on SQLite with everything set up (the README's first command), in a
copy of the project with no .env and no database yet, as a new user's clone is."""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

BASE_DIR = Path(__file__).resolve().parents[2]
WAIT = 240  # seconds for migrations, static files and the seed on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_copy(target: Path) -> Path:
    """The project's files as git knows them (with their times, so make finds the virtualenv up to
    date), and the virtualenv itself linked in."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=BASE_DIR, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        source = BASE_DIR / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(BASE_DIR / ".venv")
    return target


@pytest.mark.timeout(WAIT + 60)
def test_make_run_serves_chatter_on_sqlite_with_a_new_secret_key_and_the_models_seeded(tmp_path):
    project = project_copy(tmp_path / "chatter")
    assert not (project / ".env").exists() and not (project / "db.sqlite3").exists()
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in {
        "DATABASE_URL", "REDIS_URL", "CACHE_URL", "CHATTER_ENV_FILE", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG",
    }}
    server = subprocess.Popen(
        ["make", "run", f"PORT={port}"], cwd=project, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                page = requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "make run never served the login page"
                time.sleep(0.2)  # polling for the state "serving", bounded by the deadline
        assert page.status_code == 200 and "Log in" in page.text

        # Its static files are served (collected), under the names the page links.
        stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page.text).group(1)
        assert requests.get(f"http://127.0.0.1:{port}{stylesheet}", timeout=10).status_code == 200

        # A .env of its own, with a new secret key, not the example's.
        secret = re.search(r"^SECRET_KEY=(.+)$", (project / ".env").read_text(), re.M).group(1)
        assert secret != "change-me" and len(secret) >= 50

        # The database is migrated and the models seeded, the default among them.
        seeded = json.loads((project / "aimodels" / "seed_models.json").read_text())
        with sqlite3.connect(project / "db.sqlite3") as db:
            names = {name for (name,) in db.execute("SELECT name FROM aimodels_aimodel")}
            defaults = db.execute("SELECT count(*) FROM aimodels_aimodel WHERE is_default").fetchone()[0]
        assert {model["name"] for model in seeded["models"]} <= names and defaults == 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
