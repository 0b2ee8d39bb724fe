"""Money as integer cents: parsing what operators type and saying what callers hear."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext, ngettext

# "100", "12.5", "12.50": dollars with at most two decimals, nothing else.
_DOLLARS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?", re.ASCII)


def parse_dollars(text: str) -> int:
    """Cents from an operator's "100" or "12.50"; ValueError for anything else."""
    text = text.strip().lstrip("$")
    if not _DOLLARS.fullmatch(text):
        raise ValueError(f"not an amount in dollars: {text!r} (use 100 or 12.50)")
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise ValueError(f"not an amount in dollars: {text!r}") from None


def format_dollars(cents: int) -> str:
    """For operators: -1250 -> "-$12.50"."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}${dollars:,}.{rest:02d}"


def _dollars(dollars: int) -> str:
    return ngettext("%(count)d dollar", "%(count)d dollars", dollars) % {"count": dollars}


def spoken_amount(cents: int) -> str:
    """For callers, in the active language: 7550 -> "75 dollars and 50 cents", "75 dólares con 50 centavos"."""
    dollars, rest = divmod(cents, 100)
    return gettext("%(dollars)s and %(cents)s") % {
        "dollars": _dollars(dollars),
        "cents": ngettext("%(count)d cent", "%(count)d cents", rest) % {"count": rest},
    }


def spoken_dollars(cents: int) -> str:
    """Whole-dollar amounts as the caller entered them: 2500 -> "25 dollars", "25 dólares"."""
    if cents % 100:
        return spoken_amount(cents)
    return _dollars(cents // 100)
