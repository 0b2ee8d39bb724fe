"""What happened, counted: for the operators' dashboard (per hour, in the database) and for Prometheus.

Each function is one event, called where it happens. The hourly counts are
one upsert (INSERT ... ON CONFLICT DO UPDATE), so two workers counting the
same hour never lose a count and never raise a unique violation. It runs when
the step's transaction commits, on its own: every call of the hour updates
one row, and holding its lock until a step's commit would line all calls up
behind each other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import ActivityKind, HourlyActivity
from myibot import metrics


def _count(kind: str, now: datetime | None = None) -> None:
    hour = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    table, quote = HourlyActivity._meta.db_table, connection.ops.quote_name
    hour_value = HourlyActivity._meta.get_field("hour").get_db_prep_save(hour, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(table)} (hour, kind, count) VALUES (%s, %s, 1) "  # noqa: S608 - names from model metadata, values as parameters
            f"ON CONFLICT (hour, kind) DO UPDATE SET count = {quote(table)}.count + 1",
            [hour_value, kind],
        )


def _on_commit(what: Callable[[], object]) -> None:
    """Count an event in Prometheus when its transaction commits (at once outside one).

    A step that rolls back (over its time budget, say) wrote no sign-in or
    transfer, and its hourly count rolled back too: Prometheus then agrees
    with the database that nothing happened. Series: myibot/metrics.py.
    """
    transaction.on_commit(partial(metrics.record, what))


def call_started() -> None:
    transaction.on_commit(partial(_count, ActivityKind.CALL))
    _on_commit(metrics.CALLS.inc)


def signed_in() -> None:
    transaction.on_commit(partial(_count, ActivityKind.SIGN_IN))
    _on_commit(metrics.SIGN_INS.inc)


def sign_in_failed(now: datetime | None = None) -> None:
    transaction.on_commit(partial(_count, ActivityKind.FAILED_PIN, now))
    _on_commit(metrics.SIGN_IN_FAILURES.inc)


def account_locked(now: datetime | None = None) -> None:
    transaction.on_commit(partial(_count, ActivityKind.LOCK, now))
    _on_commit(metrics.LOCKS.inc)


def spray_started() -> None:
    """A spray of failed sign-ins suspended PIN-only entry (the dashboard reads SignInSpray)."""
    _on_commit(metrics.SPRAYS.inc)


def transfer_submitted(amount_cents: int) -> None:
    """A transfer was written (the dashboard reads Transfer)."""

    def count() -> None:
        metrics.TRANSFERS.inc()
        metrics.TRANSFER_CENTS.inc(amount_cents)

    _on_commit(count)


def webhook_answered(step: str, outcome: str, seconds: float) -> None:
    """One webhook answered: its step, how it ended, how long it took (for Prometheus)."""

    def count() -> None:
        step_label = metrics.step_label(step)
        metrics.WEBHOOKS.labels(step=step_label, outcome=metrics.outcome_label(outcome)).inc()
        metrics.WEBHOOK_SECONDS.labels(step=step_label).observe(seconds)

    # Not on commit: the decorator calls this after the step's transaction ended, either way.
    metrics.record(count)
