"""Card money given back to the card: money actions commit before they call out (docs/DEPOSITS.md, "Refunds").

1. Every precondition is checked before anything changes: Stripe configured, the deposit paid, no dispute
   open, money left to refund, and the member's balance (unless --clawback).
2. In one short transaction the money is taken back with a refund entry and a Refund row of ours (its own
   UUID) is written; it commits.
3. Only then is Stripe asked, with no row locked, the UUID in the refund's metadata and its idempotency key.
   Its refund id and status are stored. A 4xx (Stripe made nothing) gives the money back with an entry of
   its own; a lost answer leaves the row `requested`, and refund_finish later asks Stripe's list of the
   charge's refunds before it ever asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts import ledger
from accounts.errors import InsufficientFunds
from accounts.models import Account, LedgerEntry
from payments import metrics as payments_metrics
from payments import stripe_api
from payments.errors import AlreadyRefunded, DisputeOpen, NotACardDeposit, NotCharged, NotYet, StripeNotConfigured
from payments.models import CardDeposit, Refund

logger = logging.getLogger(__name__)

# Refunds that took money back and may still succeed: what is left to refund excludes them.
STANDING = ~Q(status__in=[Refund.Status.FAILED, Refund.Status.CANCELED])


def refundable_cents(deposit: CardDeposit) -> int:
    """What is left to give back to the card: not refunded yet, and not taken back by a dispute either."""
    refunded = deposit.refunds.filter(STANDING).aggregate(cents=Sum("amount_cents"))["cents"] or 0
    left = deposit.amount_cents - refunded
    if deposit.entry_id is not None:
        left = min(left, deposit.amount_cents - ledger.card_money_taken_cents(entry=deposit.entry))
    return left


def refund_check(*, deposit: CardDeposit, clawback: bool = False) -> int:
    """What would be refunded; the refusal (an error) before anything changes."""
    if not stripe_api.configured():
        raise StripeNotConfigured
    if deposit.status != CardDeposit.Status.PAID or deposit.entry_id is None:
        raise NotCharged
    if not (deposit.payment_intent or deposit.reference):
        raise NotACardDeposit
    if any(dispute.is_open for dispute in deposit.disputes.all()):
        raise DisputeOpen
    left = refundable_cents(deposit)
    if left <= 0:
        raise AlreadyRefunded
    if not clawback and Account.objects.get(pk=deposit.account_id).balance_cents < left:
        raise InsufficientFunds  # the money was spent: only --clawback may leave the member owing
    return left


def card_deposit_refund(
    *, deposit_id: int, operator=None, clawback: bool = False, recorded: Callable[[Refund], None] | None = None
) -> Refund:
    """Refund what is left of a paid card deposit to its card. The Refund row says how far it got.

    recorded(refund), when given, runs inside the transaction that takes the money back (the admin writes
    its history entry there), so that the money never moves without it, whatever happens to the request
    while Stripe is asked.
    """
    deposit = CardDeposit.objects.get(pk=deposit_id)
    refund_check(deposit=deposit, clawback=clawback)
    refund = _take_back(deposit_id=deposit_id, operator=operator, clawback=clawback, recorded=recorded)
    return _ask_stripe(refund)


@transaction.atomic
def _take_back(*, deposit_id: int, operator, clawback: bool, recorded: Callable[[Refund], None] | None) -> Refund:
    deposit = CardDeposit.locked(deposit_id, "entry")
    amount = refund_check(deposit=deposit, clawback=clawback)  # again, under the locks
    taken = ledger.card_money_take_back(
        entry=deposit.entry, amount_cents=amount, kind=LedgerEntry.Kind.REFUND, owing=clawback
    )
    refund = Refund.objects.create(
        deposit=deposit, amount_cents=amount, operator=operator, clawback=clawback, taken_by=taken
    )
    payments_metrics.refund_status(Refund.Status.REQUESTED)
    if recorded is not None:
        recorded(refund)
    logger.info("card deposit refund recorded: deposit=%s refund=%s cents=%s", deposit.pk, refund.public_id, amount)
    return refund


def _ask_stripe(refund: Refund) -> Refund:
    deposit = refund.deposit
    try:
        made = stripe_api.refund_create(
            reference=deposit.payment_intent or deposit.reference,
            amount_cents=refund.amount_cents,
            public_id=str(refund.public_id),
            deposit=deposit.pk,
        )
    except stripe_api.RefundRefused as refused:
        if refused.code == "charge_already_refunded":
            # The card already has this money back (a refund made elsewhere: Stripe's dashboard, version 3's
            # command): giving it back to the member too would pay it twice. Kept taken, and looked at.
            logger.warning(
                "card deposit already refunded in Stripe: deposit=%s refund=%s", deposit.pk, refund.public_id
            )
            return _already_refunded(refund)
        logger.warning("card deposit refund refused by Stripe: deposit=%s why=%s", deposit.pk, refused)
        return refund_ended(refund_id=refund.pk, status=Refund.Status.FAILED, reason=str(refused)[:60])
    except stripe_api.StripeFailed as failed:
        logger.warning("card deposit refund not confirmed by Stripe: deposit=%s why=%s", deposit.pk, failed)
        return refund
    return refund_update(refund_id=refund.pk, stripe_id=made.id, status=made.status, reason=made.failure_reason)


# Ours, refused by Stripe because the charge was already refunded: it keeps the money taken for that refund,
# made elsewhere, until that refund fails (_give_back_stood_in_for).
ALREADY_REFUNDED = "already refunded in Stripe"


@transaction.atomic
def _already_refunded(refund: Refund) -> Refund:
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    refund.status, refund.failure_reason, refund.updated = (Refund.Status.SUCCEEDED, ALREADY_REFUNDED, timezone.now())
    refund.save()
    CardDeposit.objects.filter(pk=refund.deposit_id).update(
        needs_look="Stripe says the charge was already refunded: the money stays taken back; check Stripe's refunds"
    )
    payments_metrics.refund_status(refund.status)
    return refund


@transaction.atomic
def refund_update(*, refund_id: int, stripe_id: str, status: str, reason: str = "") -> Refund:
    """Stripe's word on a refund of ours; failed or canceled gives the money back once."""
    if status in (Refund.Status.FAILED, Refund.Status.CANCELED):
        return refund_ended(refund_id=refund_id, status=status, reason=reason, stripe_id=stripe_id)
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    if refund.status in (Refund.Status.FAILED, Refund.Status.CANCELED, Refund.Status.SUCCEEDED):
        return refund  # settled: an older word changes nothing
    refund.stripe_id = stripe_id or refund.stripe_id
    before, refund.status = refund.status, status if status in Refund.Status.values else refund.status
    refund.updated = timezone.now()
    refund.save()
    if refund.status != before:
        payments_metrics.refund_status(refund.status)
    return refund


