"""Card deposits, and what happens to their money after the call: refunds, disputes, Stripe's events.

A CardDeposit is written (pending) before <Pay> starts, so that the action
request Twilio posts afterwards names a row that exists. <Pay> only turns the
card into a Stripe PaymentMethod; that one request then charges it
(payments.charges) and the deposit records how: paid, not charged (and why),
or uncertain until Stripe says. What happens later lives in Refund and
Dispute rows and in ledger entries pointing at the deposit's credit, never in
its status. No row holds a card number, an expiry date, a postal code or the
PaymentMethod's id: only the card's type, last four and Stripe's fingerprint.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.dollars import format_dollars
from accounts.models import Account, LedgerEntry


class CardDepositStatus(models.TextChoices):
    """The charge only (SPEC "The deposit line"); the allowed moves are MOVES, below."""

    PENDING = "pending"  # written before <Pay>; nothing charged
    CHARGING = "charging"  # Stripe is being asked to charge the card (or was, and did not answer)
    PAID = "paid"  # charged, and credited to the member's ledger once
    NOT_CHARGED = "not_charged"  # certainly not charged: not_charged_reason says why
    UNCERTAIN = "uncertain"  # Stripe gave no definite answer: settled read-only by its events or reconciliation


# Where a status may go. A late success is credited whatever we thought (the card was charged), so
# not_charged -> paid stays possible; nothing leaves paid: refunds and disputes are rows of their own.
MOVES: dict[str, frozenset[str]] = {
    CardDepositStatus.PENDING: frozenset({"charging", "not_charged", "paid"}),
    CardDepositStatus.CHARGING: frozenset({"paid", "not_charged", "uncertain"}),
    CardDepositStatus.UNCERTAIN: frozenset({"paid", "not_charged"}),
    CardDepositStatus.NOT_CHARGED: frozenset({"paid"}),
    CardDepositStatus.PAID: frozenset(),
}


class NotChargedReason(models.TextChoices):
    PAY_RESULT = "pay_result", "<Pay> did not give a card (its Result)"
    CARD_ERROR = "card_error", "the card was refused (not by its bank)"
    ISSUER_DECLINE = "issuer_decline", "the card's bank declined"
    CARD_LIMIT = "card_limit", "the card's own limits"
    PROCESSOR = "processor", "Stripe refused the request or could not be reached before any charge"
    NO_CHARGE = "no_charge", "closed: Stripe made no charge"
    DAILY_LIMIT = "daily_limit", "the member's daily limit, checked again as the charge began"
    NO_TIME = "no_time", "the request's time was spent (waiting for locks) before Stripe was asked"


class ChargedBy(models.TextChoices):
    # Version 4: <Pay> tokenizes and the service charges the PaymentMethod itself.
    SERVICE = "service", "the service, through Stripe"
    # Version 3: Twilio's Pay connector charged inside <Pay> (a ch_ or pi_ PaymentConfirmationCode).
    CONNECTOR = "connector", "Twilio's Pay connector"


class CardDeposit(models.Model):
    Status = CardDepositStatus
    Reason = NotChargedReason

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="card_deposits")
    amount_cents = models.PositiveIntegerField()
    # Names the deposit to Stripe (metadata and idempotency key): numbers repeat across a restored backup
    # or a second database on one Stripe account, a UUID does not.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    charged_by = models.CharField(max_length=10, choices=ChargedBy.choices, default=ChargedBy.SERVICE)
    # The call that made it. Call state is deleted when a call ends; the SID stays, to find the call in
    # Twilio's console. line is a keyed digest of the caller's number (accounts.codes.line_digest), or
    # "withheld": the per-line limits count these, never the number itself. vouched: a carrier vouched
    # for the number (STIR/SHAKEN A), so the line is one family's and is limited as a line.
    call_sid = models.CharField(max_length=64)
    line = models.CharField(max_length=64)
    vouched = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    not_charged_reason = models.CharField(max_length=16, choices=Reason.choices, blank=True)
    # Twilio's Result, as posted (success, caller-interrupted-with-star ...), and Stripe's error code when it
    # refused the charge (card_declined, insufficient_funds ...): what the caller was told, in the admin.
    result = models.CharField(max_length=40, blank=True)
    decline_code = models.CharField(max_length=40, blank=True)
    # Stripe's PaymentIntent for this deposit (ours, or version 3's pi_ reference): one charge credits once.
    payment_intent = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # Version 3 only: the connector's ch_ PaymentConfirmationCode.
    reference = models.CharField(max_length=255, null=True, blank=True, unique=True)
    card_type = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    # Stripe's fingerprint of the card number (the same card, whoever types it): the per-card limits.
    card_fingerprint = models.CharField(max_length=64, blank=True)
    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="card_deposit"
    )
    # The confirmation code as the caller heard it, sealed (accounts.codes.seal_code): a retried action
    # request repeats the same code. Useless without PIN_PEPPER.
    code_sealed = models.CharField(max_length=64, blank=True)
    # Why an operator should look, empty when nothing is odd (credited past a limit after a race, a late
    # success after we said not charged, a version 3 success without the processor's reference ...).
    needs_look = models.CharField(max_length=160, blank=True)
    # Version 3: a second deposit reported with a charge another deposit was credited for.
    same_charge_as = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="credited instead"
    )
    created = models.DateTimeField(default=timezone.now)
    # When <Pay>'s token came (the action request), and when the charge was asked of Stripe.
    token_received = models.DateTimeField(null=True, blank=True)
    charging_started = models.DateTimeField(null=True, blank=True)
    decided = models.DateTimeField(null=True, blank=True)
    # The card money cannot leave by transfer before this (the hold); held_for_review keeps it held past it
    # (an early fraud warning) until an operator releases it.
    release_at = models.DateTimeField(null=True, blank=True)
    held_for_review = models.BooleanField(default=False)

    class Meta:
        permissions = [
            ("refund_carddeposit", "Can refund card deposits to the card"),
            ("release_carddeposit", "Can release the hold on a card deposit"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=CardDepositStatus.values), name="payments_status_valid"),
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payments_amount_positive"),
            # Paid means credited, with the hold's end; nothing else is credited. (A version 3 success Twilio
            # named no charge for was credited with no reference: it is flagged, not given a made-up one.)
            models.CheckConstraint(
                condition=Q(status="paid", entry__isnull=False, release_at__isnull=False)
                | ~Q(status="paid") & Q(entry__isnull=True),
                name="payments_credited_once_charged",
            ),
            # Ours are charged through a PaymentIntent: a paid one names it.
            models.CheckConstraint(
                condition=~Q(status="paid", charged_by="service") | Q(payment_intent__isnull=False),
                name="payments_paid_names_its_charge",
            ),
            # Not charged says why; nothing else does.
            models.CheckConstraint(
                condition=Q(status="not_charged", not_charged_reason__in=NotChargedReason.values)
                | ~Q(status="not_charged") & Q(not_charged_reason=""),
                name="payments_not_charged_says_why",
            ),
            # Charging and uncertain began charging at a known time.
            models.CheckConstraint(
                condition=~Q(status__in=["charging", "uncertain"]) | Q(charging_started__isnull=False),
                name="payments_charging_has_started",
            ),
            models.CheckConstraint(
                condition=Q(charged_by__in=ChargedBy.values), name="payments_carddeposit_charged_by_valid"
            ),
            models.CheckConstraint(condition=Q(card_last4__regex=r"^([0-9]{4})?$"), name="payments_last4_digits"),
        ]
        indexes = [
            models.Index(fields=["line", "created"], name="payments_line_created_idx"),
            models.Index(fields=["account", "created"], name="payments_account_created_idx"),
            models.Index(fields=["created"], name="payments_created_idx"),
            models.Index(fields=["card_fingerprint", "created"], name="payments_card_created_idx"),
            models.Index(fields=["status", "created"], name="payments_status_created_idx"),
        ]

    def __str__(self) -> str:
        return f"Card deposit {self.pk}: {format_dollars(self.amount_cents)} to {self.account}, {self.status}"

    @property
    def description(self) -> str:
        """What <Pay description=...> and the PaymentIntent carry, so that Stripe's dashboard names the deposit."""
        return f"MyiBot deposit {self.pk}"

    @property
    def idempotency_key(self) -> str:
        """The one key this deposit's charge is ever asked with: a retry can never charge twice."""
        return f"myibot-deposit-{self.public_id}"

    def can_move_to(self, status: str) -> bool:
        return status in MOVES[self.status]

    @classmethod
    def locked(cls, deposit_id: int, *related: str) -> CardDeposit:
        """The deposit, locked, after its member's account: the order every money path locks them in
        (inside a transaction). related: what to load with it (select_related)."""
        account_id = cls.objects.values_list("account_id", flat=True).get(pk=deposit_id)
        Account.objects.select_for_update().filter(pk=account_id).get()
        return cls.objects.select_for_update(of=("self",)).select_related(*related).get(pk=deposit_id)


