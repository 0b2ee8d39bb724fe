"""The database's time limits, however the app reaches PostgreSQL (README, "Many machines").

Each webhook must hear back from PostgreSQL in time to answer Twilio (docs/TIME_BUDGET.md): a lock
wait ends after DB_LOCK_TIMEOUT_MS, a statement after DB_STATEMENT_TIMEOUT_MS. They are never sent
as libpq's `options`, which PgBouncer refuses ("unsupported startup parameter") or, told to ignore
it, drops without a word. Two ways instead, both always on:

- The role's own settings in this database (ALTER ROLE ... IN DATABASE ... SET): every session
  PostgreSQL opens for the app's role starts with them, whoever opens it, a pooler in transaction
  mode included. A migration sets them (accounts 0014), and each start checks them (`ensure`), so
  that a changed DB_LOCK_TIMEOUT_MS holds from the next start.
- The session's own (set_config(..., false)) when the backend connects, straight or through a
  pooler in session mode, so that each process holds exactly its settings (the release command's
  migrations have longer ones). Never in transaction mode, where a session is not the app's.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

NAMES = ("lock_timeout", "statement_timeout")


def wanted() -> dict[str, str]:
    """The role's settings the webhooks need, as PostgreSQL shows them in pg_db_role_setting."""
    return {
        "lock_timeout": f"{settings.DB_LOCK_TIMEOUT_MS}ms",
        "statement_timeout": f"{settings.DB_STATEMENT_TIMEOUT_MS}ms",
    }


def role_settings(connection) -> dict[str, str]:
    """What the app's role starts every session with in this database (only what is set for it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT unnest(setconfig) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
            "WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user) "
            "AND d.datname = current_database()"
        )
        found = dict(row[0].split("=", 1) for row in cursor.fetchall())
    return {name: found[name] for name in NAMES if name in found}


def role_settings_apply(connection) -> None:
    """Set the role's limits in this database (its own role: no superuser needed)."""
    with connection.cursor() as cursor:
        for name, value in wanted().items():
            # ALTER ROLE takes no parameters: the names are ours, the value a number of ms we formatted.
            cursor.execute(
                f"SELECT format('ALTER ROLE %%I IN DATABASE %%I SET {name} = %%L', current_user, current_database(), %s::text)",
                [value],
            )
            cursor.execute(cursor.fetchone()[0])


def ensure(alias: str = "default") -> None:
    """At start-up: the role's limits as the settings say, set again if they differ. Never stops a start:
    a database that cannot be reached now is logged (ERROR), and /healthz answers 503 while it lasts.

    A pooler's server connections opened before a change keep the old limits until it replaces them
    (PgBouncer's server_lifetime, an hour by default; RECONNECT on its console replaces them at once).
    """
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return
    try:
        if role_settings(connection) != wanted():
            role_settings_apply(connection)
            logger.warning("database role's time limits were not the settings': set them to %s", wanted())
    except Exception as error:  # reported, never fatal: the app still answers, with its apology if it must
        logger.error("database role's time limits not checked: %s", type(error).__name__)
    finally:
        connection.close()