@transaction.atomic
def refund_ended(*, refund_id: int, status: str, reason: str = "", stripe_id: str = "") -> Refund:
    """A refund that did not happen: the money it took comes back to the member, with an entry of its own."""
    account_id = Refund.objects.values_list("deposit__account_id", flat=True).get(pk=refund_id)
    Account.objects.select_for_update().filter(pk=account_id).get()
    refund = (
        Refund.objects.select_for_update(of=("self",)).select_related("deposit__entry", "taken_by").get(pk=refund_id)
    )
    # failed and canceled are final; succeeded is not: a refund can fail days after it succeeded.
    if refund.given_back_by_id or refund.status in (Refund.Status.FAILED, Refund.Status.CANCELED):
        return refund
    taken = -refund.taken_by.amount_cents if refund.taken_by_id else 0
    if taken:
        # What this refund took (a dashboard refund beyond what was left took less than its amount).
        refund.given_back_by = ledger.card_money_give_back(
            entry=refund.deposit.entry, amount_cents=taken, kind=LedgerEntry.Kind.REFUND_RETURNED
        )
    _dispute_takes_what_it_could_not(refund.deposit)
    shortfall = _give_back_held_for(refund, shortfall=refund.amount_cents - taken)
    _give_back_stood_in_for(refund.deposit, shortfall=shortfall)
    refund.status, refund.failure_reason = status, reason[:60]
    refund.stripe_id = stripe_id or refund.stripe_id
    refund.updated = timezone.now()
    refund.save()
    payments_metrics.refund_status(status)
    logger.warning(
        "card deposit refund %s, money given back: deposit=%s refund=%s", status, refund.deposit_id, refund.public_id
    )
    return refund


