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

# How long a pending card deposit holds its amount against the member's daily limit: <Pay> ends well
# inside this (two card attempts), and a call that hung up mid-payment gives the room back after it.
PENDING_HOLD = timedelta(minutes=15)
ATTEMPT_WINDOW = timedelta(hours=1)
FAILURES_IN_A_ROW = 3


def member_for_deposit(*, member_id: str) -> Account | None:
    """The active account a family may pay into, or None (unknown or not verified). A lock does not matter."""
    return Account.objects.filter(member_id=member_id, status=Account.Status.ACTIVE).first()


def card_max_cents() -> int:
    return settings.DEPOSIT_CARD_MAX_DOLLARS * 100


def daily_limit_cents() -> int:
    return settings.DAILY_DEPOSIT_LIMIT_DOLLARS * 100


def deposited_today_cents(*, account: Account, now: datetime, excluding: int | None = None) -> int:
    """Card deposits to the member since local midnight: paid ones, and pending ones still inside PENDING_HOLD."""
    start, end = local_time.day_bounds(now)
    counted = (
        CardDeposit.objects.filter(account=account, created__gte=start, created__lt=end)
        .filter(
            Q(status=CardDeposit.Status.PAID) | Q(status=CardDeposit.Status.PENDING, created__gt=now - PENDING_HOLD)
        )
        .exclude(pk=excluding)
    )
    return counted.aggregate(total=Sum("amount_cents"))["total"] or 0


def deposit_room_cents(*, account: Account, now: datetime | None = None, excluding: int | None = None) -> int:
    """The most a family may pay in now: one deposit's maximum, or what is left of today's, whichever is less."""
    now = now or timezone.now()
    left_today = max(daily_limit_cents() - deposited_today_cents(account=account, now=now, excluding=excluding), 0)
    return min(card_max_cents(), left_today)


def attempts_refusal(*, line: str, now: datetime | None = None) -> str | None:
    """Why a lookup or <Pay> from this line would be refused now ("line", "service"), or None. Reads only."""
    now = now or timezone.now()
    start, end = local_time.day_bounds(now)
    counts = DepositAttempt.objects.aggregate(
        line_today=Count("pk", filter=Q(line=line, created__gte=start, created__lt=end)),
        service_hour=Count("pk", filter=Q(created__gt=now - ATTEMPT_WINDOW)),
    )
    if counts["line_today"] >= settings.DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY:
        return "line"
    if counts["service_hour"] >= settings.DEPOSIT_ATTEMPTS_PER_HOUR:
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
    """Card deposits an operator should look at: credited past a limit, no reference, the same charge twice."""
    return list(CardDeposit.objects.exclude(needs_look="").select_related("account").order_by("-created")[:count])


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
