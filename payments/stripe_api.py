"""The two things we ask of Stripe, through its official library: refund a charge, and list recent charges.

Twilio's <Pay> connector does the charging; this module is only for operators'
commands (refund_card_deposit, reconcile_card_deposits). Every request is bounded
in time, and a refund carries an idempotency key, so a command run twice after a
network failure never refunds twice. Stripe's test mode (a sk_test_ key) works
the same way for a first run (docs/DEPOSITS.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from payments.errors import StripeFailed, StripeNotConfigured

TIMEOUT_SECONDS = 20


def _stripe():
    # Imported when an operator's command needs it, never by the web workers: Stripe's library
    # alone is some 30 MB of memory in every gunicorn worker, for code only the commands run.
    import stripe

    return stripe


def _client():
    if not settings.STRIPE_SECRET_KEY:
        raise StripeNotConfigured
    stripe = _stripe()
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        max_network_retries=2,
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
    )


def refund(*, reference: str, idempotency_key: str) -> str:
    """Refund the whole of a charge; its refund id. A ch_ reference is a Charge, a pi_ one a PaymentIntent."""
    target = {"payment_intent": reference} if reference.startswith("pi_") else {"charge": reference}
    stripe = _stripe()
    try:
        made = _client().v1.refunds.create(params=target, options={"idempotency_key": idempotency_key})
    except stripe.StripeError as error:
        if getattr(error, "code", None) == "charge_already_refunded":
            # Refunded before (a run cut short after Stripe answered, and its idempotency key
            # forgotten after 24 hours): the card has its money; what is left is our side.
            return f"already refunded ({reference})"
        raise StripeFailed(error.user_message or str(error)) from None
    return made.id


@dataclass(frozen=True)
class Charge:
    """What reconciliation needs of a Stripe charge (never a card number)."""

    id: str
    payment_intent: str
    description: str
    amount_cents: int
    paid: bool
    refunded: bool
    disputed: bool
    card_type: str
    card_last4: str
    created: datetime

    @property
    def references(self) -> set[str]:
        """The ids a <Pay> PaymentConfirmationCode may carry for this charge."""
        return {self.id, self.payment_intent} - {""}


def recent_charges(*, days: int) -> Iterator[Charge]:
    """Charges of the last `days` days, every page of them."""
    since = int((timezone.now() - timedelta(days=days)).timestamp())
    stripe = _stripe()
    try:
        listed = _client().v1.charges.list(params={"created": {"gte": since}, "limit": 100})
        for found in listed.auto_paging_iter():
            charge = found.to_dict()
            card = ((charge.get("payment_method_details") or {}).get("card")) or {}
            yield Charge(
                id=charge["id"],
                payment_intent=charge.get("payment_intent") or "",
                description=charge.get("description") or "",
                amount_cents=charge["amount"],
                paid=bool(charge.get("paid")) and charge.get("status") == "succeeded",
                refunded=bool(charge.get("refunded")) or bool(charge.get("amount_refunded")),
                disputed=bool(charge.get("disputed")),
                card_type=card.get("brand") or "",
                card_last4=card.get("last4") or "",
                created=datetime.fromtimestamp(charge["created"], tz=UTC),
            )
    except stripe.StripeError as error:
        raise StripeFailed(error.user_message or str(error)) from None