def _give_back_held_for(refund: Refund, *, shortfall: int) -> int:
    """A refund that took less than it sent to the card made a reinstated dispute hold its money back
    (disputes._to_give_back): now that the card never got it, the member does. Under the account's lock;
    what is left of the shortfall."""
    for dispute in refund.deposit.disputes.select_for_update().filter(held_back_cents__gt=0).order_by("pk"):
        if shortfall <= 0:
            break
        amount = min(shortfall, dispute.held_back_cents)
        ledger.card_money_give_back(entry=refund.deposit.entry, amount_cents=amount, kind=LedgerEntry.Kind.REINSTATED)
        dispute.held_back_cents -= amount
        dispute.save(update_fields=["held_back_cents"])
        shortfall -= amount
        logger.warning(
            "card deposit dispute money held back for a refund that failed, given back: deposit=%s dispute=%s cents=%s",
            refund.deposit_id,
            dispute.stripe_id,
            amount,
        )
    return shortfall


def _give_back_stood_in_for(deposit: CardDeposit, *, shortfall: int) -> None:
    """A refund made elsewhere that took less than it sent, because a refund of ours refused as already refunded
    had taken the money for it (_already_refunded), did not reach the card: ours gives the money back, and fails
    (the operator may refund again). Under the account's lock."""
    stood_in = deposit.refunds.select_for_update(of=("self",)).select_related("taken_by")
    stood_in = stood_in.filter(status=Refund.Status.SUCCEEDED, failure_reason=ALREADY_REFUNDED, stripe_id__isnull=True)
    for ours in stood_in.order_by("pk"):
        if shortfall <= 0:
            return
        amount = min(shortfall, -ours.taken_by.amount_cents if ours.taken_by_id else 0)
        if amount <= 0:
            continue
        ours.given_back_by = ledger.card_money_give_back(
            entry=deposit.entry, amount_cents=amount, kind=LedgerEntry.Kind.REFUND_RETURNED
        )
        ours.status, ours.failure_reason, ours.updated = (
            Refund.Status.FAILED,
            "the refund it stood for failed",
            timezone.now(),
        )
        ours.save()
        payments_metrics.refund_status(ours.status)
        shortfall -= amount
        logger.warning(
            "card deposit refund made in Stripe failed, ours that stood for it gives the money back: deposit=%s "
            "refund=%s cents=%s",
            deposit.pk,
            ours.public_id,
            amount,
        )


def _dispute_takes_what_it_could_not(deposit: CardDeposit) -> None:
    """A dispute Stripe withdrew while this refund had the money took less than it withdrew (disputes._apply):
    now that the refund gave its money back, the dispute takes the rest, which Stripe holds, not the member.
    Under the account's lock."""
    for dispute in deposit.disputes.select_for_update().filter(funds_withdrawn=True, funds_reinstated=False):
        left = deposit.entry.amount_cents - ledger.card_money_taken_cents(entry=deposit.entry)
        amount = min(dispute.amount_cents - deposit.dispute_taken_cents(), left)
        if amount <= 0:
            continue
        entry = ledger.card_money_take_back(
            entry=deposit.entry, amount_cents=amount, kind=LedgerEntry.Kind.DISPUTE, owing=True
        )
        if dispute.taken_by_id is None:
            dispute.taken_by = entry
            dispute.save(update_fields=["taken_by"])
        logger.warning(
            "card deposit refund failed while disputed, the dispute takes its money: deposit=%s dispute=%s cents=%s",
            deposit.pk,
            dispute.stripe_id,
            amount,
        )


