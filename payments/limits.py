"""The deposit line's limits (docs/DEPOSITS.md, "Limits"): one payment at a time, failures per line, the card's
own limits, the member's daily room, and issuer declines across the service.

Failures never close a member's deposits: a stranger pressing * six times from six phones must not stop a
family paying. Withheld numbers and numbers no carrier vouches for share one "line" among many callers, so
what they do is counted per line and member, never for the line alone. Each check that must hold under
parallel calls runs under a lock its caller takes (the member's row, and the line's or the card's
transaction-level advisory lock on PostgreSQL, which a transaction pooler keeps: it ends with the transaction).
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, Sum

from accounts.models import Account
from myibot import local_time
from payments.errors import PaymentInProgress, TooManyAttempts
from payments.models import CardDeposit, DepositAttempt

WITHHELD_LINE = "withheld"
# <Pay> as the deposit line asks for it (ivr.twiml.pay): seconds between keys, tries, and the fields it asks.
PAY_TIMEOUT_SECONDS = 10
PAY_MAX_ATTEMPTS = 2
PAY_FIELDS = 4  # card number, expiration date, security code, ZIP code
# A deposit holds its member's (and line's) one slot until its <Pay> must have ended, so that an abandoned call
# does not block a family for long; a charge ends inside Twilio's 15 s, and a crashed one frees its slot after this.
PAY_SLOT = timedelta(seconds=PAY_TIMEOUT_SECONDS * PAY_MAX_ATTEMPTS * PAY_FIELDS) + timedelta(minutes=2)
CHARGING_SLOT = timedelta(minutes=2)
# But a <Pay> has no overall time limit (its timeout is between keys): a caller typing slowly may still be in
# it long after PAY_SLOT. None lasts longer than this (4 fields, 2 tries each, up to 19 keys 10 s apart, and
# the prompts): before then, reconciliation leaves a pending deposit open. The member's daily room is checked
# again as the charge begins (charges._begin_charging), so a slow <Pay> never passes it.
PAY_LONGEST = timedelta(minutes=30)
DECLINE_WINDOW = timedelta(hours=1)
CARD_WEEK = timedelta(days=7)


def in_progress(now: datetime) -> Q:
    """Deposits in <Pay> or being charged now: what holds a slot."""
    return Q(status=CardDeposit.Status.PENDING, created__gt=now - PAY_SLOT) | Q(
        status=CardDeposit.Status.CHARGING, charging_started__gt=now - CHARGING_SLOT
    )


def holding_room(now: datetime) -> Q:
    """Deposits whose amount counts against the member's day: paid, or not yet decided."""
    return in_progress(now) | Q(
        status__in=[CardDeposit.Status.PAID, CardDeposit.Status.CHARGING, CardDeposit.Status.UNCERTAIN]
    )


def card_max_cents() -> int:
    return settings.DEPOSIT_CARD_MAX_DOLLARS * 100


def daily_limit_cents() -> int:
    return settings.DAILY_DEPOSIT_LIMIT_DOLLARS * 100


def room_cents(*, account: Account, now: datetime, excluding: int | None = None, day_of: datetime | None = None) -> int:
    """The most a family may pay in now: one deposit's maximum, or what is left of today's (of day_of's day,
    for a deposit begun before midnight and charged after). One query."""
    start, end = local_time.day_bounds(day_of or now)
    held = (
        CardDeposit.objects.filter(holding_room(now), account=account, created__gte=start, created__lt=end)
        .exclude(pk=excluding)
        .aggregate(held=Sum("amount_cents"))["held"]
        or 0
    )
    return min(card_max_cents(), max(daily_limit_cents() - held, 0))


def lock(kind: str, key: str) -> None:
    """A transaction-level advisory lock on PostgreSQL (the card, the line): held to the end of the transaction.

    SQLite needs none: it lets one transaction write at a time.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [zlib.crc32(kind.encode()) >> 1, _key(key)])


def _key(key: str) -> int:
    # A signed 32-bit int from the key; two keys sharing one only wait for each other a moment.
    return zlib.crc32(key.encode()) - 2**31


def _unvouched_declines(now: datetime) -> int:
    return CardDeposit.objects.filter(
        vouched=False, not_charged_reason=CardDeposit.Reason.ISSUER_DECLINE, decided__gt=now - DECLINE_WINDOW
    ).count()


def lookup_refusal(*, line: str, vouched: bool, now: datetime) -> str | None:
    """Why a member-ID lookup from this line is refused now ("line", "service"), or None.

    Failed lookups count apart, per line; withheld numbers share one bucket among every family who
    withholds, so they are held only by the call's own three tries.
    """
    if line != WITHHELD_LINE:
        start, end = local_time.day_bounds(now)
        failed = DepositAttempt.objects.filter(line=line, created__gte=start, created__lt=end).count()
        if failed >= settings.DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY:
            return "line"
    if not vouched and _unvouched_declines(now) >= settings.DEPOSIT_DECLINES_PER_HOUR:
        return "service"
    return None


def start_check(*, account: Account, line: str, vouched: bool, now: datetime) -> None:
    """Before a new <Pay>: PaymentInProgress or TooManyAttempts. The caller holds the member's lock (and the line's)."""
    busy = CardDeposit.objects.filter(in_progress(now))
    if busy.filter(account=account).exists() or (vouched and busy.filter(line=line).exists()):
        raise PaymentInProgress
    start, end = local_time.day_bounds(now)
    ended_uncharged = CardDeposit.objects.filter(
        status=CardDeposit.Status.NOT_CHARGED, line=line, created__gte=start, created__lt=end
    )
    if not vouched:
        # A line many callers share: its failures count only against the member they were for.
        ended_uncharged = ended_uncharged.filter(account=account)
    if ended_uncharged.count() >= settings.DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY:
        raise TooManyAttempts("line")
    if not vouched and _unvouched_declines(now) >= settings.DEPOSIT_DECLINES_PER_HOUR:
        raise TooManyAttempts("service")


def card_refused(*, deposit: CardDeposit, fingerprint: str, now: datetime) -> bool:
    """Whether the card's own limits refuse this deposit: CARD_MEMBERS_PER_WEEK members in 7 days (every deposit
    that reached charging counts, whatever its outcome), CARD_DAILY_LIMIT_DOLLARS today. Under the card's lock."""
    if not fingerprint:
        return False
    charged = CardDeposit.objects.filter(card_fingerprint=fingerprint, charging_started__isnull=False).exclude(
        pk=deposit.pk
    )
    week = charged.filter(charging_started__gt=now - CARD_WEEK).exclude(account_id=deposit.account_id)
    if week.aggregate(members=Count("account_id", distinct=True))["members"] + 1 > settings.CARD_MEMBERS_PER_WEEK:
        return True
    start, end = local_time.day_bounds(now)
    today = charged.filter(
        charging_started__gte=start,
        charging_started__lt=end,
        status__in=[CardDeposit.Status.PAID, CardDeposit.Status.CHARGING, CardDeposit.Status.UNCERTAIN],
    ).aggregate(cents=Sum("amount_cents"))["cents"]
    return (today or 0) + deposit.amount_cents > settings.CARD_DAILY_LIMIT_DOLLARS * 100
