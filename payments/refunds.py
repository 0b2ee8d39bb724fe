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
from payments import charges, clawbacks, stripe_api
from payments import metrics as payments_metrics
from payments.errors import AlreadyRefunded, DisputeOpen, NotACardDeposit, NotCharged, NotYet, StripeNotConfigured
from payments.models import CardDeposit, Refund

logger = logging.getLogger(__name__)

# Refunds that took money back and may still succeed: what is left to refund excludes them.
STANDING = ~Q(status__in=Refund.ENDED)


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
            # command): giving it back to the member too would pay it twice. Kept taken, and looked at, until
            # Stripe's refunds of the charge are recorded: read now, or by reconciliation (payments.clawbacks).
            logger.warning(
                "card deposit already refunded in Stripe: deposit=%s refund=%s", deposit.pk, refund.public_id
            )
            _already_refunded(refund)
            try:
                stood_in_listed(deposit)
            except (stripe_api.StripeFailed, NotYet) as failed:
                logger.warning("card deposit's refunds not read from Stripe: deposit=%s why=%s", deposit.pk, failed)
            return Refund.objects.get(pk=refund.pk)
        logger.warning("card deposit refund refused by Stripe: deposit=%s why=%s", deposit.pk, refused)
        return refund_ended(refund_id=refund.pk, status=Refund.Status.FAILED, reason=str(refused)[:60])
    except stripe_api.StripeFailed as failed:
        logger.warning("card deposit refund not confirmed by Stripe: deposit=%s why=%s", deposit.pk, failed)
        return refund
    return refund_update(refund_id=refund.pk, stripe_id=made.id, status=made.status, reason=made.failure_reason)


@transaction.atomic
def _already_refunded(refund: Refund) -> Refund:
    CardDeposit.locked(refund.deposit_id)  # the account, then the deposit: the order every money path takes
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    if refund.status != Refund.Status.REQUESTED:
        # Stripe's "already refunded" came twice (the admin and reconciliation asked at once): the first
        # answer made it stand in, and a list read since may have ended that; a second answer changes nothing.
        return refund
    refund.status, refund.failure_reason, refund.updated = (
        Refund.Status.SUCCEEDED,
        clawbacks.ALREADY_REFUNDED,
        timezone.now(),
    )
    refund.save()
    CardDeposit.objects.filter(pk=refund.deposit_id).update(
        needs_look="Stripe says the charge was already refunded: the money stays taken back; check Stripe's refunds"
    )
    payments_metrics.refund_status(refund.status)
    return refund


@transaction.atomic
def refund_update(*, refund_id: int, stripe_id: str, status: str, reason: str = "") -> Refund:
    """Stripe's word on a refund of ours; failed or canceled gives the money back once."""
    if status in Refund.ENDED:
        return refund_ended(refund_id=refund_id, status=status, reason=reason, stripe_id=stripe_id)
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    if refund.status in (*Refund.ENDED, Refund.Status.SUCCEEDED):
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
    """A refund that did not happen: its money is the member's again (payments.clawbacks), with an entry of its own."""
    deposit_id = Refund.objects.values_list("deposit_id", flat=True).get(pk=refund_id)
    deposit = CardDeposit.locked(deposit_id, "entry")
    refund = Refund.objects.select_for_update(of=("self",)).get(pk=refund_id)
    # failed and canceled are final; succeeded is not: a refund can fail days after it succeeded.
    if refund.status in Refund.ENDED:
        return refund
    refund.status, refund.failure_reason = status, reason[:60]
    refund.stripe_id = stripe_id or refund.stripe_id
    refund.updated = timezone.now()
    refund.save()
    clawbacks.follow(deposit)
    refund.refresh_from_db()
    payments_metrics.refund_status(status)
    # What it moved (given back, or on to a dispute that withdrew the money meanwhile) is clawbacks' own line.
    logger.warning("card deposit refund %s: deposit=%s refund=%s", status, refund.deposit_id, refund.public_id)
    return refund


def stood_in(refund: Refund) -> bool:
    """Whether Stripe answered this refund of ours that the card was already refunded (made elsewhere): it sent
    nothing to the card, and the money it took stands for those refunds (payments.clawbacks)."""
    return refund.stripe_id is None and refund.failure_reason in (clawbacks.ALREADY_REFUNDED, clawbacks.STOOD_FOR)


# Why a refund ends that Stripe could not be asked for: version 3 credited some deposits with a made-up
# reference (migration payments 0003 emptied it) and refunded one against it, and Stripe holds no charge of
# that deposit at all.
NO_CHARGE = "no charge in Stripe to refund"


def refund_finish(refund: Refund) -> Refund:
    """A refund whose answer was lost: found in Stripe's list by its UUID, or asked again (none was made).

    Version 3 refunded some deposits whose reference it had made up (`missing-N`), against no charge: those
    are first paired with the charge its connector described "MyiBot deposit N" (_paired_with_its_charge).
    """
    deposit = refund.deposit
    if not (deposit.payment_intent or deposit.reference):
        deposit = _paired_with_its_charge(refund)
        refund = Refund.objects.select_related("deposit").get(pk=refund.pk)
        if deposit is None:
            return refund
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


