"""Money on the balance that cannot leave yet: what a member can send now, and from when the rest.

The balance counts money as soon as it arrives, but some of it may not leave by transfer at once:
card money, until its hold ends (SPEC "Card money and the ledger after the call"). Accounts does not
know where such money comes from; the app that makes it registers a source at start-up
(payments.apps), and every transfer asks through `held`; the spoken balance asks card money itself (see `held`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class Held:
    """Money on an account that cannot be sent yet.

    until is the first local date from which all of it can be sent (the last, with several holds), or
    None while some of it is held with no date (an operator must release it).
    """

    cents: int = 0
    until: date | None = None

    def __add__(self, other: Held) -> Held:
        if not other.cents:
            return self
        if not self.cents:
            return other
        until = None if self.until is None or other.until is None else max(self.until, other.until)
        return Held(self.cents + other.cents, until)


NOTHING_HELD = Held()

# (account id, now) -> what that source holds of the account's balance.
HoldSource = Callable[[int, datetime], Held]
_sources: list[HoldSource] = []


def register(source: HoldSource) -> None:
    """Called once per source, from an AppConfig.ready()."""
    if source not in _sources:
        _sources.append(source)


def held(*, account_id: int, now: datetime) -> Held:
    """What of the account's balance cannot leave yet. Under the account's lock when a transfer asks.

    The balance a member hears asks its one source, card money, directly, with its other question in the same
    round trip (ivr/steps/menu.py); a test keeps card money the only source registered.
    """
    total = NOTHING_HELD
    for source in _sources:
        total += source(account_id, now)
    return total


def sendable_cents(*, balance_cents: int, held_now: Held) -> int:
    """What can leave now: the balance less the held money, never below zero."""
    return max(balance_cents - held_now.cents, 0)
