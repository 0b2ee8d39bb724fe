"""Disputes and early fraud warnings: the member's money moves when Stripe's does, never before.

A dispute takes the deposit's money back when Stripe withdraws it from our balance
(charge.dispute.funds_withdrawn, or a withdrawal among the dispute's balance
transactions), at the dispute's amount (never more than is left of the deposit),
even below zero: the card's money is gone, so the member owes it. Stripe's dispute
fee is the service's cost and is never taken. funds_reinstated gives it back once.
An inquiry withdraws nothing: it only flags the deposit. Events come late, twice
and out of order: a dispute row remembers what Stripe did (withdrawn, reinstated),
so a withdrawal reported after its reinstatement takes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from payments import clawbacks, stripe_api
from payments.models import CardDeposit, Dispute, Refund
from payments.refunds import paid_deposit_or_not_yet

logger = logging.getLogger(__name__)


def dispute_seen(
    seen: stripe_api.DisputeSeen,
    *,
    withdrawn: bool = False,
    reinstated: bool = False,
    read_at: datetime | None = None,
) -> str | None:
    """Apply what Stripe says of a dispute, once; what it did in words, or None when it is not on a charge of ours.

    withdrawn/reinstated: the event's type says so, whatever the object's balance transactions show. read_at:
    the dispute as Stripe had it then (reconciliation read it), not an event's copy that may be stale: its
    status is believed whatever ours is, unless ours changed since (an event applied meanwhile is newer).
    """
    deposit = paid_deposit_or_not_yet(charge=seen.charge, payment_intent=seen.payment_intent)
    if deposit is None:
        return None
    return _apply(
        deposit.pk,
        seen,
        withdrawn=withdrawn or seen.withdrawn,
        reinstated=reinstated or seen.reinstated,
        read_at=read_at,
    )


@transaction.atomic
def _apply(
    deposit_id: int, seen: stripe_api.DisputeSeen, *, withdrawn: bool, reinstated: bool, read_at: datetime | None
) -> str:
    deposit = CardDeposit.locked(deposit_id, "entry")
    dispute = Dispute.objects.select_for_update().filter(stripe_id=seen.id).first()
    if dispute is None:
        dispute = Dispute(stripe_id=seen.id, deposit=deposit, amount_cents=max(seen.amount_cents, 1))
    current = read_at is not None and (dispute.pk is None or dispute.updated <= read_at)
    if current or dispute.takes(seen.status):
        dispute.status = seen.status[:30] or dispute.status
    dispute.reason = seen.reason[:40] or dispute.reason
    # What Stripe did with the money only ever adds up: a stale copy of the dispute shows less, never undoes it.
    dispute.funds_withdrawn = dispute.funds_withdrawn or withdrawn
    dispute.funds_reinstated = dispute.funds_reinstated or reinstated
    dispute.reinstated_cents = min(max(dispute.reinstated_cents, seen.reinstated_cents), dispute.amount_cents)
    dispute.updated = timezone.now()
    dispute.save()
    said = [f"dispute {seen.id} on card deposit {deposit.pk}: {dispute.status}", *clawbacks.follow(deposit)]
    look = _worth_a_look(deposit, dispute)
    # An inquiry only flags a deposit nothing else flagged; the rest say what changed.
    if look and deposit.needs_look != look[:160] and not (dispute.is_inquiry and deposit.needs_look):
        deposit.needs_look = look[:160]
        deposit.save(update_fields=["needs_look"])
    logger.warning("card deposit disputed: deposit=%s %s", deposit.pk, "; ".join(said))
    return "; ".join(said)


def _worth_a_look(deposit: CardDeposit, dispute: Dispute) -> str:
    """Why an operator should look at a disputed deposit, or "": Stripe and the member part ways somewhere."""
    refunded = deposit.refunds.exclude(status__in=Refund.ENDED).exists()
    if dispute.funds_reinstated and dispute.kept_cents:
        return f"dispute {dispute.stripe_id}: Stripe gave back {dispute.amount_cents - dispute.kept_cents} of the {dispute.amount_cents} cents"
    if dispute.funds_reinstated and refunded:
        return f"dispute {dispute.stripe_id} given back while the charge was refunded: nothing more to the member"
    if dispute.funds_withdrawn and refunded:
        return f"dispute {dispute.stripe_id} withdrew money a refund had taken first: look at its refunds"
    if dispute.is_inquiry:
        return f"the card's bank asks about this charge (inquiry {dispute.stripe_id})"
    return ""


def early_fraud_warning_seen(*, charge: str, payment_intent: str, warning: str, fraud_type: str) -> str | None:
    """The card's bank warns the charge may be fraud: money still held stays held until an operator releases it."""
    deposit = paid_deposit_or_not_yet(charge=charge, payment_intent=payment_intent)
    if deposit is None:
        return None
    with transaction.atomic():
        deposit = CardDeposit.objects.select_for_update().get(pk=deposit.pk)
        still_held = deposit.release_at is not None and deposit.release_at > timezone.now()
        deposit.held_for_review = deposit.held_for_review or still_held
        said = f"early fraud warning {warning} ({fraud_type or 'unknown'})"
        if not deposit.needs_look.startswith(said):
            # First, so that reconciliation knows it is applied; what was noted before stays after it.
            deposit.needs_look = "; ".join(part for part in (said, deposit.needs_look) if part)[:160]
        deposit.save(update_fields=["held_for_review", "needs_look"])
    logger.warning(
        "card deposit early fraud warning: deposit=%s warning=%s held=%s", deposit.pk, warning, deposit.held_for_review
    )
    held = "its money stays held until an operator releases it" if deposit.held_for_review else "its money was free"
    return f"early fraud warning on card deposit {deposit.pk}: {held}"
