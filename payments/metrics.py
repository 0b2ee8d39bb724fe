"""Card money's Prometheus series (docs/METRICS.md names the alerts worth setting on them).

Counted when the change commits (a rolled-back change counted nothing), through myibot.metrics.record,
so that a metric never fails a call or an event.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from prometheus_client import Counter, Gauge

from myibot import metrics

CHARGES = Counter("myibot_card_charges", "Card deposit charges decided, by outcome.", ["outcome"])
UNCERTAIN_OPEN = Gauge(
    "myibot_card_deposits_uncertain",
    "Card deposits whose charge is uncertain or still charging, as last counted by any process.",
    multiprocess_mode="mostrecent",
)
DISPUTES = Counter("myibot_card_disputes", "Stripe's dispute events on card deposits of ours, by event.", ["event"])
REFUNDS = Counter("myibot_card_refunds", "Card deposit refunds, by the status Stripe (or we) gave them.", ["status"])
EVENTS = Counter("myibot_stripe_events", "Stripe events received at /stripe/events, by outcome.", ["outcome"])


def _on_commit(what) -> None:
    transaction.on_commit(partial(metrics.record, what))


def charge_decided(outcome: str) -> None:
    _on_commit(CHARGES.labels(outcome=outcome).inc)
    uncertain_recount()


def uncertain_recount() -> None:
    """One indexed count, when a charge is decided or an uncertain one settled."""

    def count() -> None:
        from payments.models import CardDeposit

        UNCERTAIN_OPEN.set(
            CardDeposit.objects.filter(status__in=[CardDeposit.Status.UNCERTAIN, CardDeposit.Status.CHARGING]).count()
        )

    _on_commit(count)


def dispute_event(event: str) -> None:
    _on_commit(DISPUTES.labels(event=event).inc)


def refund_status(status: str) -> None:
    _on_commit(REFUNDS.labels(status=status).inc)


def stripe_event(outcome: str) -> None:
    metrics.record(EVENTS.labels(outcome=outcome).inc)
