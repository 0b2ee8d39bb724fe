"""The PostgreSQL health check that asks the socket, not the server (myibot/postgresql)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from tests.conftest import postgres_only, second_connection

pytestmark = [
    postgres_only("it tests the PostgreSQL backend's own health check (myibot/postgresql)"),
    pytest.mark.django_db(transaction=True),
]


def _last_query_seen_by_the_server(pid: int) -> str:
    """What PostgreSQL says this backend ran last, asked over another connection."""
    with second_connection() as other:
        return other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]


def test_a_healthy_connection_is_usable_without_a_query():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last real query'")
    pid = connection.connection.info.backend_pid
    assert connection.is_usable()
    assert _last_query_seen_by_the_server(pid) == "SELECT 'the last real query'"


def test_a_connection_the_server_ended_is_not_usable_and_the_next_request_reconnects():
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with second_connection() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The server's goodbye reaches the socket a moment after the backend ends.
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not connection.is_usable()

    # What Django does at the start of a request with CONN_HEALTH_CHECKS on.
    connection.health_check_enabled, connection.health_check_done = True, False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert connection.connection.info.backend_pid != pid


def test_after_an_error_the_connection_is_replaced():
    # An error may leave prepared statements whose plans PostgreSQL now refuses: a new connection prepares afresh.
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    connection.errors_occurred = True
    assert not connection.is_usable()
    connection.close_if_unusable_or_obsolete()  # what Django does at the end of every request
    assert connection.connection is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert connection.connection.info.backend_pid != pid


def test_a_connection_idle_for_a_while_is_asked(monkeypatch):
    # A server that vanished without a word leaves nothing to read: after a quiet spell, the server is asked.
    from myibot.postgresql import base

    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last real query'")
    pid = connection.connection.info.backend_pid
    monkeypatch.setattr(base.time, "monotonic", lambda: connection.last_used + base.ASK_AFTER_IDLE_SECONDS + 1)
    assert connection.is_usable()
    assert _last_query_seen_by_the_server(pid) == "SELECT 1"
