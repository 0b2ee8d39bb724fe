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

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts import ledger
from accounts.models import LedgerEntry
from payments import stripe_api
from payments.models import CardDeposit, Dispute, Refund
from payments.refunds import paid_deposit_or_not_yet

logger = logging.getLogger(__name__)


def dispute_seen(
    seen: stripe_api.DisputeSeen, *, withdrawn: bool = False, reinstated: bool = False, current: bool = False
) -> str | None:
    """Apply what Stripe says of a dispute, once; what it did in words, or None when it is not on a charge of ours.

    withdrawn/reinstated: the event's type says so, whatever the object's balance transactions show. current:
    the dispute as Stripe has it now (reconciliation read it), not an event's copy that may be stale: its
    status is believed whatever ours is.
    """
    deposit = paid_deposit_or_not_yet(charge=seen.charge, payment_intent=seen.payment_intent)
    if deposit is None:
        return None
    return _apply(
        deposit.pk,
        seen,
        withdrawn=withdrawn or seen.withdrawn,
        reinstated=reinstated or seen.reinstated,
        current=current,
    )


@transaction.atomic
def _apply(deposit_id: int, seen: stripe_api.DisputeSeen, *, withdrawn: bool, reinstated: bool, current: bool) -> str:
    deposit = CardDeposit.locked(deposit_id, "entry")
    dispute = Dispute.objects.select_for_update().filter(stripe_id=seen.id).first()
    if dispute is None:
        dispute = Dispute(stripe_id=seen.id, deposit=deposit, amount_cents=max(seen.amount_cents, 1))
    if current or dispute.takes(seen.status):
        dispute.status = seen.status[:30] or dispute.status
    dispute.reason = seen.reason[:40] or dispute.reason
    dispute.funds_withdrawn = dispute.funds_withdrawn or withdrawn
    dispute.funds_reinstated = dispute.funds_reinstated or reinstated
    dispute.updated = timezone.now()
    said = [f"dispute {seen.id} on card deposit {deposit.pk}: {dispute.status}"]
    # Taken even when first seen reinstated too (a late funds_withdrawn, or reconciliation finding it settled):
    # what was reinstated is given back just below, so a partial reinstatement still takes the difference.
    if dispute.funds_withdrawn and dispute.taken_by_id is None:
        left = deposit.entry.amount_cents - ledger.card_money_taken_cents(entry=deposit.entry)
        amount = min(dispute.amount_cents, left)
        if amount > 0:
            dispute.taken_by = ledger.card_money_take_back(
                entry=deposit.entry, amount_cents=amount, kind=LedgerEntry.Kind.DISPUTE, owing=True
            )
            said.append(f"{amount} cents taken back")
        if amount < dispute.amount_cents and not dispute.funds_reinstated:
            # A refund took it first: if that refund fails, the dispute takes it then (refunds.refund_ended).
            deposit.needs_look = f"dispute {seen.id} withdrew more than was left to take back: look at its refunds"[
                :160
            ]
            deposit.save(update_fields=["needs_look"])
    if dispute.funds_reinstated and dispute.taken_by_id and dispute.given_back_by_id is None:
        amount, taken, dispute.held_back_cents = _to_give_back(deposit, dispute, seen)
        if amount > 0:
            dispute.given_back_by = ledger.card_money_give_back(
                entry=deposit.entry, amount_cents=amount, kind=LedgerEntry.Kind.REINSTATED
            )
            said.append(f"{amount} cents given back")
        if amount < taken:
            deposit.needs_look = f"dispute {seen.id}: {amount} of the {taken} cents taken back given back"[:160]
            deposit.save(update_fields=["needs_look"])
    dispute.save()
    if dispute.is_inquiry and not deposit.needs_look:
        deposit.needs_look = f"the card's bank asks about this charge (inquiry {seen.id})"[:160]
        deposit.save(update_fields=["needs_look"])
    logger.warning("card deposit disputed: deposit=%s %s", deposit.pk, "; ".join(said))
    return "; ".join(said)


def _to_give_back(deposit: CardDeposit, dispute: Dispute, seen: stripe_api.DisputeSeen) -> tuple[int, int, int]:
    """What a reinstated dispute gives back, what it took, and what it holds back for a refund.

    Never more than Stripe reinstated (its balance transactions say, when they do), nor what went back to the
    card meanwhile: a refund made in Stripe's dashboard while the dispute held the money took nothing from the
    member, but the card has it, and giving the dispute's money back too would pay it twice. What is held back
    for that refund is given back if it fails (refunds.refund_ended).
    """
    taken = deposit.dispute_taken_cents()
    refunded = (
        deposit.refunds.exclude(status__in=[Refund.Status.FAILED, Refund.Status.CANCELED]).aggregate(
            total=Sum("amount_cents")
        )["total"]
        or 0
    )
    room = ledger.card_money_taken_cents(entry=deposit.entry) - refunded
    reinstated = min(taken, seen.reinstated_cents or taken)
    amount = max(min(reinstated, room), 0)
    return amount, taken, reinstated - amount


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