def refund_finish(refund: Refund) -> Refund:
    """A refund whose answer was lost: found in Stripe's list by its UUID, or asked again (none was made)."""
    deposit = refund.deposit
    made = [
        found
        for found in stripe_api.refunds_of(deposit.payment_intent or deposit.reference)
        if found.public_id == str(refund.public_id)
    ]
    if made:
        return refund_update(
            refund_id=refund.pk, stripe_id=made[0].id, status=made[0].status, reason=made[0].failure_reason
        )
    return _ask_stripe(refund)


def charge_refund_uncredited(*, deposit_id: int, reference: str, operator=None) -> Refund:
    """Version 3: refund a connector's charge that was never credited; the ledger never had the money."""
    if not stripe_api.configured():
        raise StripeNotConfigured
    with transaction.atomic():
        deposit = CardDeposit.objects.select_for_update(of=("self",)).get(pk=deposit_id)
        if deposit.entry_id or deposit.refunds.filter(STANDING).exists():
            raise AlreadyRefunded
        if deposit.status != CardDeposit.Status.NOT_CHARGED:
            deposit.status, deposit.not_charged_reason = CardDeposit.Status.NOT_CHARGED, CardDeposit.Reason.NO_CHARGE
            deposit.decided = deposit.decided or timezone.now()
        deposit.reference = deposit.reference or reference
        deposit.needs_look = "charged by Twilio's connector, never credited: refunded to the card"
        deposit.save()
        refund = Refund.objects.create(deposit=deposit, amount_cents=deposit.amount_cents, operator=operator)
    return _ask_stripe(refund)


# What Stripe says about refunds, ours or made in its dashboard (events, and reconciliation) ----------


def paid_deposit_charged_by(*, charge: str, payment_intent: str) -> CardDeposit | None:
    """The paid card deposit a Stripe charge or PaymentIntent belongs to, or None: not ours."""
    ids = [value for value in (charge, payment_intent) if value]
    if not ids:
        return None
    return (
        CardDeposit.objects.filter(Q(payment_intent__in=ids) | Q(reference__in=ids), status=CardDeposit.Status.PAID)
        .order_by("pk")
        .first()
    )


def paid_deposit_or_not_yet(*, charge: str, payment_intent: str) -> CardDeposit | None:
    """For an event about a charge: its paid deposit; None when it is not ours; NotYet while it may be ours but
    is not credited yet (Stripe sends the event again)."""
    deposit = paid_deposit_charged_by(charge=charge, payment_intent=payment_intent)
    if deposit is None:
        not_credited_yet(payment_intent=payment_intent)
    return deposit


def not_credited_yet(*, payment_intent: str) -> None:
    """A deposit of ours whose charge is still being settled: NotYet, so that Stripe sends the event again
    (after the charge's own event or reconciliation credits it), instead of setting it aside for good.

    A charge whose answer was lost has no PaymentIntent on our side until then: while such a deposit is open,
    an event about a PaymentIntent we do not know may be about it, and waits too (reconciliation settles
    uncertain deposits within the hour; Stripe sends an event again for 3 days). Only for a day: a deposit
    left open longer is on the dashboard's "needs a look", and events of other charges on the same Stripe
    account must not fail for days (Stripe may then turn the endpoint off).
    """
    if not payment_intent:
        return
    open_charge = [CardDeposit.Status.CHARGING, CardDeposit.Status.UNCERTAIN]
    known = CardDeposit.objects.filter(payment_intent=payment_intent).first()
    if known is not None and known.status in (*open_charge, CardDeposit.Status.PENDING, CardDeposit.Status.PAID):
        # Paid: credited since the caller looked (paid_deposit_charged_by); the event is applied when it comes again.
        raise NotYet(f"the charge {payment_intent} is not credited yet")
    lost_answer = CardDeposit.objects.filter(
        status__in=open_charge, payment_intent__isnull=True, charging_started__gte=timezone.now() - timedelta(days=1)
    )
    if known is None and lost_answer.exists():
        raise NotYet(f"{payment_intent} may be the charge of a deposit whose answer was lost")


