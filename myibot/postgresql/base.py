"""Django's PostgreSQL backend with a health check that does not ask the server.

Django checks a reused connection at the start of each request (CONN_HEALTH_CHECKS)
by running SELECT 1: a round trip on every webhook, about a tenth of a menu
step's database time. An idle connection the server has ended (a restart, an
administrator's pg_terminate_backend, idle_session_timeout) is one PostgreSQL
has written to before closing, a FATAL message or the end of the stream, so
its socket is readable; a healthy idle connection has nothing to read. Looking
at the socket without waiting tells the two apart with no query. A connection
that had an error is still checked the old way, with a query.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLDatabaseWrapper


def _server_has_spoken(socket_fd: int) -> bool:
    """Whether an idle connection's socket has something to read: the server's goodbye, or its end."""
    poller = select.poll()
    poller.register(socket_fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class DatabaseWrapper(PostgreSQLDatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None or self.connection.closed or self.connection.broken:
            return False
        if self.errors_occurred or not self.get_autocommit() or self.in_atomic_block:
            # After an error, or inside a transaction: only the server can say.
            return super().is_usable()
        try:
            return not _server_has_spoken(self.connection.pgconn.socket)
        except Exception:  # noqa: BLE001 - a health check must never raise (Django's own contract)
            return False
