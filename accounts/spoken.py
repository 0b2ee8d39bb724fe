"""Codes, amounts and dates as a caller hears them, in the active language (translation.override around a call)."""

from __future__ import annotations

from datetime import date, datetime

from django.utils import timezone
from django.utils.dates import MONTHS
from django.utils.translation import gettext, ngettext

from myibot import local_time


def spoken_digits(digits: str) -> str:
    """Codes and IDs are read one digit at a time: "471092" -> "4, 7, 1, 0, 9, 2"."""
    return ", ".join(digits)


def _dollars(dollars: int) -> str:
    return ngettext("%(count)d dollar", "%(count)d dollars", dollars) % {"count": dollars}


def spoken_amount(cents: int) -> str:
    """For callers, in the active language: 7550 -> "75 dollars and 50 cents", "75 dólares con 50 centavos".

    A part that is zero is left out ("75 dollars", "50 cents"), but for nothing at all ("0 dollars").
    """
    dollars, rest = divmod(cents, 100)
    cents_said = ngettext("%(count)d cent", "%(count)d cents", rest) % {"count": rest}
    if not rest:
        return _dollars(dollars)
    if not dollars:
        return cents_said
    return gettext("%(dollars)s and %(cents)s") % {"dollars": _dollars(dollars), "cents": cents_said}


def spoken_dollars(cents: int) -> str:
    """Whole-dollar amounts as the caller entered them: 2500 -> "25 dollars", "25 dólares"."""
    return spoken_amount(cents)


def spoken_date(when: datetime | date, *, now: datetime | None = None) -> str:
    """ "November 24" / "24 de noviembre"; with the year when it is not this year's.

    A moment is spoken as its date in TIME_ZONE (an evening deposit on the East
    Coast is not "tomorrow"), and "this year" is the local year too.
    """
    day = local_time.local_date(when) if isinstance(when, datetime) else when
    this_year = local_time.local_date(now or timezone.now()).year
    month = MONTHS[day.month]  # Django's own translated month names
    said = {"month": month, "day": day.day, "year": day.year}
    # The first of a month has words of its own: "primero de diciembre", as callers in Mexico expect.
    if day.year == this_year:
        return (gettext("%(month)s 1st") if day.day == 1 else gettext("%(month)s %(day)d")) % said
    return (gettext("%(month)s 1st, %(year)d") if day.day == 1 else gettext("%(month)s %(day)d, %(year)d")) % said
