"""Stripe's events in, each applied once (POST /stripe/events, and `stripe_events --replay`).

An event is stored first (unique on its id), then applied in a transaction of
its own. Applying compares the object's state with ours instead of trusting
the order events arrive in: a payment_intent.succeeded for a deposit already
paid changes nothing, a payment_failed after the deposit was credited changes
nothing. An event about something that is not ours (no deposit by that
public_id, another amount, the other mode) is stored, ignored and answered 200.
When applying fails for a passing reason (the database), the event stays
"received" and the view answers 500, so that Stripe sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import DatabaseError, transaction
from django.utils import timezone

from myibot.db import insert_unless_conflict
from payments import charges, disputes, refunds, stripe_api
from payments import metrics as payments_metrics
from payments.errors import NotYet, StripeFailed
from payments.models import CardDeposit, StripeEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    outcome: str  # StripeEvent.Outcome
    detail: str


def event_receive(event: dict) -> StripeEvent:
    """Store a verified event (once) and apply it unless it was; the stored row says how it went.

    Raises DatabaseError when applying failed for a passing reason: the caller answers 500.
    """
    obj = (event.get("data") or {}).get("object") or {}
    kind = str(event.get("type") or "")[:80]
    row = StripeEvent(
        event_id=str(event.get("id") or "")[:255],
        type=kind,
        # Only the ids of what the service applies (a PaymentIntent, a charge, a refund, a dispute, a warning):
        # an event it ignores may be about a card's PaymentMethod, whose id is never kept.
        object_id=str(obj.get("id") or "")[:255] if kind in HANDLERS else "",
        livemode=bool(event.get("livemode")),
        happened=datetime.fromtimestamp(int(event.get("created") or 0), tz=UTC) if event.get("created") else None,
    )
    if not insert_unless_conflict(row):
        row = StripeEvent.objects.get(event_id=row.event_id)
        if row.outcome != StripeEvent.Outcome.RECEIVED and row.outcome != StripeEvent.Outcome.FAILED:
            return row  # Stripe sent it again: applied (or set aside) once already
    return event_apply(row, event)


class NotAppliedYet(Exception):
    """Applying failed for a passing reason (the database, a lock, Stripe unreachable): Stripe sends it again."""


def event_apply(row: StripeEvent, event: dict) -> StripeEvent:
    """Apply one stored event; a second time changes nothing the first did not.

    NotAppliedYet when it could not be applied now: the row says failed, and the view answers 500.
    """
    kind = str(event.get("type") or "")
    try:
        if kind in ASKS_STRIPE:
            # It may ask Stripe: no transaction of ours (no lock) is open while it waits, and each change it
            # makes commits on its own, each applied once whoever comes second.
            applied = _apply(event)
            _applied(row, applied)
        else:
            with transaction.atomic():
                _applied(row, _apply(event))
    except (DatabaseError, StripeFailed, NotYet) as passing:
        why = (
            "the database failed"
            if isinstance(passing, DatabaseError)
            else f"Stripe could not be read: {passing}"
            if isinstance(passing, StripeFailed)
            else str(passing)
        )
        logger.warning("stripe event not applied yet (Stripe sends it again): event=%s type=%s", row.event_id, row.type)
        StripeEvent.objects.filter(pk=row.pk).update(outcome=StripeEvent.Outcome.FAILED, detail=why[:200])
        payments_metrics.stripe_event(StripeEvent.Outcome.FAILED)
        raise NotAppliedYet(why) from None
    row.refresh_from_db()
    payments_metrics.stripe_event(row.outcome)
    logger.info("stripe event %s: event=%s type=%s %s", row.outcome, row.event_id, row.type, row.detail)
    return row


def _applied(row: StripeEvent, applied: Applied) -> None:
    StripeEvent.objects.filter(pk=row.pk).update(
        outcome=applied.outcome, detail=applied.detail[:200], applied=timezone.now()
    )


def _apply(event: dict) -> Applied:
    if bool(event.get("livemode")) != stripe_api.livemode():
        return Applied(StripeEvent.Outcome.NOT_OURS, "the other mode's event")
    kind = str(event.get("type") or "")
    handler = HANDLERS.get(kind)
    if handler is None:
        return Applied(StripeEvent.Outcome.IGNORED, "a type this service does not act on")
    return handler((event.get("data") or {}).get("object") or {}, kind)


def _our_deposit(intent: stripe_api.Intent) -> CardDeposit | None:
    """The deposit a PaymentIntent names by its public_id, if the amount and the number match too."""
    public_id = stripe_api.uuid_or_none(intent.public_id)
    deposit = CardDeposit.objects.filter(public_id=public_id).first() if public_id else None
    if deposit is None or deposit.amount_cents != intent.amount_cents or intent.deposit != str(deposit.pk):
        return None
    return deposit


def _payment_intent_succeeded(obj: dict, kind: str) -> Applied:
    intent = stripe_api.intent_from(obj)
    deposit = _our_deposit(intent)
    if deposit is None:
        return Applied(StripeEvent.Outcome.NOT_OURS, "no deposit with that public_id and amount")
    if deposit.status == CardDeposit.Status.PAID:
        return Applied(StripeEvent.Outcome.APPLIED, f"card deposit {deposit.pk} was already paid")
    deposit = charges.credit(deposit_id=deposit.pk, payment_intent=intent.id, amount_cents=intent.amount_cents)
    return Applied(StripeEvent.Outcome.APPLIED, f"card deposit {deposit.pk} {deposit.status}")


def _payment_intent_failed(obj: dict, kind: str) -> Applied:
    intent = stripe_api.intent_from(obj)
    deposit = _our_deposit(intent)
    if deposit is None:
        return Applied(StripeEvent.Outcome.NOT_OURS, "no deposit with that public_id and amount")
    if deposit.status not in (CardDeposit.Status.CHARGING, CardDeposit.Status.UNCERTAIN):
        return Applied(StripeEvent.Outcome.APPLIED, f"card deposit {deposit.pk} stays {deposit.status}")
    deposit = charges.payment_failed(deposit=deposit, intent=intent)
    return Applied(StripeEvent.Outcome.APPLIED, f"card deposit {deposit.pk} {deposit.status}")


NOT_OURS = Applied(StripeEvent.Outcome.NOT_OURS, "not on a charge of ours")


def _said(detail: str | None) -> Applied:
    return NOT_OURS if detail is None else Applied(StripeEvent.Outcome.APPLIED, detail)


def _charge_refunded(obj: dict, kind: str) -> Applied:
    # Since API version 2022-11-15 a charge carries no list of its refunds: Stripe is asked for them.
    payment_intent = stripe_api.id_of(obj.get("payment_intent"))
    deposit = refunds.paid_deposit_or_not_yet(charge=str(obj.get("id") or ""), payment_intent=payment_intent)
    if deposit is None:
        return NOT_OURS
    said = refunds.refunds_of_deposit_seen(deposit, timeout=stripe_api.EVENT_READ_SECONDS)
    return Applied(StripeEvent.Outcome.APPLIED, "; ".join(said) or f"no refund listed for card deposit {deposit.pk}")


def _refund(obj: dict, kind: str) -> Applied:
    return _said(refunds.refund_event_seen(stripe_api.refund_from(obj)))


def _dispute(obj: dict, kind: str) -> Applied:
    seen = stripe_api.dispute_from(obj)
    said = disputes.dispute_seen(
        seen,
        withdrawn=kind == "charge.dispute.funds_withdrawn",
        reinstated=kind == "charge.dispute.funds_reinstated",
    )
    if said is not None:
        payments_metrics.dispute_event(kind.removeprefix("charge.dispute."))
    return _said(said)


def _early_fraud_warning(obj: dict, kind: str) -> Applied:
    return _said(
        disputes.early_fraud_warning_seen(
            charge=stripe_api.id_of(obj.get("charge")),
            payment_intent=stripe_api.id_of(obj.get("payment_intent")),
            warning=str(obj.get("id") or ""),
            fraud_type=str(obj.get("fraud_type") or ""),
        )
    )


# Every type the README asks the Stripe dashboard's endpoint to send, and what each does.
HANDLERS: dict[str, Callable[[dict, str], Applied]] = {
    "payment_intent.succeeded": _payment_intent_succeeded,
    "payment_intent.payment_failed": _payment_intent_failed,
    "payment_intent.canceled": _payment_intent_failed,
    "charge.refunded": _charge_refunded,
    "charge.refund.updated": _refund,
    "refund.created": _refund,
    "refund.updated": _refund,
    "refund.failed": _refund,
    "charge.dispute.created": _dispute,
    "charge.dispute.updated": _dispute,
    "charge.dispute.funds_withdrawn": _dispute,
    "charge.dispute.funds_reinstated": _dispute,
    "charge.dispute.closed": _dispute,
    "radar.early_fraud_warning.created": _early_fraud_warning,
}
# Applied outside a transaction of ours: they may ask Stripe (SPEC "Money actions commit before they call out"):
# charge.refunded for the charge's refunds, a refund event for them too while a refund of ours stands in.
ASKS_STRIPE = frozenset(
    {"charge.refunded", "refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)