def refund_seen(found: stripe_api.RefundAnswer) -> str | None:
    """Apply what Stripe says of one refund, once; what it did in words, or None when it is not ours.

    Ours (found by Stripe's id, or our UUID in its metadata when our answer was lost) moves as Stripe says.
    One made in Stripe's dashboard is new to us: the card is refunded whatever the balance holds, so its
    money is taken back even below zero (the member then owes it), and given back if it fails later.
    """
    ours = Refund.objects.filter(stripe_id=found.id).first()
    if ours is None and found.public_id:
        ours = Refund.objects.filter(public_id=stripe_api.uuid_or_none(found.public_id)).first()
    if ours is not None:
        refund = refund_update(refund_id=ours.pk, stripe_id=found.id, status=found.status, reason=found.failure_reason)
        return f"refund {refund.public_id} of card deposit {refund.deposit_id} {refund.status}"
    deposit = paid_deposit_or_not_yet(charge=found.charge, payment_intent=found.payment_intent)
    if deposit is None:
        return None
    refund = _dashboard_refund(deposit_id=deposit.pk, found=found)
    return f"refund {found.id} made in Stripe's dashboard for card deposit {deposit.pk}: {refund.status}"


@transaction.atomic
def _dashboard_refund(*, deposit_id: int, found: stripe_api.RefundAnswer) -> Refund:
    deposit = CardDeposit.locked(deposit_id, "entry")
    known = Refund.objects.filter(stripe_id=found.id).first()
    if known is not None:  # another event about it got here first
        return refund_update(refund_id=known.pk, stripe_id=found.id, status=found.status, reason=found.failure_reason)
    status = found.status if found.status in Refund.Status.values else Refund.Status.PENDING
    refund = Refund(deposit=deposit, stripe_id=found.id, amount_cents=found.amount_cents, status=status, clawback=True)
    refund.failure_reason = found.failure_reason[:60]
    if status in (Refund.Status.FAILED, Refund.Status.CANCELED):
        # First seen failed: it took nothing, but a refund of ours may have taken its money for it.
        _give_back_stood_in_for(deposit, shortfall=found.amount_cents)
    else:
        left = deposit.entry.amount_cents - ledger.card_money_taken_cents(entry=deposit.entry)
        amount = min(found.amount_cents, left)
        if amount > 0:
            refund.taken_by = ledger.card_money_take_back(
                entry=deposit.entry, amount_cents=amount, kind=LedgerEntry.Kind.REFUND, owing=True
            )
        if amount < found.amount_cents:
            deposit.needs_look = f"refunded in Stripe's dashboard beyond what was left to take back ({found.id})"[:160]
            deposit.save(update_fields=["needs_look"])
    refund.save()
    payments_metrics.refund_status(refund.status)
    logger.warning(
        "card deposit refunded in Stripe's dashboard: deposit=%s refund=%s cents=%s status=%s",
        deposit.pk,
        found.id,
        found.amount_cents,
        refund.status,
    )
    return refund


def refunds_of_deposit_seen(deposit: CardDeposit, *, timeout: float = stripe_api.READ_SECONDS) -> list[str]:
    """Every refund Stripe lists for a deposit's charge, applied (charge.refunded names none since 2022-11-15)."""
    reference = deposit.payment_intent or deposit.reference
    return [said for found in stripe_api.refunds_of(reference, timeout=timeout) if (said := refund_seen(found))]
