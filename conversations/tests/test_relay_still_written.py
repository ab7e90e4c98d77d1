"""A page following a reply on Redis asks the database, when no event came for a while, whether
the reply is still written (relay._still_written)."""

import pytest
from django.db import OperationalError, connection
from django.db.models import QuerySet

from conversations import relay as relay_module
from conversations.models import Message
from conversations.tests.factories import MessageFactory


@pytest.mark.django_db(transaction=True)
def test_a_followers_look_at_the_row_gives_its_connection_back_and_says_yes_without_one(monkeypatch):
    """Its connection goes back at once, as a request's does (500 followers must not hold 500 of
    PostgreSQL's pool, where CONN_MAX_AGE is 0; on SQLite the thread keeps it for its next query),
    and a database with no connection free in time does not end the page."""
    writing = MessageFactory(role="assistant", status=Message.Status.STREAMING)
    ended = MessageFactory(role="assistant", status=Message.Status.COMPLETE)

    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    assert relay_module._row_says_written(writing.pk) is True
    assert connection.connection is None
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    assert relay_module._row_says_written(writing.pk) is True
    assert connection.connection is not None
    assert relay_module._row_says_written(ended.pk) is False

    def no_connection(self):
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(QuerySet, "first", no_connection)
    assert relay_module._row_says_written(ended.pk) is True
