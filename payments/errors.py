"""What can go wrong with a card deposit, for the deposit line's steps and the operators' commands to say."""

from __future__ import annotations

from dataclasses import dataclass


class PaymentsError(Exception):
    """Base of the card deposits' errors."""


class CannotReceiveDeposits(PaymentsError):
    """No such member ID, or an account staff have not verified: the caller hears the same for both."""


class TooManyAttempts(PaymentsError):
    """This line's failed tries for today ("line"), or the service's issuer declines for this hour for callers
    no carrier vouches for ("service"), are used up."""

    def __init__(self, scope: str) -> None:
        super().__init__(scope)
        self.scope = scope


@dataclass
class AmountRefused(PaymentsError):
    """Over the most one card deposit may be, or over what is left of the member's daily limit.

    limit_cents is what the caller may still pay now (0 when nothing is left today)."""

    limit_cents: int
    daily: bool


class PaymentInProgress(PaymentsError):
    """Another card deposit for this member (or from this line) is in <Pay> or being charged right now."""


class UnknownDeposit(PaymentsError):
    """No pending card deposit of this call by that number (a forged or misrouted action request)."""


class NotACardDeposit(PaymentsError):
    pass


class AlreadyRefunded(PaymentsError):
    pass


class DisputeOpen(PaymentsError):
    """A dispute on the deposit is open: Stripe refuses refunds of disputed charges, and the dispute decides."""


class NotCharged(PaymentsError):
    """The card deposit was never paid: there is nothing to refund."""


class StripeNotConfigured(PaymentsError):
    """STRIPE_SECRET_KEY is unset."""


class StripeFailed(PaymentsError):
    """Stripe refused or could not be reached; its message says why (never a card number)."""


class NotYet(PaymentsError):
    """Stripe's word about a charge of ours that is not settled here yet: applied when Stripe sends it again."""
