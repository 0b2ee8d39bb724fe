"""Reads: what the phone and the admin ask of accounts, each one query where it can be (HackSoft's selectors).

Nothing here writes. Services (ledger, identity, confirmations) and the phone's
steps and views call these rather than writing queries of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts import codes
from accounts.models import (
    Account,
    LedgerEntry,
    Recipient,
    Registration,
    SharedLine,
    SignInSpray,
    Transfer,
)
from myibot import local_time
from myibot.db import Columns, Question, built_once, cast_types, fetch_all, row_to_instance, select_columns

# Money ------------------------------------------------------------------------


def transfer_limit_cents() -> int:
    return settings.TRANSFER_LIMIT_DOLLARS * 100


def deposit_limit_cents() -> int:
    """The most an operator's deposit may be (DEPOSIT_MAX_DOLLARS)."""
    return settings.DEPOSIT_MAX_DOLLARS * 100


def daily_limit_cents() -> int:
    return settings.DAILY_TRANSFER_LIMIT_DOLLARS * 100


def daily_room_cents(*, account: Account, now: datetime | None = None) -> int:
    """What the account may still send today (in TIME_ZONE): the limit less what it sent since local
    midnight; a rejected transfer gives its room back. One query, on the (account, created) index.

    Today is the calendar day in TIME_ZONE: a range on created, not a date of it, so that the index serves it.
    """
    return daily_room_from(fetch_all(_sent_today_sql(), sent_today_params(account.pk, now or timezone.now())))


def sent_today_params(account: object, now: datetime) -> list[object]:
    start, end = local_time.day_bounds(now)
    adapt = connection.ops.adapt_datetimefield_value
    return [account, adapt(start), adapt(end), Transfer.Status.REJECTED]


def daily_room_from(rows: list[tuple]) -> int:
    """daily_room_cents from what _sent_today_sql read (one row: the sum, or NULL)."""
    [(sent,)] = rows
    return max(daily_limit_cents() - int(sent or 0), 0)


@built_once
def _sent_today_sql() -> str:
    """What the account sent between two moments, rejected transfers left out: written once, as every amount a
    member enters asks it."""
    return sent_today_sql_for("%s")


def sent_today_sql_for(account: str) -> str:
    """_sent_today_sql, with the account named by account (a placeholder, or a subquery that finds it)."""
    transfer = Columns(Transfer)
    return (
        f"SELECT SUM({transfer.amount_cents}) FROM {transfer.table} WHERE {transfer.account} = {account} "  # noqa: S608 - names from model metadata, values as parameters
        f"AND {transfer.created} >= %s AND {transfer.created} < %s AND NOT {transfer.status} = %s"
    )


def ledger_recent(*, account: Account, count: int = 5) -> list[LedgerEntry]:
    """The account's last entries, newest first, with what each names: one query, however long the history."""
    return list(
        LedgerEntry.objects.filter(account=account)
        .select_related("transfer__recipient")
        .order_by("-created", "-id")[:count]
    )


def last_card_deposit_params(account: object, since: datetime) -> list[object]:
    return [account, LedgerEntry.Kind.CARD, connection.ops.adapt_datetimefield_value(since)]


@built_once
def last_card_deposit_sql() -> str:
    """The account's newest card deposit since a moment whose money is all on the account (none taken back, or
    all of it given back: a refund that failed, a dispute won), as its ledger entry's columns, or no row: on the
    recent index. Written once: the balance asks it, with what is held (payments.holds), at every hearing."""
    return last_card_deposit_sql_for("%s")


def last_card_deposit_sql_for(account: str) -> str:
    """last_card_deposit_sql, with the account named by account (a placeholder, or a subquery that finds it)."""
    entry, correction = Columns(LedgerEntry), Columns(LedgerEntry, alias="correction")
    taken_back = (
        f"SELECT SUM({correction.amount_cents}) FROM {correction.table} WHERE {correction.corrects} = {entry.id}"  # noqa: S608 - names from model metadata
    )
    return (
        f"SELECT {select_columns(LedgerEntry)} FROM {entry.table} WHERE {entry.account} = {account} "  # noqa: S608 - names from model metadata, values as parameters
        f"AND {entry.kind} = %s AND {entry.created} >= %s AND COALESCE(({taken_back}), 0) = 0 "
        f"ORDER BY {entry.created} DESC, {entry.id} DESC LIMIT 1"
    )


def ledger_balance_cents(*, account: Account) -> int:
    """The balance recomputed from the ledger, which the cached column must equal."""
    return LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount_cents"))["total"] or 0


