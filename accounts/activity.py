"""What happened, counted: for the operators' dashboard (per hour, in the database) and for Prometheus.

Each function is one event, called where it happens. The hourly counts are
one upsert (INSERT ... ON CONFLICT DO UPDATE), so two workers counting the
same hour never lose a count and never raise a unique violation. It runs when
the step's transaction commits, on its own: every call of the hour updates
one row, and holding its lock until a step's commit would line all calls up
behind each other. In a webhook it runs after the answer has gone
(myibot.after_answer): the caller never waits for the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import Counter

from accounts.models import ActivityKind, HourlyActivity
from myibot import metrics
from myibot.after_answer import after_answer
from myibot.db import inserted

# The domain's series in Prometheus (docs/METRICS.md); the phone's own are in ivr/metrics.py.
CALLS = Counter("myibot_calls", "Calls started (a new CallSid at /twilio/voice).")
SIGN_INS = Counter("myibot_sign_ins", "Callers signed in.")
SIGN_IN_FAILURES = Counter("myibot_sign_in_failures", "Sign-ins refused for a wrong PIN.")
LOCKS = Counter("myibot_locks", "Accounts locked after too many wrong PINs.")
SPRAYS = Counter("myibot_sprays", "Sign-in sprays: PIN-only entry suspended for 15 minutes.")
TRANSFERS = Counter("myibot_transfers", "Transfers submitted.")
TRANSFER_CENTS = Counter("myibot_transfer_cents", "Cents sent in submitted transfers.")


def _count(kind: str, now: datetime | None = None) -> None:
    # After the step's commit, on its own: it need not wait for the disk (a count lost in a database crash
    # is one event missing from the dashboard's hour, never money or a caller's state).
    hour = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    table, quote = HourlyActivity._meta.db_table, connection.ops.quote_name
    hour_value = HourlyActivity._meta.get_field("hour").get_db_prep_save(hour, connection)
    values = inserted("%s, %s, 1", asynchronous_commit=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(table)} (hour, kind, count) {values} "  # names from model metadata, values as parameters
            f"ON CONFLICT (hour, kind) DO UPDATE SET count = {quote(table)}.count + 1",
            [hour_value, kind],
        )


def _count_after(kind: str, now: datetime | None = None) -> None:
    """Count the event in the hour once its transaction commits (at once outside one), and once the webhook's
    answer has gone, if it is a webhook's (myibot.after_answer): the caller never waits for the count."""
    transaction.on_commit(partial(after_answer, partial(_count, kind, now or timezone.now()), what="the hour's count"))


def _on_commit(what: Callable[[], object]) -> None:
    """Count an event in Prometheus when its transaction commits (at once outside one).

    A step that rolls back (over its time budget, say) wrote no sign-in or
    transfer, and its hourly count rolled back too: Prometheus then agrees
    with the database that nothing happened. Series: above.
    """
    transaction.on_commit(partial(metrics.record, what))


def call_started() -> None:
    _count_after(ActivityKind.CALL)
    _on_commit(CALLS.inc)


def signed_in() -> None:
    _count_after(ActivityKind.SIGN_IN)
    _on_commit(SIGN_INS.inc)


def sign_in_failed(now: datetime | None = None) -> None:
    _count_after(ActivityKind.FAILED_PIN, now)
    _on_commit(SIGN_IN_FAILURES.inc)


def account_locked(now: datetime | None = None) -> None:
    _count_after(ActivityKind.LOCK, now)
    _on_commit(LOCKS.inc)


def spray_started() -> None:
    """A spray of failed sign-ins suspended PIN-only entry (the dashboard reads SignInSpray)."""
    _on_commit(SPRAYS.inc)


def transfer_submitted(amount_cents: int) -> None:
    """A transfer was written (the dashboard reads Transfer)."""

    def count() -> None:
        TRANSFERS.inc()
        TRANSFER_CENTS.inc(amount_cents)

    _on_commit(count)
