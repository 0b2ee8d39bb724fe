"""The service's clock (settings.TIME_ZONE): the dates callers hear, "today" for the daily limits, the dashboard.

The database keeps UTC (USE_TZ). These turn an instant into the service's local
date, and a local date into the instants that bound it, through the zone's own
rules rather than today's offset: the day the clocks change is 23 or 25 hours long.
Always the configured zone, never one a request might have activated.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from django.utils import timezone


def zone() -> tzinfo:
    return timezone.get_default_timezone()


def local(moment: datetime) -> datetime:
    """An aware moment on the service's clocks (tzname() says EST or EDT); a naive one is refused."""
    return timezone.localtime(moment, zone())


def local_date(moment: datetime) -> date:
    return local(moment).date()


def day_start(day: date) -> datetime:
    """The instant, in UTC, at which a local calendar day begins.

    Returned in UTC because Python compares two datetimes that share a tzinfo
    by their wall clocks. A midnight the clocks skip (a change at 00:00, as in
    Chile) is read with the offset before the change: the moment of the change.
    """
    return datetime.combine(day, time.min, tzinfo=zone()).astimezone(UTC)


def day_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The local calendar day holding the moment: its midnight and the next, as UTC instants (end excluded)."""
    day = local_date(moment)
    return day_start(day), day_start(day + timedelta(days=1))


def stamp(moment: datetime, *, seconds: bool = False) -> str:
    """A moment as operators read it: local, with the zone's abbreviation ("2026-12-01 21:30 EST")."""
    return local(moment).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")