# Who a caller is ----------------------------------------------------------------


@dataclass(frozen=True)
class HomeLine:
    """What a caller's number tells us: whose home number it is, their language, and whether PIN-only entry is open."""

    account_id: int
    language: str
    pin_only: bool


def caller_home(*, phone_number: str, now: datetime | None = None) -> HomeLine | None:
    """The account whose home number this is, or None. One query.

    PIN-only entry is open only from a personal number (not a shared line) and
    only while no spray of failed sign-ins is going on. The caller ID's own
    trust (withheld, failed STIR validation) is the caller's concern.
    """
    if not phone_number:
        return None
    now = now or timezone.now()
    found = fetch_all(_caller_home_sql(), [connection.ops.adapt_datetimefield_value(now), phone_number])
    if not found:
        return None
    [(account_id, language, shared, spray)] = found
    return HomeLine(account_id=account_id, language=language, pin_only=not (shared or spray))


@built_once
def _caller_home_sql() -> str:
    """Written once: every call asks it first. Home numbers are unique: one row or none."""
    account, line, spray = Columns(Account), Columns(SharedLine), Columns(SignInSpray)
    return (
        f"SELECT {account.id}, {account.language}, "  # noqa: S608 - names from model metadata, values as parameters
        f"EXISTS (SELECT 1 FROM {line.table} WHERE {line.phone_number} = {account.home_number}), "
        f"EXISTS (SELECT 1 FROM {spray.table} WHERE {spray.until} > %s) "
        f"FROM {account.table} WHERE {account.home_number} = %s"
    )


def is_shared_line(phone_number: str) -> bool:
    return SharedLine.objects.filter(phone_number=phone_number).exists()


REGISTRATION_WINDOW = timedelta(hours=1)


def registration_refusal(*, phone_number: str, now: datetime | None = None) -> str | None:
    """Why a registration from this line would be refused now ("line", "service"), or None. Reads only.

    phone_number is the caller's number ("" when withheld); a shared line counts as no line.
    """
    now = now or timezone.now()
    if Registration.objects.filter(created__gt=now - REGISTRATION_WINDOW).count() >= settings.REGISTRATIONS_PER_HOUR:
        return "service"
    line = registration_line(phone_number)
    if line:
        day_start, day_end = local_time.day_bounds(now)
        today = Registration.objects.filter(line=line, created__gte=day_start, created__lt=day_end).count()
        if today >= settings.REGISTRATIONS_PER_LINE_PER_DAY:
            return "line"
    return None


def registration_limit_reached_until(*, now: datetime | None = None) -> datetime | None:
    """When the service-wide hourly limit lets registrations in again, while it holds (for the dashboard)."""
    now = now or timezone.now()
    recent = Registration.objects.filter(created__gt=now - REGISTRATION_WINDOW).order_by("-created")
    counted = list(recent.values_list("created", flat=True)[: settings.REGISTRATIONS_PER_HOUR])
    if len(counted) < settings.REGISTRATIONS_PER_HOUR:
        return None
    return counted[-1] + REGISTRATION_WINDOW


def registration_line(phone_number: str) -> str:
    if not phone_number or is_shared_line(phone_number):
        return ""
    return codes.line_digest(phone_number)


def member_id_is_taken(member_id: str) -> bool:
    return Account.objects.filter(member_id=member_id).exists()


def spray_active(*, now: datetime | None = None) -> SignInSpray | None:
    return SignInSpray.objects.filter(until__gt=now or timezone.now()).order_by("-until").first()


# Recipients ---------------------------------------------------------------------


def _recipient_queries(account: str) -> list[tuple[str, list[str]]]:
    recipient = Columns(Recipient)
    return [
        (
            f"SELECT {select_columns(Recipient)} FROM {recipient.table} WHERE {recipient.code} = %s "  # noqa: S608 - names from model metadata, values as parameters
            f"AND {recipient.active} = %s ORDER BY {recipient.id} LIMIT 1",
            cast_types(Recipient),
        )
    ]


# The approved recipient a caller may send to by the code typed (the entry), or None (unknown or no longer
# active): read with the call (myibot.db.Question), the lowest id first.
RECIPIENT = Question(
    "the recipient of the code typed",
    queries=_recipient_queries,
    params=lambda account, entry, now: [entry, True],
    answer=lambda rows: row_to_instance(Recipient, rows[0][0]) if rows[0] else None,
    about_entry=True,
)