class DepositAttempt(models.Model):
    """A member ID entered on the deposit line that cannot receive deposits (unknown, or not verified).

    Counted per line against member-ID probing. line as on CardDeposit: a keyed digest, or "withheld".
    """

    line = models.CharField(max_length=64)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["line", "created"], name="payments_attempt_line_idx")]

    def __str__(self) -> str:
        return f"Member ID refused at {self.created:%Y-%m-%d %H:%M}"


class RefundStatus(models.TextChoices):
    # Ours: the money is taken back and the row written, Stripe not yet asked (or its answer lost).
    REQUESTED = "requested"
    # Stripe's own statuses for a refund.
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Refund(models.Model):
    """Card money given back to the card: asked by an operator, or made in Stripe's dashboard.

    Written with the entry that takes the money back, committed, before Stripe is asked; its public_id
    travels in the refund's metadata, so that a lost answer is found again by listing, never by asking twice.
    """

    Status = RefundStatus
    # A refund that will not reach the card: its money is the member's again (payments.clawbacks).
    ENDED = (RefundStatus.FAILED, RefundStatus.CANCELED)

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    deposit = models.ForeignKey(CardDeposit, on_delete=models.PROTECT, related_name="refunds")
    stripe_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    amount_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REQUESTED)
    failure_reason = models.CharField(max_length=60, blank=True)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    clawback = models.BooleanField(default=False, help_text="may take the balance below zero")
    taken_by = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="refund_taken"
    )
    given_back_by = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="refund_given_back"
    )
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RefundStatus.values), name="payments_refund_status_valid"),
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payments_refund_amount_positive"),
            # Money comes back only for a refund that did not happen.
            models.CheckConstraint(
                condition=Q(given_back_by__isnull=True) | Q(status__in=["failed", "canceled"]),
                name="payments_refund_given_back_only_if_failed",
            ),
        ]
        indexes = [models.Index(fields=["status", "created"], name="payments_refund_status_idx")]

    def __str__(self) -> str:
        return f"Refund of {format_dollars(self.amount_cents)} for card deposit {self.deposit_id}: {self.status}"


