"""The card deposits' panel of the operators' dashboard: per day by status, and what needs a look."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from accounts.dashboard import DAYS, stacked_bars
from accounts.dollars import format_dollars
from myibot import local_time
from payments import clawbacks, selectors
from payments.models import CardDeposit, Refund

# (status, css class, name): the chart's series, bottom up.
STATUSES = [
    (CardDeposit.Status.PAID, "settled", "paid"),
    (CardDeposit.Status.NOT_CHARGED, "rejected", "not charged"),
    (CardDeposit.Status.UNCERTAIN, "failed", "uncertain"),
    (CardDeposit.Status.PENDING, "submitted", "pending"),
    (CardDeposit.Status.CHARGING, "submitted", "charging"),
]


@dataclass(frozen=True)
class Day:
    day: date
    counts: dict[str, int]
    paid_cents: int
    refunds: int = 0

    @property
    def paid_display(self) -> str:
        return format_dollars(self.paid_cents)


def build(now: datetime) -> dict[str, object]:
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    paid: dict[date, int] = defaultdict(int)
    for row in selectors.by_day_and_status(days=DAYS, now=now):
        day = local_time.local_date(row["created"])
        per_day[day][row["status"]] += 1
        if row["status"] == CardDeposit.Status.PAID:
            paid[day] += row["amount_cents"]
    today = local_time.local_date(now)
    days = [date.fromordinal(today.toordinal() - back) for back in range(DAYS - 1, -1, -1)]
    chart = stacked_bars(
        f"Card deposits per day, last {DAYS} days, by status",
        [day.strftime("%b %d") for day in days],
        [(css, name, [per_day[day][status] for day in days]) for status, css, name in STATUSES],
        tick_every=7,
    )
    after: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for created, what in selectors.refunds_and_disputes_by_day(days=DAYS, now=now):
        after[local_time.local_date(created)][what] += 1
    after_chart = stacked_bars(
        f"Refunds and disputes per day, last {DAYS} days",
        [day.strftime("%b %d") for day in days],
        [
            ("rejected", "refunds", [after[day]["refund"] for day in days]),
            ("failed", "disputes", [after[day]["dispute"] for day in days]),
        ],
        tick_every=7,
    )
    refunds_needing_a_look = selectors.refunds_needing_a_look(now=now)
    for refund in refunds_needing_a_look:
        refund.said = refund_words(refund)
    after_the_call = {
        "refunds_needing_a_look": refunds_needing_a_look,
        "disputes_open": selectors.disputes_open(),
        "members_owing": selectors.members_owing(),
        "stripe_events_not_applied": selectors.events_not_applied(now=now),
    }
    return {
        "card_deposit_chart": chart,
        "card_money_after_chart": after_chart,
        **after_the_call,
        "card_money_needing_a_look_count": sum(len(rows) for rows in after_the_call.values()),
        "card_deposit_days": [
            Day(day, dict(per_day[day]), paid[day], after[day]["refund"])
            for day in reversed(days)
            if any(per_day[day].values()) or after[day]["refund"]
        ][:7],
        "card_deposits_needing_a_look": selectors.needing_a_look(now=now),
        "card_deposit_lines_failing": selectors.lines_failing_in_a_row(now=now),
    }


def refund_words(refund: Refund) -> str:
    """What became of a refund on the dashboard, true of the card and of the member's money alike."""
    if refund.status == Refund.Status.REQUESTED:
        return "Stripe's answer lost: reconcile_card_deposits --resolve finishes it"
    if refund.status not in Refund.ENDED:
        return "Stripe has not finished it"
    if refund.failure_reason == clawbacks.STOOD_FOR:
        return "the card was refunded in Stripe instead: the money stays taken back for that refund"
    if refund.given_back_by_id is not None:
        return "nothing reached the card: the money was given back to the member"
    if refund.taken_by_id is None:
        return "nothing reached the card, and no member money was taken for it"
    return "nothing reached the card: the member's money follows what Stripe holds (a dispute, another refund)"
