"""Database connections outside Django's request cycle."""

from contextlib import suppress

from django.db import DatabaseError, connection


def connection_release() -> None:
    """Closes this thread's database connection (on PostgreSQL: gives it back to the pool); the
    next query takes one again. One inside a transaction (a test's, around the request) is kept,
    and one that another thread opened (a test runner's, shared into this one) is left to its
    owner."""
    if connection.in_atomic_block:
        return
    with suppress(DatabaseError):
        connection.close()
