"""chatter's settings without the PostgreSQL connection pool: every thread that touches the
database opens a connection of its own, as chatter did before the pool. Only bench.db_pool's
baseline run uses it."""

from chatter.settings import *  # noqa: F403

DATABASES["default"]["OPTIONS"].pop("pool", None)  # noqa: F405