class Dispute(models.Model):
    """A chargeback on a card deposit's charge, as Stripe reports it; its money moves with Stripe's."""

    stripe_id = models.CharField(max_length=255, unique=True)
    deposit = models.ForeignKey(CardDeposit, on_delete=models.PROTECT, related_name="disputes")
    amount_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=30)
    reason = models.CharField(max_length=40, blank=True)
    # What Stripe did with the money, as its events and the dispute's balance transactions say. Once
    # reinstated, a late funds_withdrawn event takes nothing: events come out of order.
    funds_withdrawn = models.BooleanField(default=False)
    funds_reinstated = models.BooleanField(default=False)
    # What Stripe gave back, as the dispute's balance transactions say (0 with funds_reinstated: all of it).
    # Only ever grows: a stale event's copy, from before the reinstatement, shows none.
    reinstated_cents = models.PositiveIntegerField(
        default=0, verbose_name="reinstated (cents)", help_text="what Stripe gave back; 0 once reinstated: all"
    )
    taken_by = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="dispute_taken"
    )
    given_back_by = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="dispute_given_back"
    )
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payments_dispute_amount_positive"),
            models.CheckConstraint(
                condition=Q(given_back_by__isnull=True) | Q(taken_by__isnull=False),
                name="payments_dispute_gives_back_only_what_it_took",
            ),
        ]

    def __str__(self) -> str:
        return f"Dispute {self.stripe_id} on card deposit {self.deposit_id}: {self.status}"

    # Stripe's statuses for an inquiry (a "warning"): the bank asks, nothing is withdrawn.
    INQUIRY = ("warning_needs_response", "warning_under_review", "warning_closed")
    CLOSED = ("won", "lost", "warning_closed", "prevented")
    # A lost dispute the account appeals (Stripe API 2026-10-28 on; appeals are a Dashboard setting):
    # open again, the money still withdrawn, until won (reinstated) or lost.
    APPEAL = ("appeal_needs_response", "appeal_under_review")

    @property
    def is_open(self) -> bool:
        return self.status not in self.CLOSED

    def takes(self, status: str) -> bool:
        """Whether a status Stripe reports moves this dispute: events come late and out of order.

        An open dispute takes any. A closed one stays closed (a late event said it was open), except a
        lost one appealed (an appeal ends won or lost) and a closed inquiry the bank escalates to a
        chargeback on the same dispute.
        """
        if self.pk is None or self.is_open:
            return True
        if self.status == "warning_closed":
            return status not in self.INQUIRY
        # won: a stale "lost" came during the appeal, and the appeal was won.
        return self.status == "lost" and (status in self.APPEAL or status == "won")

    @property
    def kept_cents(self) -> int:
        """What Stripe withdrew for this dispute and keeps: the member loses it (payments.clawbacks)."""
        if not self.funds_withdrawn:
            return 0
        if self.funds_reinstated:
            return max(self.amount_cents - (self.reinstated_cents or self.amount_cents), 0)
        return self.amount_cents

    @property
    def is_inquiry(self) -> bool:
        return self.status in self.INQUIRY


class StripeEvent(models.Model):
    """One event Stripe sent to /stripe/events, stored before it is applied, so that it is applied once.

    The payload is not kept: only what says which event, about what, and how it was applied.
    """

    class Outcome(models.TextChoices):
        RECEIVED = "received"  # stored, not applied yet (or applying failed: Stripe sends it again)
        APPLIED = "applied"
        NOT_OURS = "not ours"
        IGNORED = "ignored"  # ours, but nothing in it changes anything
        FAILED = "failed"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=80)
    object_id = models.CharField(max_length=255, blank=True)
    livemode = models.BooleanField(default=False)
    # Stripe's own time for the event (its created), and ours.
    happened = models.DateTimeField(null=True, blank=True)
    received = models.DateTimeField(default=timezone.now)
    applied = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RECEIVED)
    detail = models.CharField(max_length=200, blank=True, help_text="what applying it did, in words")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=["received", "applied", "not ours", "ignored", "failed"]),
                name="payments_stripeevent_outcome_valid",
            ),
        ]
        indexes = [models.Index(fields=["received"], name="payments_stripeevent_recv_idx")]

    def __str__(self) -> str:
        return f"Stripe event {self.event_id} ({self.type}): {self.outcome}"
