"""Reads about card deposits: what the deposit line and the dashboard ask, each one query where it can be."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Account
from myibot import local_time
from payments import limits
from payments.models import CardDeposit, Dispute, Refund, StripeEvent

FAILURES_IN_A_ROW = 3


def member_for_deposit(*, member_id: str) -> Account | None:
    """The active account a family may pay into, or None (unknown or not verified). A lock does not matter."""
    return Account.objects.filter(member_id=member_id, status=Account.Status.ACTIVE).first()


def deposit_room_cents(*, account: Account, now: datetime | None = None) -> int:
    return limits.room_cents(account=account, now=now or timezone.now())


card_max_cents = limits.card_max_cents
daily_limit_cents = limits.daily_limit_cents


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
    """Card deposits an operator should look at: flagged (credited past a limit, a late success, the same
    charge twice), uncertain or stuck charging (reconcile_card_deposits --resolve settles them from Stripe),
    and version 3 deposits still pending after their <Pay> (the connector may have charged)."""
    now = now or timezone.now()
    open_charge = Q(status=CardDeposit.Status.UNCERTAIN) | Q(
        status=CardDeposit.Status.CHARGING, charging_started__lt=now - limits.CHARGING_SLOT
    )
    stuck = Q(status=CardDeposit.Status.PENDING, created__lt=now - limits.PAY_SLOT, charged_by="connector")
    odd = CardDeposit.objects.filter(~Q(needs_look="") | open_charge | stuck)
    return list(odd.select_related("account").order_by("-created")[:count])


def lines_failing_in_a_row(*, now: datetime | None = None) -> list[FailingLine]:
    """Lines whose last FAILURES_IN_A_ROW card payments today all failed: card testing, or a family in trouble."""
    now = now or timezone.now()
    start, end = local_time.day_bounds(now)
    today = (
        CardDeposit.objects.filter(created__gte=start, created__lt=end)
        .filter(status__in=[CardDeposit.Status.PAID, CardDeposit.Status.NOT_CHARGED])
        .order_by("line", "-created")
        .values_list("line", "status", "created", "call_sid")
    )
    failing: dict[str, FailingLine] = {}
    streak: dict[str, int] = {}
    broken: set[str] = set()
    for line, status, created, call_sid in today:
        if line in broken:
            continue
        if status != CardDeposit.Status.NOT_CHARGED:
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


# After the call: refunds, disputes, members owing, and Stripe's events -------------------------------

# A failed or canceled refund stays listed this long after Stripe said so (the money was given back).
FAILED_REFUNDS_SHOWN = timedelta(days=30)
# An event received and not applied after this has failed to apply, whatever its row says.
EVENT_GRACE = timedelta(minutes=5)


def refunds_needing_a_look(*, now: datetime | None = None, count: int = 20) -> list[Refund]:
    """Refunds not yet succeeded (ours waiting on Stripe, or its answer lost), and those that failed lately."""
    now = now or timezone.now()
    waiting = Q(status__in=[Refund.Status.REQUESTED, Refund.Status.PENDING, Refund.Status.REQUIRES_ACTION])
    failed = Q(status__in=Refund.ENDED, updated__gte=now - FAILED_REFUNDS_SHOWN)
    rows = Refund.objects.filter(waiting | failed).select_related("deposit__account")
    return list(rows.order_by("-created")[:count])


def disputes_open(*, count: int = 20) -> list[Dispute]:
    closed = Dispute.CLOSED
    return list(
        Dispute.objects.exclude(status__in=closed).select_related("deposit__account").order_by("-created")[:count]
    )


def members_owing(*, count: int = 20) -> list[Account]:
    """Members whose balance a dispute or a clawback took below zero."""
    return list(Account.objects.filter(balance_cents__lt=0).order_by("balance_cents")[:count])


def events_not_applied(*, now: datetime | None = None, count: int = 20) -> list[StripeEvent]:
    now = now or timezone.now()
    stale = Q(outcome=StripeEvent.Outcome.RECEIVED, received__lt=now - EVENT_GRACE)
    return list(StripeEvent.objects.filter(Q(outcome=StripeEvent.Outcome.FAILED) | stale).order_by("-received")[:count])


def refunds_and_disputes_by_day(*, days: int, now: datetime | None = None) -> QuerySet:
    """(created, what) for every refund and dispute since the start of the window, for the chart."""
    start = local_time.day_start(local_time.local_date(now or timezone.now()) - timedelta(days=days - 1))
    refunds = Refund.objects.filter(created__gte=start).values_list("created", "status")
    disputes = Dispute.objects.filter(created__gte=start).values_list("created", "status")
    return [(created, "refund") for created, _ in refunds] + [(created, "dispute") for created, _ in disputes]
