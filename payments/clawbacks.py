"""What a card deposit has lost to refunds and disputes, kept in the ledger as Stripe's facts say.

Events come late, twice and out of order, and refunds and disputes of one charge meet: a refund can
take the money before a dispute withdraws it and fail afterwards, a dispute can be reinstated in part
after a refund, a refund of ours can meet "already refunded" for a refund whose event has not come.
Moving money event by event, each such meeting needs a rule of its own. Instead, each handler records
what Stripe said (a refund's status, a dispute's withdrawal and what was reinstated), and `follow`
works out what the member should have lost for the deposit and writes only the difference:

- refunds: the refunds Stripe may still send to the card (any status but failed or canceled), never
  more than the deposit;
- disputes: what Stripe withdrew and kept (the dispute's amount, less what it reinstated), never
  more than the refunds left of the deposit: money a refund sent to the card is not taken twice.

Each has its own entries (taken back: `refund`, `dispute`; given back: `returned`, `reinstated`),
so the member's history says which. The same facts in any order end in the same ledger.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models import Q, Sum
from django.utils import timezone

from accounts import ledger
from accounts.models import LedgerEntry
from payments.models import CardDeposit, Dispute, Refund

logger = logging.getLogger(__name__)

# Ours, refused by Stripe because the charge was already refunded: it stands for the refunds made elsewhere
# (whose events have not come) until a whole list of the charge's refunds is recorded (stood_in_done).
ALREADY_REFUNDED = "already refunded in Stripe"
STOOD_FOR = "stood for refunds made in Stripe"
STANDING_IN = Q(status=Refund.Status.SUCCEEDED, failure_reason=ALREADY_REFUNDED, stripe_id__isnull=True)

_REFUNDS = (LedgerEntry.Kind.REFUND, LedgerEntry.Kind.REFUND_RETURNED)
_DISPUTES = (LedgerEntry.Kind.DISPUTE, LedgerEntry.Kind.REINSTATED)


def follow(deposit: CardDeposit) -> list[str]:
    """Bring what the deposit has lost in the ledger to what Stripe's recorded facts say; what moved, in words.

    Under the account's and the deposit's locks (CardDeposit.locked), after the facts are saved.
    """
    if deposit.entry_id is None:
        return []  # never credited (version 3's connector charge refunded as such): the member lost nothing
    entry = deposit.entry
    refunds = list(deposit.refunds.select_for_update(of=("self",)).order_by("pk"))
    refunded = sum(refund.amount_cents for refund in refunds if refund.status not in Refund.ENDED)
    disputes = list(deposit.disputes.select_for_update().order_by("pk"))
    kept = sum(dispute.kept_cents for dispute in disputes)
    for_refunds = min(entry.amount_cents, refunded)
    for_disputes = min(entry.amount_cents - for_refunds, kept)
    moves = [
        (for_refunds - _lost(entry, _REFUNDS), LedgerEntry.Kind.REFUND, LedgerEntry.Kind.REFUND_RETURNED),
        (for_disputes - _lost(entry, _DISPUTES), LedgerEntry.Kind.DISPUTE, LedgerEntry.Kind.REINSTATED),
    ]
    said = []
    # What goes back first: a refund that failed may give back what a dispute then takes.
    for delta, take, give in sorted(moves, key=lambda move: move[0]):
        if delta < 0:
            given = ledger.card_money_give_back(entry=entry, amount_cents=-delta, kind=give)
            _link_given_back(given, refunds if give == LedgerEntry.Kind.REFUND_RETURNED else disputes)
            said.append(f"{-delta} cents given back ({give})")
        elif delta > 0:
            taken = ledger.card_money_take_back(entry=entry, amount_cents=delta, kind=take, owing=True)
            _link_taken(taken, refunds if take == LedgerEntry.Kind.REFUND else disputes)
            said.append(f"{delta} cents taken back ({take})")
    if said:
        logger.warning("card deposit money follows Stripe: deposit=%s %s", deposit.pk, "; ".join(said))
    return said


def refunded_beyond_the_deposit(deposit: CardDeposit) -> bool:
    """Refunds that may still reach the card, with what disputes keep, come to more than the deposit: the card
    gets more than the member lost (the service's loss), worth an operator's look."""
    standing = deposit.refunds.exclude(status__in=Refund.ENDED).exclude(STANDING_IN)  # not ours standing in
    refunded = sum(refund.amount_cents for refund in standing)
    kept = sum(dispute.kept_cents for dispute in deposit.disputes.all())
    return refunded + kept > deposit.entry.amount_cents


def _lost(entry: LedgerEntry, kinds: tuple[str, str]) -> int:
    """What the deposit's entries of these kinds took back, less what they gave back."""
    entries = LedgerEntry.objects.filter(corrects=entry, kind__in=kinds)
    return -(entries.aggregate(total=Sum("amount_cents"))["total"] or 0)


def stood_in_done(deposit: CardDeposit, *, listed_from: datetime) -> None:
    """A whole list of the charge's refunds, read from listed_from on, was just recorded, each with its status:
    a refund of ours that stood for refunds made elsewhere before that read is done (canceled), since those
    refunds now count themselves. One that began standing in meanwhile is not: the list may predate its refunds.

    Only a whole list can say so: a single refund's event cannot tell whether it is one ours stood for (a
    refund that failed before ours was refused is not), and counting ours meanwhile only keeps money taken
    that may be the member's, never gives back money the card has. Under the account's and deposit's locks.
    """
    stood_in = deposit.refunds.filter(STANDING_IN, updated__lt=listed_from)
    if stood_in.update(status=Refund.Status.CANCELED, failure_reason=STOOD_FOR, updated=timezone.now()):
        follow(deposit)


def _link_taken(taken: LedgerEntry, rows: list[Refund] | list[Dispute]) -> None:
    """The row a take is for, where one has none yet (a refund still standing, the dispute)."""
    for row in rows:
        standing = not isinstance(row, Refund) or row.status not in Refund.ENDED
        if standing and row.taken_by_id is None:
            row.taken_by = taken
            row.save(update_fields=["taken_by"])
            return


def _link_given_back(given: LedgerEntry, rows: list[Refund] | list[Dispute]) -> None:
    """The row a give-back is for, where one took and has given nothing back (a refund that ended, the dispute)."""
    for row in rows:
        ended = not isinstance(row, Refund) or row.status in Refund.ENDED
        if ended and row.taken_by_id is not None and row.given_back_by_id is None:
            row.given_back_by = given
            row.save(update_fields=["given_back_by"])
            return
