"""Settings the README promises, as a process started with that environment uses them.

Settings are read once, when chatter.settings is imported, so each test starts a fresh Python
with the environment under test and has it do the real thing (open the database, use the
cache), printing what it saw."""

import json
import subprocess
import sys
import uuid

import pytest

from chatter.tests.test_security import BASE_DIR, production_env


# Static files by their plain names: the hashed manifest exists only after collectstatic.
PLAIN_STATIC = (
    "from django.conf import settings as _s; _s.STORAGES = {**_s.STORAGES, "
    "'staticfiles': {'BACKEND': 'django.contrib.staticfiles.storage.StaticFilesStorage'}}"
)


def run(code: str, **env: str) -> dict:
    """Runs `code` after django.setup() in a fresh process with production's environment and
    `env`; `code` sets `out`, which comes back as JSON."""
    environment = production_env(DJANGO_SETTINGS_MODULE="chatter.settings", **env)
    for name in ("REDIS_URL", "CACHE_URL", "TEST_REDIS_URL"):
        if name not in env:
            environment.pop(name, None)
    script = f"import json, django\ndjango.setup()\n{PLAIN_STATIC}\nout = None\n{code}\nprint(json.dumps(out))"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_sqlite_database_is_in_wal_mode(tmp_path):
    database = tmp_path / "chatter.sqlite3"

    seen = run(
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('PRAGMA journal_mode')\n"
        "    out = cursor.fetchone()[0]",
        DATABASE_URL=f"sqlite:///{database}",
    )

    assert seen == "wal"


def test_the_default_database_is_db_sqlite3_in_the_project():
    env = production_env(DJANGO_SETTINGS_MODULE="chatter.settings")
    env.pop("DATABASE_URL")
    code = "import django; django.setup(); from django.db import connection as c; print(c.vendor, c.settings_dict['NAME'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)

    assert result.stdout.split() == ["sqlite", str(BASE_DIR / "db.sqlite3")], result.stderr


def test_cache_url_names_the_cache_the_workers_share(tmp_path):
    # Two processes (two workers) with the same CACHE_URL see each other's entries, even with
    # REDIS_URL set: CACHE_URL wins.
    folder = tmp_path / "cache"
    env = {"CACHE_URL": f"filecache://{folder}", "REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing listens on port 1
    key = f"claim-{uuid.uuid4().hex}"

    run(f"from django.core.cache import cache\ncache.set({key!r}, 'shared', 60)\nout = True", **env)
    seen = run(f"from django.core.cache import cache\nout = cache.get({key!r})", **env)

    assert seen == "shared"
    assert any(folder.iterdir())  # it lives where CACHE_URL said


def test_redis_url_alone_puts_the_cache_in_that_redis():
    from conversations.tests.conftest import redis_url_or_skip

    url = redis_url_or_skip()
    import redis

    key = f"claim-{uuid.uuid4().hex}"
    run(f"from django.core.cache import cache\ncache.set({key!r}, 'in redis', 60)\nout = True", REDIS_URL=url)

    with redis.Redis.from_url(url) as client:
        assert client.exists(f":1:{key}")  # Django's key for version 1, in REDIS_URL's database
    seen = run(f"from django.core.cache import cache\nout = cache.get({key!r})", REDIS_URL=url)
    assert seen == "in redis"


def test_allowed_hosts_defaults_to_the_local_names():
    env = production_env(DJANGO_SETTINGS_MODULE="chatter.settings")
    env.pop("ALLOWED_HOSTS")
    code = (
        f"import django; django.setup()\n{PLAIN_STATIC}\n"
        "from django.test import Client\n"
        "for host in ('localhost', '127.0.0.1', '[::1]', 'chat.example.com'):\n"
        "    print(host, Client(HTTP_HOST=host).get('/accounts/login/', secure=True).status_code)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)

    answers = dict(line.split() for line in result.stdout.splitlines())
    assert answers == {"localhost": "200", "127.0.0.1": "200", "[::1]": "200", "chat.example.com": "400"}, result.stderr


def test_values_in_the_environment_win_over_the_env_file_which_chatter_env_file_names(tmp_path):
    env_file = tmp_path / "other.env"
    env_file.write_text("MESSAGE_MAX_LENGTH=111\nSEND_RATE_PER_USER=7/m\n")

    seen = run(
        "from django.conf import settings\nout = [settings.MESSAGE_MAX_LENGTH, settings.SEND_RATE_PER_USER]",
        CHATTER_ENV_FILE=str(env_file),
        SEND_RATE_PER_USER="9/m",
    )

    assert seen == [111, "9/m"]  # from the file named; the environment's value wins


DEFAULTS = {
    "REDIS_RELAY_CONNECTIONS": 2000,
    "EMAIL_VERIFICATION_REQUIRED": True,
    "LOG_LEVEL": "INFO",
    "LOG_FILE": "",
    "LLM_CONNECT_TIMEOUT": 5.0,
    "LLM_READ_TIMEOUT": 120.0,
    "LLM_MAX_RETRIES": 1,
    "WEB_LOOKUPS": True,
    "GENERATED_TITLES": True,
    "LOOKUP_ALLOWED_NETWORKS": [],
    "CONN_MAX_AGE": 600,  # on SQLite (DATABASES["default"])
    "AXES_FAILURE_LIMIT": 5,
    "AXES_IP_USERNAME_LIMIT": 20,
    "RATE_LIMIT_EMAILS_PER_ADDRESS": "5/h",
    "RATE_LIMIT_ACTIONS_PER_IP": "20/h",
    "SEND_RATE_PER_USER": "20/m",
    "REPLIES_AT_ONCE_PER_USER": 2,
    "SHARE_VIEWS_PER_IP": "60/m",
    "MESSAGE_MAX_LENGTH": 32_000,
    "REQUEST_BODY_MAX_BYTES": 400_384,
    "TASKS": {"default": {"BACKEND": "django_tasks_local.ThreadPoolBackend"}},
    "SEARCH_URL": "https://html.duckduckgo.com/html/?q={query}",
    "WEATHER_URL": "https://wttr.in/{place}?format=j1",
}


@pytest.fixture(scope="module")
def defaults(tmp_path_factory) -> dict:
    """The settings of a server started without these variables (one process for them all)."""
    code = (
        "from django.conf import settings\n"
        f"out = {{name: getattr(settings, name, None) for name in {list(DEFAULTS)!r}}}\n"
        "out['CONN_MAX_AGE'] = settings.DATABASES['default']['CONN_MAX_AGE']"
    )
    return run(code, DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('db') / 'unused.sqlite3'}")


@pytest.mark.parametrize("name", DEFAULTS)
def test_the_readmes_defaults(defaults, name):
    # The README's configuration table: what a server gets when the variable is not set.
    assert defaults[name] == DEFAULTS[name]


def test_a_server_without_a_secret_key_refuses_to_start():
    env = production_env(DJANGO_SETTINGS_MODULE="chatter.settings")
    env.pop("SECRET_KEY")
    code = "import django; django.setup(); print('started')"
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode != 0 and "started" not in result.stdout
    assert "Set the SECRET_KEY environment variable" in result.stderr
