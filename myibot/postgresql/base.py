"""Django's PostgreSQL backend with a health check that does not ask the server each time.

Django checks a reused connection at the start of each request (CONN_HEALTH_CHECKS)
by running SELECT 1: a round trip on every webhook, about a tenth of a menu
step's database time. An idle connection the server has ended (a restart, an
administrator's pg_terminate_backend, idle_session_timeout) is one PostgreSQL
has written to before closing, a FATAL message or the end of the stream, so
its socket is readable; a healthy idle connection has nothing to read. Looking
at the socket without waiting tells the two apart with no query.

A server that vanished without a word (its host lost, a network failover)
leaves nothing to read, so a connection idle for longer than
ASK_AFTER_IDLE_SECONDS is still asked with SELECT 1; a busy one never waits
that long. TCP keepalives and tcp_user_timeout (settings) end such a
connection from below too.

After a database error the connection is replaced, not asked: an error may
leave psycopg's prepared statements pointing at plans PostgreSQL now refuses
("cached plan must not change result type", after a migration changed a
column under a running worker), and a new connection prepares afresh.
"""

from __future__ import annotations

import select
import time

from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLDatabaseWrapper

# A connection unused for this long is asked with a query, not only looked at.
ASK_AFTER_IDLE_SECONDS = 10.0


def _server_has_spoken(socket_fd: int) -> bool:
    """Whether an idle connection's socket has something to read: the server's goodbye, or its end."""
    poller = select.poll()
    poller.register(socket_fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class DatabaseWrapper(PostgreSQLDatabaseWrapper):
    last_used = 0.0

    def init_connection_state(self) -> None:
        super().init_connection_state()
        # The session's time limits, in one round trip when it connects (myibot/postgresql/timeouts.py);
        # never libpq's `options`, which PgBouncer refuses.
        limits = self.settings_dict.get("TIME_LIMITS") or {}
        if limits.get("set_on_connect"):
            # Where psycopg prepares statements (settings: prepare_threshold), each is planned once, for
            # any values, not five times with its values first (PostgreSQL's default): a step's statements
            # cost their run, not their planning. Their generic plans use indexes (tests/test_query_plans.py).
            prepared = self.settings_dict["OPTIONS"].get("prepare_threshold") is not None
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false), "
                    "set_config('plan_cache_mode', %s, false)",
                    [
                        f"{limits['lock_timeout']}ms",
                        f"{limits['statement_timeout']}ms",
                        "force_generic_plan" if prepared else "auto",
                    ],
                )
            if not self.get_autocommit():
                self.connection.commit()

    def create_cursor(self, name=None):
        self.last_used = time.monotonic()
        return super().create_cursor(name)

    def is_usable(self) -> bool:
        if self.connection is None or self.connection.closed or self.connection.broken:
            return False
        if self.errors_occurred:
            return False
        if (
            not self.get_autocommit()
            or self.in_atomic_block
            or time.monotonic() - self.last_used > ASK_AFTER_IDLE_SECONDS
        ):
            # Inside a transaction, or idle long enough for a silent loss: only the server can say.
            return super().is_usable()
        try:
            return not _server_has_spoken(self.connection.pgconn.socket)
        except Exception:
            return False
