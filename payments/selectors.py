"""Reads about card deposits: what the deposit line and the dashboard ask, each one query where it can be."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import Account
from myibot import local_time
from payments.models import CardDeposit, DepositAttempt

# <Pay> ends well inside this (two card attempts): a card deposit still pending after it lost its
# action request, and may have been charged. It keeps holding its amount against the member's daily
# limit until it is decided (reconcile_card_deposits), so that a family is never invited to pay twice.
PENDING_HOLD = timedelta(minutes=15)
ATTEMPT_WINDOW = timedelta(hours=1)
FAILURES_IN_A_ROW = 3
# Failed card payments to one member in a day after which it takes no more card deposits that day:
# card testing spread over many lines stops at the member it aims at.
FAILED_PAYMENTS_PER_MEMBER_PER_DAY = 6
WITHHELD_LINE = "withheld"


def member_for_deposit(*, member_id: str) -> Account | None:
    """The active account a family may pay into, or None (unknown or not verified). A lock does not matter."""
    return Account.objects.filter(member_id=member_id, status=Account.Status.ACTIVE).first()


def card_max_cents() -> int:
    return settings.DEPOSIT_CARD_MAX_DOLLARS * 100


def daily_limit_cents() -> int:
    return settings.DAILY_DEPOSIT_LIMIT_DOLLARS * 100


def _today(*, account: Account, now: datetime, excluding: int | None) -> dict[str, int | None]:
    """The member's card deposits since local midnight: what is held (paid, or not yet decided), and failures."""
    start, end = local_time.day_bounds(now)
    return (
        CardDeposit.objects.filter(account=account, created__gte=start, created__lt=end)
        .exclude(pk=excluding)
        .aggregate(
            held=Sum("amount_cents", filter=Q(status__in=[CardDeposit.Status.PAID, CardDeposit.Status.PENDING])),
            failures=Count("pk", filter=Q(status=CardDeposit.Status.FAILED)),
        )
    )


def deposit_room_cents(*, account: Account, now: datetime | None = None, excluding: int | None = None) -> int:
    """The most a family may pay in now: one deposit's maximum, or what is left of today's, whichever is less.

    0 once the member has had FAILED_PAYMENTS_PER_MEMBER_PER_DAY failed payments today. One query.
    """
    today = _today(account=account, now=now or timezone.now(), excluding=excluding)
    if (today["failures"] or 0) >= FAILED_PAYMENTS_PER_MEMBER_PER_DAY:
        return 0
    left_today = max(daily_limit_cents() - (today["held"] or 0), 0)
    return min(card_max_cents(), left_today)


def attempts_refusal(*, line: str, trusted: bool, now: datetime | None = None) -> str | None:
    """Why a member-ID lookup or a payment from this line would be refused now ("line", "service"), or None.

    Only failed tries count: member IDs that cannot receive deposits, and card payments that failed.
    A number gets DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY of them; withheld numbers are not held to it (they
    share one line, and one prankster would close it for every family who withholds). The service's
    DEPOSIT_ATTEMPTS_PER_HOUR stops only callers whose number no carrier vouches for (withheld, or
    without STIR/SHAKEN attestation A): a flood of spoofed calls never shuts out a family on a mobile.
    """
    now = now or timezone.now()
    start, end = local_time.day_bounds(now)
    failed = Q(status=CardDeposit.Status.FAILED)
    if line != WITHHELD_LINE:
        line_today = (
            DepositAttempt.objects.filter(line=line, created__gte=start, created__lt=end).count()
            + CardDeposit.objects.filter(failed, line=line, created__gte=start, created__lt=end).count()
        )
        if line_today >= settings.DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY:
            return "line"
    if not trusted:
        since = now - ATTEMPT_WINDOW
        service_hour = (
            DepositAttempt.objects.filter(created__gt=since).count()
            + CardDeposit.objects.filter(failed, created__gt=since).count()
        )
        if service_hour >= settings.DEPOSIT_ATTEMPTS_PER_HOUR:
            return "service"
    return None


def card_deposit(*, deposit_id: int) -> CardDeposit:
    return CardDeposit.objects.get(pk=deposit_id)


def by_day_and_status(*, days: int, now: datetime | None = None) -> QuerySet:
    """Card deposits per local day and status over the last `days` days: (day, status, count, cents)."""
    now = now or timezone.now()
    start, _ = local_time.day_bounds(now - timedelta(days=days - 1))
    return (
        CardDeposit.objects.filter(created__gte=start).values("created", "status", "amount_cents").order_by("created")
    )


@dataclass(frozen=True)
class FailingLine:
    line: str
    failures: int
    last: datetime
    last_call_sid: str


def needing_a_look(*, now: datetime | None = None, count: int = 20) -> list[CardDeposit]:
    """Card deposits an operator should look at: credited past a limit, no reference, the same charge twice,
    and those still pending after <Pay> must have ended (their action request was lost: the card may
    have been charged; reconcile_card_deposits settles them)."""
    now = now or timezone.now()
    stuck = Q(status=CardDeposit.Status.PENDING, created__lt=now - PENDING_HOLD)
    odd = CardDeposit.objects.filter(~Q(needs_look="") | stuck)
    return list(odd.select_related("account").order_by("-created")[:count])


def lines_failing_in_a_row(*, now: datetime | None = None) -> list[FailingLine]:
    """Lines whose last FAILURES_IN_A_ROW card payments today all failed: card testing, or a family in trouble."""
    now = now or timezone.now()
    start, end = local_time.day_bounds(now)
    today = (
        CardDeposit.objects.filter(created__gte=start, created__lt=end)
        .exclude(status=CardDeposit.Status.PENDING)
        .order_by("line", "-created")
        .values_list("line", "status", "created", "call_sid")
    )
    failing: dict[str, FailingLine] = {}
    streak: dict[str, int] = {}
    broken: set[str] = set()
    for line, status, created, call_sid in today:
        if line in broken:
            continue
        if status != CardDeposit.Status.FAILED:
            broken.add(line)
            continue
        streak[line] = streak.get(line, 0) + 1
        if line not in failing:
            failing[line] = FailingLine(line=line, failures=0, last=created, last_call_sid=call_sid)
    return [
        FailingLine(line=item.line, failures=streak[item.line], last=item.last, last_call_sid=item.last_call_sid)
        for item in failing.values()
        if streak[item.line] >= FAILURES_IN_A_ROW
    ]
