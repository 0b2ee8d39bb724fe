"""Card money's hold: it counts in the balance at once, but cannot leave by transfer before its release.

A card deposit's money is released at local midnight after the charge plus CARD_FUNDS_HOLD_HOURS
(payments.charges.release_at), so the date the member hears is exact; an early fraud warning keeps it
held past that until an operator releases it (held_for_review). What was already taken back (a refund,
a dispute) is no longer held: it is no longer on the balance. Registered with accounts.holds at start-up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, Sum

from accounts.holds import NOTHING_HELD, Held
from accounts.models import LedgerEntry
from myibot.local_time import local_date
from payments.models import CardDeposit


def card_money_held(account_id: int, now: datetime) -> Held:
    """One query for an account with no card money held (the usual case), two otherwise."""
    deposits = list(
        CardDeposit.objects.filter(account_id=account_id, status=CardDeposit.Status.PAID)
        .filter(Q(release_at__gt=now) | Q(held_for_review=True))
        .values_list("entry_id", "amount_cents", "release_at", "held_for_review")
    )
    if not deposits:
        return NOTHING_HELD
    taken = dict(
        LedgerEntry.objects.filter(corrects_id__in=[entry for entry, *_ in deposits])
        .values("corrects_id")
        .annotate(total=Sum("amount_cents"))
        .values_list("corrects_id", "total")
    )
    total = NOTHING_HELD
    for entry, amount, release, for_review in deposits:
        left = amount + (taken.get(entry) or 0)  # taken back is negative, given back positive
        if left > 0:
            # A release at local midnight is free from that date on; a release later in a day, from the next.
            free_from = local_date(release - timedelta(microseconds=1)) + timedelta(days=1) if release else None
            total += Held(left, None if for_review else free_from)
    return total


@transaction.atomic
def release(*, deposit_id: int, now: datetime) -> CardDeposit:
    """An operator's "Release hold": the deposit's money may leave now (an early fraud warning looked at)."""
    deposit = CardDeposit.objects.select_for_update().get(pk=deposit_id)
    if deposit.status == CardDeposit.Status.PAID:
        deposit.held_for_review = False
        if deposit.release_at and deposit.release_at > now:
            deposit.release_at = now
        deposit.save(update_fields=["held_for_review", "release_at"])
    return deposit
