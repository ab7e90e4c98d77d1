"""Database connections outside Django's request cycle."""

from contextlib import suppress

from django.db import DatabaseError, connection


def connection_release() -> None:
    """Gives this thread's database connection up, as Django does when a request ends: on
    PostgreSQL back to the pool (the next query takes one again); on SQLite it is kept for the
    thread's next query unless older than CONN_MAX_AGE (or broken). One inside a transaction (a
    test's, around the request) is kept, and one that another thread opened (a test runner's,
    shared into this one) is left to its owner."""
    if connection.in_atomic_block:
        return
    with suppress(DatabaseError):
        connection.close_if_unusable_or_obsolete()
