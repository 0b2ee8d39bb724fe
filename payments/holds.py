"""Card money's hold: it counts in the balance at once, but cannot leave by transfer before its release.

A card deposit's money is released at local midnight after the charge plus CARD_FUNDS_HOLD_HOURS
(payments.charges.release_at), so the date the member hears is exact; an early fraud warning keeps it
held past that until an operator releases it (held_for_review). What was already taken back (a refund,
a dispute) is no longer held: it is no longer on the balance. Registered with accounts.holds at start-up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction

from accounts import selectors
from accounts.holds import NOTHING_HELD, Held
from accounts.models import LedgerEntry
from myibot.db import Columns, built_once, converted, fetch_all, row_to_instance
from myibot.local_time import local_date
from payments.models import CardDeposit


def card_money_held(account_id: int, now: datetime) -> Held:
    """What the account's card deposits still hold: one query, on the account's deposits (every transfer asks)."""
    return _held(fetch_all(_held_sql(), _held_params(account_id, now)))


def card_money_and_last_deposit(
    account_id: int, now: datetime, *, deposits_since: datetime
) -> tuple[Held, LedgerEntry | None]:
    """What card_money_held says, and the account's last card deposit since deposits_since whose money is all on
    the account (accounts.selectors.last_card_deposit): both in one round trip, for a member hearing the balance."""
    rows = fetch_all(
        _held_and_last_deposit_sql(),
        [*_held_params(account_id, now), *selectors.last_card_deposit_params(account_id, deposits_since)],
    )
    held = _held([row[1:4] for row in rows if row[0] == 0])
    last = [row_to_instance(LedgerEntry, row[4:]) for row in rows if row[0] == 1]
    return held, (last[0] if last else None)


def _held_params(account_id: int, now: datetime) -> list[object]:
    return [account_id, CardDeposit.Status.PAID, connection.ops.adapt_datetimefield_value(now), True]


def _held(rows: list[tuple]) -> Held:
    total = NOTHING_HELD
    for left, release, for_review in rows:
        release, for_review = converted(CardDeposit, ("release_at", "held_for_review"), (release, for_review))
        if left > 0:
            # A release at local midnight is free from that date on; a release later in a day, from the next.
            free_from = local_date(release - timedelta(microseconds=1)) + timedelta(days=1) if release else None
            total += Held(int(left), None if for_review else free_from)
    return total


@built_once
def _held_sql() -> str:
    """A paid deposit's money still on the account (taken back is negative, given back positive), its release, and
    whether an operator must release it: for each of an account's deposits whose release is ahead or under review."""
    deposit, entry = Columns(CardDeposit), Columns(LedgerEntry)
    taken = f"SELECT SUM({entry.amount_cents}) FROM {entry.table} WHERE {entry.corrects} = {deposit.entry}"  # noqa: S608 - names from model metadata
    return (
        f"SELECT {deposit.amount_cents} + COALESCE(({taken}), 0), {deposit.release_at}, {deposit.held_for_review} "  # noqa: S608 - names from model metadata, values as parameters
        f"FROM {deposit.table} WHERE {deposit.account} = %s AND {deposit.status} = %s "
        f"AND ({deposit.release_at} > %s OR {deposit.held_for_review} = %s)"
    )


@built_once
def _held_and_last_deposit_sql() -> str:
    """_held_sql's rows (marked 0) and the last card deposit's (marked 1), each padded with the other's columns."""
    ledger_columns = len(LedgerEntry._meta.concrete_fields)
    return (
        f"SELECT 0, held.*, {', '.join(['NULL'] * ledger_columns)} FROM ({_held_sql()}) AS held "  # noqa: S608 - SQL built from model metadata, values as parameters
        f"UNION ALL SELECT 1, NULL, NULL, NULL, last.* FROM ({selectors.last_card_deposit_sql()}) AS last"
    )


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
