"""Card money's hold: it counts in the balance at once, but cannot leave by transfer before its release.

A card deposit's money is released at local midnight after the charge plus CARD_FUNDS_HOLD_HOURS
(payments.charges.release_at), so the date the member hears is exact; an early fraud warning keeps it
held past that until an operator releases it (held_for_review). What was already taken back (a refund,
a dispute) is no longer held: it is no longer on the balance. Registered with accounts.holds at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import BigIntegerField

from accounts import selectors
from accounts.holds import NOTHING_HELD, Held
from accounts.models import LedgerEntry
from myibot.db import (
    Columns,
    Question,
    built_once,
    cast_types,
    converted,
    fetch_all,
    row_to_instance,
)
from myibot.local_time import local_date
from payments.models import CardDeposit


def card_money_held(account_id: int, now: datetime) -> Held:
    """What the account's card deposits still hold: one query, on the account's deposits (every transfer asks)."""
    return _held(fetch_all(_held_sql(), _held_params(account_id, now)))


# How long the balance names the last card deposit a family made.
LAST_DEPOSIT_NEWS = timedelta(days=7)


@dataclass(frozen=True)
class CardMoney:
    """What the balance says of card money: what is held now, and the week's last card deposit whose money is
    all on the account (accounts.selectors.last_card_deposit_sql), or None."""

    held: Held
    last_deposit: LedgerEntry | None


def card_money_queries(account: str) -> list[tuple[str, list[str]]]:
    """What is held, and the last card deposit since LAST_DEPOSIT_NEWS ago, with the account named by account."""
    return [
        (_held_sql_for(account), _held_types()),
        (selectors.last_card_deposit_sql_for(account), cast_types(LedgerEntry)),
    ]


# What the balance says of card money (CardMoney): read with the call where the answer leads to the balance
# (ivr.models.CallSession.find_with), asked on its own otherwise (myibot.db.ask).
CARD_MONEY = Question(
    "card money",
    queries=card_money_queries,
    params=lambda account, entry, now: [
        *_held_params(account, now),
        *selectors.last_card_deposit_params(account, now - LAST_DEPOSIT_NEWS),
    ],
    answer=lambda rows: CardMoney(_held(rows[0]), row_to_instance(LedgerEntry, rows[1][0]) if rows[1] else None),
)


def _amount_check_queries(account: str) -> list[tuple[str, list[str]]]:
    return [(_held_sql_for(account), _held_types()), (selectors.sent_today_sql_for(account), [_big_integer()])]


# What an amount typed is checked against before the recipient is asked (accounts.ledger.transfer_check): the
# card money held and what is left of today's limit, read with the call. Card money is the only source of held
# money registered with accounts.holds (a test keeps it so); the transfer itself asks the registry, locked.
AMOUNT_CHECK = Question(
    "what an amount is checked against",
    queries=_amount_check_queries,
    params=lambda account, entry, now: [*_held_params(account, now), *selectors.sent_today_params(account, now)],
    answer=lambda rows: (_held(rows[0]), selectors.daily_room_from(rows[1])),
)


def _held_params(account: object, now: datetime) -> list[object]:
    return [account, CardDeposit.Status.PAID, connection.ops.adapt_datetimefield_value(now), True]


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
    return _held_sql_for("%s")


def _held_sql_for(account: str) -> str:
    """_held_sql, with the account named by account (a placeholder, or a subquery that finds it)."""
    deposit, entry = Columns(CardDeposit), Columns(LedgerEntry)
    taken = f"SELECT SUM({entry.amount_cents}) FROM {entry.table} WHERE {entry.corrects} = {deposit.entry}"  # noqa: S608 - names from model metadata
    return (
        f"SELECT {deposit.amount_cents} + COALESCE(({taken}), 0), {deposit.release_at}, {deposit.held_for_review} "  # noqa: S608 - names from model metadata, values as parameters
        f"FROM {deposit.table} WHERE {deposit.account} = {account} AND {deposit.status} = %s "
        f"AND ({deposit.release_at} > %s OR {deposit.held_for_review} = %s)"
    )


def _held_types() -> list[str]:
    # What is left is the amount plus a SUM: a bigint on PostgreSQL.
    release, review = (CardDeposit._meta.get_field(name) for name in ("release_at", "held_for_review"))
    return [_big_integer(), release.cast_db_type(connection), review.cast_db_type(connection)]


def _big_integer() -> str:
    return BigIntegerField().cast_db_type(connection)


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