def _paired_with_its_charge(refund: Refund) -> CardDeposit | None:
    """Version 3's refund of a deposit with no charge reference: the deposit with its connector's charge named,
    so that the refund is finished as any other (found in Stripe's list, asked, or standing in for refunds
    made in Stripe's dashboard meanwhile); None when the refund was settled here instead.

    Its money was taken when version 3 asked Stripe to refund a reference Stripe did not know: the card got
    nothing from that. Stripe holding no charge of the deposit at all, none was refunded either: the refund
    fails and the money is the member's again. A charge another deposit already names is left for an operator
    (the refund stays requested and the money taken). StripeFailed when the charges cannot be read.
    """
    deposit = refund.deposit
    found = [
        charge
        for charge in stripe_api.charges_created(
            since=deposit.created - timedelta(days=1), until=deposit.created + timedelta(days=1)
        )
        if charge.description.strip() == deposit.description
        and charge.paid
        and charge.amount_cents == deposit.amount_cents
    ]
    if not found:
        refund_ended(refund_id=refund.pk, status=Refund.Status.FAILED, reason=NO_CHARGE)
        CardDeposit.objects.filter(pk=deposit.pk).update(
            needs_look="version 3 refund, and Stripe holds no charge of this deposit: the money is the member's again"
        )
        return None
    charge = found[0]
    with transaction.atomic():
        deposit = CardDeposit.locked(deposit.pk)
        if len(found) > 1 or charges.named_elsewhere(charge.references, deposit_id=deposit.pk):
            deposit.needs_look = f"version 3 refund: its charge {charge.id} is not this deposit's alone; settle by hand"
            deposit.save(update_fields=["needs_look"])
            return None
        deposit.reference = deposit.reference or charge.id
        deposit.needs_look = f"version 3 refund paired with its charge {charge.id} by description"
        deposit.save(update_fields=["reference", "needs_look"])
    logger.warning("card deposit paired with its charge: deposit=%s charge=%s", deposit.pk, charge.id)
    return deposit


def charge_refund_uncredited(
    *, deposit_id: int, reference: str, operator=None, references: set[str] = frozenset()
) -> Refund:
    """Version 3: refund a connector's charge that was never credited; the ledger never had the money.

    references: every id Stripe gives the charge; one another deposit names was credited there, and is
    never refunded from here (AlreadyRefunded): the member would keep money the card got back."""
    if not stripe_api.configured():
        raise StripeNotConfigured
    with transaction.atomic():
        deposit = CardDeposit.objects.select_for_update(of=("self",)).get(pk=deposit_id)
        if deposit.entry_id or deposit.refunds.filter(STANDING).exists():
            raise AlreadyRefunded
        if charges.named_elsewhere({reference, *references}, deposit_id=deposit.pk):
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


def refund_event_seen(found: stripe_api.RefundAnswer) -> str | None:
    """A refund event: the refund applied, then, where a refund of ours stands in for refunds made elsewhere,
    Stripe's whole list of the charge's refunds read. The event stands applied either way: a list that cannot
    be read now is read by reconciliation (a refused read must not make Stripe send the event forever)."""
    said = refund_seen(found)
    deposit = paid_deposit_charged_by(charge=found.charge, payment_intent=found.payment_intent)
    if said is not None and deposit is not None:
        try:
            stood_in_listed(deposit, timeout=stripe_api.EVENT_READ_SECONDS)
        except stripe_api.StripeFailed as failed:
            logger.warning("card deposit's refunds not read from Stripe: deposit=%s why=%s", deposit.pk, failed)
    return said


@transaction.atomic
def _dashboard_refund(*, deposit_id: int, found: stripe_api.RefundAnswer) -> Refund:
    deposit = CardDeposit.locked(deposit_id, "entry")
    known = Refund.objects.filter(stripe_id=found.id).first()
    if known is not None:  # another event about it got here first
        return refund_update(refund_id=known.pk, stripe_id=found.id, status=found.status, reason=found.failure_reason)
    status = found.status if found.status in Refund.Status.values else Refund.Status.PENDING
    refund = Refund.objects.create(
        deposit=deposit,
        stripe_id=found.id,
        amount_cents=found.amount_cents,
        status=status,
        clawback=True,
        failure_reason=found.failure_reason[:60],
    )
    # The card is refunded whatever the balance holds: taken back even below zero (the member then owes it).
    clawbacks.follow(deposit)
    refund.refresh_from_db()
    if clawbacks.refunded_beyond_the_deposit(deposit):
        deposit.needs_look = f"refunded in Stripe's dashboard beyond what was left to take back ({found.id})"[:160]
        deposit.save(update_fields=["needs_look"])
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
    listed_from = timezone.now()
    said = [said for found in stripe_api.refunds_of(reference, timeout=timeout) if (said := refund_seen(found))]
    with transaction.atomic():
        clawbacks.stood_in_done(CardDeposit.locked(deposit.pk, "entry"), listed_from=listed_from)
    return said


def stood_in_listed(deposit: CardDeposit, *, timeout: float = stripe_api.READ_SECONDS) -> list[str]:
    """For a deposit with a refund of ours standing in for refunds made elsewhere: Stripe's whole list of the
    charge's refunds, recorded, which ends the standing in. Nothing (and no request) for any other deposit;
    StripeFailed when the list cannot be read (the refund stays standing in: reconciliation tries again)."""
    if not deposit.refunds.filter(clawbacks.STANDING_IN).exists():
        return []
    return refunds_of_deposit_seen(deposit, timeout=timeout)
