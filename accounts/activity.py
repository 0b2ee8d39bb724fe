"""What happened, counted: for the operators' dashboard (per hour, in the database) and for Prometheus.

Each function is one event, called where it happens. The hourly counts are
one upsert (INSERT ... ON CONFLICT DO UPDATE), so two workers counting the
same hour never lose a count and never raise a unique violation.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.utils import timezone

from accounts.models import ActivityKind, HourlyActivity


def _count(kind: str, now: datetime | None = None) -> None:
    hour = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    table, quote = HourlyActivity._meta.db_table, connection.ops.quote_name
    hour_value = HourlyActivity._meta.get_field("hour").get_db_prep_save(hour, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(table)} (hour, kind, count) VALUES (%s, %s, 1) "
            f"ON CONFLICT (hour, kind) DO UPDATE SET count = {quote(table)}.count + 1",
            [hour_value, kind],
        )


def call_started() -> None:
    _count(ActivityKind.CALL)


def signed_in() -> None:
    _count(ActivityKind.SIGN_IN)


def sign_in_failed(now: datetime | None = None) -> None:
    _count(ActivityKind.FAILED_PIN, now)


def account_locked(now: datetime | None = None) -> None:
    _count(ActivityKind.LOCK, now)


def spray_started() -> None:
    """A spray of failed sign-ins suspended PIN-only entry (the dashboard reads SignInSpray)."""


def transfer_submitted(amount_cents: int) -> None:
    """A transfer was written (the dashboard reads Transfer)."""


def webhook_answered(step: str, outcome: str, seconds: float) -> None:
    """One webhook answered: its step, how it ended, how long it took (for Prometheus)."""
