"""The operators' dashboard (the admin index): what happened lately, and what needs someone now.

Every figure is one aggregate query over an indexed column, whatever the
size of the tables; the charts are drawn here as SVG geometry and rendered by
a template, so the admin needs no script and no CDN on a closed network.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts import selectors
from accounts.dollars import format_dollars
from accounts.models import Account, ActivityKind, HourlyActivity, Transfer
from myibot import local_time

LIST_LENGTH = 20
HOURS = 48
DAYS = 30


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass
class Chart:
    """A bar chart, stacked by series, ready for an <svg viewBox="0 0 width height">."""

    title: str
    legend: list[tuple[str, str]]  # (css class, name)
    bars: list[Bar] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)  # x, label
    top_label: str = ""
    width: int = 720
    height: int = 180
    plot_left: int = 64  # room for "$12,345.00"
    plot_top: int = 16
    plot_bottom: int = 156

    @property
    def baseline(self) -> int:
        return self.plot_bottom


def stacked_bars(
    title: str,
    labels: list[str],
    series: list[tuple[str, str, list[float]]],
    *,
    tick_every: int,
    fmt=lambda value: f"{value:g}",
) -> Chart:
    """One bar a label, each series stacked on the one before: series is (css class, name, values)."""
    chart = Chart(title=title, legend=[(css, name) for css, name, _ in series])
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    peak = max(totals, default=0) or 1
    chart.top_label = fmt(peak)
    slot = (chart.width - chart.plot_left - 4) / max(len(labels), 1)
    height = chart.plot_bottom - chart.plot_top
    for index, label in enumerate(labels):
        x = chart.plot_left + index * slot
        y = float(chart.plot_bottom)
        for css, name, values in series:
            value = values[index]
            if not value:
                continue
            bar_height = height * value / peak
            y -= bar_height
            chart.bars.append(
                Bar(
                    x=round(x + 1, 1),
                    y=round(y, 1),
                    width=round(max(slot - 2, 1), 1),
                    height=round(bar_height, 1),
                    css=css,
                    title=f"{label}: {fmt(value)} {name}",
                )
            )
        if index % tick_every == 0:
            chart.ticks.append((round(x + slot / 2, 1), label))
    return chart


def activity_charts(now: datetime) -> list[Chart]:
    """Calls and sign-ins, failed PINs and locks, per hour over the last two days: one query.

    The counts are kept per UTC hour (accounts/activity.py), which is a local hour in any zone a
    whole number of hours from UTC, and labelled in TIME_ZONE. Stepped in UTC: across a change of
    the clocks the labels skip or repeat an hour, as the clocks do.
    """
    start = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    hours = [start + timedelta(hours=n) for n in range(HOURS)]
    counts: dict[str, dict[datetime, int]] = defaultdict(dict)
    for hour, kind, count in HourlyActivity.objects.filter(hour__gte=start).values_list("hour", "kind", "count"):
        counts[kind][hour] = count
    labels = [f"{local_time.local(hour):%a %H:%M}" for hour in hours]

    def values(kind: str) -> list[float]:
        return [counts[kind].get(hour, 0) for hour in hours]

    return [
        stacked_bars(
            "Calls and sign-ins per hour, last 48 hours",
            labels,
            [
                (
                    "calls",
                    "calls without a sign-in",
                    [
                        max(c - s, 0)
                        for c, s in zip(values(ActivityKind.CALL), values(ActivityKind.SIGN_IN), strict=True)
                    ],
                ),
                ("sign-ins", "sign-ins", values(ActivityKind.SIGN_IN)),
            ],
            tick_every=6,
        ),
        stacked_bars(
            "Failed PINs and locks per hour, last 48 hours",
            labels,
            [("failed", "failed PINs", values(ActivityKind.FAILED_PIN)), ("locks", "locks", values(ActivityKind.LOCK))],
            tick_every=6,
        ),
    ]


def transfers_by_day(today: date) -> QuerySet:
    """Count and cents per local day (TIME_ZONE) and status, from local midnight DAYS - 1 days before today.

    The database groups by the local date itself (AT TIME ZONE on PostgreSQL,
    Django's own function on SQLite); the range on created keeps the index.
    """
    start = local_time.day_start(today - timedelta(days=DAYS - 1))
    return (
        Transfer.objects.filter(created__gte=start)
        .annotate(day=TruncDate("created", tzinfo=local_time.zone()))
        .values("day", "status")
        .annotate(n=Count("id"), cents=Sum("amount_cents"))
    )


def transfer_charts(today: date) -> list[Chart]:
    """Transfers and their amounts per local day over 30 days, by status: one query."""
    days = [today - timedelta(days=DAYS - 1 - n) for n in range(DAYS)]
    number: dict[str, dict[date, int]] = defaultdict(dict)
    cents: dict[str, dict[date, int]] = defaultdict(dict)
    rows = transfers_by_day(today)
    for row in rows:
        number[row["status"]][row["day"]] = row["n"]
        cents[row["status"]][row["day"]] = row["cents"]
    labels = [f"{day:%b} {day.day}" for day in days]
    statuses = [
        ("settled", Transfer.Status.SETTLED),
        ("submitted", Transfer.Status.SUBMITTED),
        ("rejected", Transfer.Status.REJECTED),
    ]
    return [
        stacked_bars(
            "Transfers per day, last 30 days",
            labels,
            [(css, status.label.lower(), [number[status].get(day, 0) for day in days]) for css, status in statuses],
            tick_every=5,
        ),
        stacked_bars(
            "Amounts sent per day, last 30 days",
            labels,
            [(css, status.label.lower(), [cents[status].get(day, 0) for day in days]) for css, status in statuses],
            tick_every=5,
            fmt=lambda value: format_dollars(int(value)),
        ),
    ]


@dataclass
class NeedsAction:
    """A list on the dashboard: its first LIST_LENGTH items and how many there are in all."""

    items: list
    total: int


def _first(queryset) -> NeedsAction:
    items = list(queryset[: LIST_LENGTH + 1])
    total = len(items) if len(items) <= LIST_LENGTH else queryset.count()
    return NeedsAction(items=items[:LIST_LENGTH], total=total)


def build(now: datetime | None = None) -> dict[str, object]:
    """Everything the dashboard shows."""
    now = now or timezone.now()
    return {
        "charts": [*activity_charts(now), *transfer_charts(local_time.local_date(now))],
        "awaiting_verification": _first(Account.objects.filter(status=Account.Status.PENDING).order_by("created")),
        "awaiting_settlement": _first(
            Transfer.objects.filter(status=Transfer.Status.SUBMITTED)
            .select_related("account", "recipient")
            .order_by("created")
        ),
        # Locked on either route (elsewhere, or at the trusted home number).
        "locked_accounts": _first(
            Account.objects.filter(Q(locked_until__gt=now) | Q(home_locked_until__gt=now)).order_by("created")
        ),
        "spray": selectors.spray_active(now=now),
        "registration_limit_until": selectors.registration_limit_reached_until(now=now),
        "registrations_per_hour": settings.REGISTRATIONS_PER_HOUR,
        "time_zone": settings.TIME_ZONE,
    }
