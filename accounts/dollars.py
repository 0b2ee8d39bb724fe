"""Money as integer cents: parsing what operators type, and showing it to them (accounts/spoken.py says it to callers)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# "100", "12.5", "12.50", "10,000": dollars with at most two decimals, nothing else. Any size: too large
# is for the caller to say (DEPOSIT_MAX_DOLLARS), not "not an amount". A hundred digits at most, beyond
# anything a person types and within what Python will turn into text again.
_DOLLARS = re.compile(r"([0-9]{1,100}|[0-9]{1,3}(,[0-9]{3}){1,33})(\.[0-9]{1,2})?", re.ASCII)


def parse_dollars(text: str) -> int:
    """Cents from an operator's "100" or "12.50"; ValueError for anything else."""
    text = text.strip().lstrip("$")
    if text.startswith("-") and _DOLLARS.fullmatch(text[1:].lstrip("$")):
        raise ValueError(f"the amount must be more than 0, not {text}")
    if not _DOLLARS.fullmatch(text):
        raise ValueError(f"not an amount in dollars: {text!r} (use 100 or 12.50)")
    try:
        return int(Decimal(text.replace(",", "")) * 100)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise ValueError(f"not an amount in dollars: {text!r}") from None


def format_dollars(cents: int) -> str:
    """For operators: -1250 -> "-$12.50"."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}${dollars:,}.{rest:02d}"


def dollars_decimal(cents: int) -> Decimal:
    """For exports: 2550 -> Decimal("25.50"), a number a spreadsheet adds up, with its two places kept."""
    return Decimal(cents).scaleb(-2)
