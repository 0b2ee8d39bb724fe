"""Card deposits: a family's payment by card through Twilio <Pay>, on the deposit line.

A CardDeposit is written (pending) before <Pay> starts, so that the action
request Twilio posts afterwards names a row that exists, and credits it once.
It never holds a card number, an expiry date, a postal code or Twilio's
PaymentToken: only the processor's reference, the card's type and last four.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.dollars import format_dollars
from accounts.models import Account, LedgerEntry


class CardDepositStatus(models.TextChoices):
    PENDING = "pending"  # written before <Pay>; no answer from Twilio yet
    PAID = "paid"  # Result=success: charged, and credited to the member's ledger
    FAILED = "failed"  # any other Result: nothing charged, nothing credited
    REFUNDED = "refunded"  # charged, credited, then given back to the card (refund_card_deposit)


class CardDeposit(models.Model):
    Status = CardDepositStatus

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="card_deposits")
    amount_cents = models.PositiveIntegerField()
    # The call that made it. Call state is deleted when a call ends; the SID stays, to find the call in
    # Twilio's console. line is a keyed digest of the caller's number (accounts.codes.line_digest), or
    # "withheld": the per-line limits count these, never the number itself.
    call_sid = models.CharField(max_length=64)
    line = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Twilio's Result, as posted (success, card-declined reasons, caller-interrupted-with-star ...).
    result = models.CharField(max_length=40, blank=True)
    # The processor's reference (PaymentConfirmationCode: Stripe's ch_ or pi_ id): one charge credits once.
    reference = models.CharField(max_length=255, null=True, blank=True, unique=True)
    card_type = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="card_deposit"
    )
    # The confirmation code as the caller heard it, sealed (accounts.codes.seal_code): a retried action
    # request, or a second request with the same reference, repeats the same code. Useless without PIN_PEPPER.
    code_sealed = models.CharField(max_length=64, blank=True)
    # Why an operator should look, empty when nothing is odd: credited although a limit would now refuse
    # it (two payers at once: the card was charged, so the money is on the account), a success without
    # the processor's reference, or the same charge reported for a second deposit.
    needs_look = models.CharField(max_length=120, blank=True)
    # A second deposit reported with a charge another deposit was credited for: that deposit, whose
    # confirmation this one's caller hears (Twilio's retries of either find it here).
    same_charge_as = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="credited instead"
    )
    refund_reference = models.CharField(max_length=255, blank=True, help_text="Stripe's refund id")
    created = models.DateTimeField(default=timezone.now)
    decided = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("refund_carddeposit", "Can refund card deposits to the card")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=CardDepositStatus.values), name="payments_status_valid"),
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payments_amount_positive"),
            # Paid or refunded means charged and credited: the charge's reference and the ledger entry.
            models.CheckConstraint(
                condition=Q(status__in=["pending", "failed"], entry__isnull=True)
                | Q(status__in=["paid", "refunded"], entry__isnull=False, reference__isnull=False),
                name="payments_credited_once_charged",
            ),
            models.CheckConstraint(condition=Q(card_last4__regex=r"^([0-9]{4})?$"), name="payments_last4_digits"),
        ]
        indexes = [
            models.Index(fields=["line", "created"], name="payments_line_created_idx"),
            models.Index(fields=["account", "created"], name="payments_account_created_idx"),
            models.Index(fields=["created"], name="payments_created_idx"),
        ]

    def __str__(self) -> str:
        return f"Card deposit {self.pk}: {format_dollars(self.amount_cents)} to {self.account}, {self.status}"

    @property
    def description(self) -> str:
        """What <Pay description=...> carries, so that Stripe's charge names the deposit (reconcile_card_deposits)."""
        return f"MyiBot deposit {self.pk}"


class DepositAttempt(models.Model):
    """A member ID entered on the deposit line that cannot receive deposits (unknown, or not verified).

    With the card payments that failed, these are what the limits against member-ID probing and
    card testing count; a family who enters a right ID and pays counts nothing. line as on
    CardDeposit: a keyed digest, or "withheld".
    """

    line = models.CharField(max_length=64)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["line", "created"], name="payments_attempt_line_idx")]

    def __str__(self) -> str:
        return f"Member ID refused at {self.created:%Y-%m-%d %H:%M}"
