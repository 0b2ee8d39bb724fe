"""The domain's errors: what went wrong, for views, steps and commands to turn into words.

Each is raised by accounts' services and selectors; none carries a PIN or a code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from accounts.holds import Held


class AccountsError(Exception):
    """Base of the domain errors that views and commands turn into words."""


class UnknownAccount(AccountsError):
    pass


class AccountNotVerified(AccountsError):
    """Money cannot leave a pending account: staff have not verified its registration."""


class InvalidAmount(AccountsError):
    pass


@dataclass
class TransferLimitExceeded(AccountsError):
    limit_cents: int


@dataclass
class DepositTooLarge(AccountsError):
    """More than DEPOSIT_MAX_DOLLARS: a typo (a digit too many), refused whatever --confirm says."""

    limit_cents: int


@dataclass
class DailyLimitReached(AccountsError):
    """More than the account may still send today (in TIME_ZONE): room_cents is what is left."""

    room_cents: int
    limit_cents: int


class InsufficientFunds(AccountsError):
    pass


@dataclass
class MoneyOwed(AccountsError):
    """A card deposit was taken back after its money was spent: nothing leaves until deposits repay it."""

    owed_cents: int


@dataclass
class MoneyHeld(AccountsError):
    """More than can leave now: part of the balance is card money whose hold has not ended (accounts.holds)."""

    sendable_cents: int
    held: Held


class NotADeposit(AccountsError):
    pass


class AlreadyCorrected(AccountsError):
    pass


class UnknownRecipient(AccountsError):
    pass


class IdempotencyConflict(AccountsError):
    """A transfer key reused for a different transfer."""


class TransferAlreadyDecided(AccountsError):
    pass


class UnknownCode(AccountsError):
    pass


class MemberIdTaken(AccountsError):
    pass


class WrongPin(AccountsError):
    """A wrong PIN, an unknown member ID or an unknown number: the caller is told the same."""


@dataclass
class AccountLocked(AccountsError):
    until: datetime

    def minutes_left(self, now: datetime | None = None) -> int:
        """Whole minutes left, rounded up, never 0."""
        return max(1, math.ceil((self.until - (now or timezone.now())).total_seconds() / 60))


class RegistrationLimitReached(AccountsError):
    """Too many accounts from this line today, or across the service this hour: nothing is written."""


class UnknownLanguage(AccountsError):
    """A language code the registry (myibot/languages.py) does not hold: an account keeps only those."""


class NotPending(AccountsError):
    """Only a registration staff never verified can be rejected."""


class HoldsMoney(AccountsError):
    """An account with money or history is never removed."""


class NotAPhoneNumber(AccountsError):
    pass
