"""Fixtures shared by every app's tests."""

import pytest
import pytest_asyncio

pytest_plugins = ["bench.pytest_fixtures"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _plain_http(settings):
    # The test client speaks plain HTTP; production's HTTPS redirect is tested on its own.
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _unhashed_static_files(settings):
    # The hashed manifest exists only after collectstatic; tests serve the source files.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rate-limit counters live in the cache: each test starts with none.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _tasks_run_at_once(settings):
    # Emails are tasks; in tests they run inside enqueue() so mail.outbox holds them at once.
    # Tests of what stays off the request path use the `queued_tasks` fixture instead.
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture(autouse=True)
def _no_generated_titles(settings):
    # A title is one more request to the fake upstream; only the tests of titles want it.
    settings.GENERATED_TITLES = False


@pytest.fixture
def queued_tasks(settings):
    """Tasks are recorded, not run: the DummyBackend's list of enqueued results."""
    from django.tasks import default_task_backend

    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    return default_task_backend.results


@pytest.fixture
def user(db):
    from accounts.tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def unverified_user(db):
    from accounts.tests.factories import UserFactory

    return UserFactory(unverified=True)


@pytest.fixture
def staff_user(db):
    from accounts.tests.factories import UserFactory

    return UserFactory(staff=True)


@pytest.fixture(scope="session", autouse=True)
def _browser_waits_are_generous():
    """A browser test's expect() waits up to 30 s for its state (Playwright's default is 5 s):
    CI shares two cores with everything else, and a state that comes late is not a failure."""
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Debian's Chromium (Playwright cannot download its own browser here), quiet on a closed network.
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        ],
    }


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings, tmp_path_factory):
    # An SQLite test database in a file, not in memory, so a uvicorn process started by a test
    # (asgi_server) can share it.
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db["TEST"] = {**db.get("TEST", {}), "NAME": str(tmp_path_factory.mktemp("db") / "test.sqlite3")}


@pytest_asyncio.fixture
async def close_thread_connections():
    """For async tests: ORM calls made through sync_to_async outside a request run in asgiref's
    shared executor thread, whose database connection nothing else closes (PostgreSQL then
    cannot drop the test database at the end)."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()
