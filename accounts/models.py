"""Accounts, confirmation codes, recipients, transfers and the ledger (README, Data).

Money is integer cents. Rules the database can hold (uniqueness, non-negative
balance, allowed statuses and kinds) are database constraints, not only checks
in Python: several app machines write to one database at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.dollars import format_dollars
from myibot import languages, local_time

# Five wrong PINs in a row lock the account; each further lock doubles, up to a day.
PIN_FAILURES_BEFORE_LOCK = 5
FIRST_LOCK = timedelta(minutes=15)
LONGEST_LOCK = timedelta(hours=24)


E164_REGEX = r"^\+[1-9][0-9]{1,14}$"


class SignInRoute(models.TextChoices):
    """Where a PIN was tried: its failures are counted, and locked, apart (docs/CALL_FLOW.md).

    A caller who knows only a member's number or member ID can lock "elsewhere"
    as often as they like; the owner on their own trusted home number signs in still.
    """

    HOME = "home", "the trusted home number"
    ELSEWHERE = "elsewhere", "any other phone"


# Each route's failed-PIN count, locked-until and lock count.
ROUTE_FIELDS = {
    SignInRoute.HOME: ("home_failed_pin_count", "home_locked_until", "home_lock_count"),
    SignInRoute.ELSEWHERE: ("failed_pin_count", "locked_until", "lock_count"),
}


class AccountStatus(models.TextChoices):
    # Registered by phone; money cannot leave until staff verify the registration code.
    PENDING = "pending"
    ACTIVE = "active"


class Account(models.Model):
    """A caller's account. The member ID is the identity; the home number only a convenience."""

    Status = AccountStatus

    member_id = models.CharField(max_length=6, unique=True, help_text="6 digits: who the caller is")
    # The caller's own phone, set at registration when its caller ID was
    # trusted and personal: a call from it may sign in with the PIN alone.
    home_number = models.CharField(max_length=16, unique=True, null=True, blank=True, help_text="E.164, or none")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # The language the caller chose, used from the first word of their next call from the home number.
    # The database checks a code's shape; which codes exist is the registry's to say (clean,
    # and the services that store one), so that a new language needs no migration.
    language = models.CharField(
        max_length=5, default="en", help_text="a language of the registry (myibot/languages.py)"
    )
    verified_at = models.DateTimeField(null=True, blank=True, help_text="when staff verified the registration")
    pin_hash = models.CharField(max_length=256)
    # Wrong PINs from anywhere but the trusted home number, and the lock they earn.
    failed_pin_count = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    lock_count = models.PositiveIntegerField(default=0)
    # The same, from the account's own home number with a trusted caller ID.
    home_failed_pin_count = models.PositiveIntegerField(default=0)
    home_locked_until = models.DateTimeField(null=True, blank=True)
    home_lock_count = models.PositiveIntegerField(default=0)
    # A cache of the sum of this account's ledger entries, updated in the same
    # transaction as every entry; the constraints make an overdraft impossible.
    balance_cents = models.BigIntegerField(default=0)
    # How far below zero the balance may be: 0, unless a card deposit the member had already spent was
    # taken back (a dispute, or refund_card_deposit --clawback), the only entries that lower it
    # (accounts.ledger.card_money_take_back). Every credit raises it back towards 0 as the debt is repaid,
    # and nothing else lowers it, so a transfer can never take the balance below zero.
    lowest_balance_cents = models.BigIntegerField(default=0, help_text="0, or what a card clawback left owed")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(balance_cents__gte=models.F("lowest_balance_cents")),
                name="accounts_account_balance_not_below_floor",
            ),
            models.CheckConstraint(
                condition=Q(lowest_balance_cents__lte=0), name="accounts_account_floor_not_positive"
            ),
            models.CheckConstraint(
                condition=Q(member_id__regex=r"^[0-9]{6}$"), name="accounts_account_member_id_6_digits"
            ),
            models.CheckConstraint(
                condition=Q(home_number__regex=E164_REGEX), name="accounts_account_home_number_e164"
            ),
            models.CheckConstraint(condition=Q(status__in=AccountStatus.values), name="accounts_account_status_valid"),
            models.CheckConstraint(
                condition=Q(language__regex=languages.CODE_SHAPE), name="accounts_account_language_code"
            ),
            # Active means verified, and verified means active.
            models.CheckConstraint(
                condition=Q(status="pending", verified_at__isnull=True) | Q(status="active", verified_at__isnull=False),
                name="accounts_account_verified_when_active",
            ),
        ]
        indexes = [models.Index(fields=["status", "created"], name="accounts_account_status_idx")]

    def __str__(self) -> str:
        return f"Account {self.member_id}"

    def clean(self) -> None:
        if not languages.is_registered(self.language):
            known = ", ".join(languages.registered())
            raise ValidationError({"language": f"{self.language!r} is not a registered language ({known})."})

    @property
    def is_verified(self) -> bool:
        return self.status == AccountStatus.ACTIVE

    @property
    def balance(self) -> str:
        return format_dollars(self.balance_cents)

    @property
    def owed_cents(self) -> int:
        """What the member owes after a card deposit was taken back from money already spent; 0 mostly."""
        return max(-self.balance_cents, 0)

    @property
    def owed_display(self) -> str:
        return format_dollars(self.owed_cents)

    def is_locked(self, now: datetime | None = None, route: str | None = None) -> bool:
        """Locked on route, or on either route when none is named (what operators see)."""
        now = now or timezone.now()
        routes = [route] if route else list(ROUTE_FIELDS)
        return any((until := self.locked_until_on(route)) is not None and until > now for route in routes)

    def locked_until_on(self, route: str) -> datetime | None:
        return getattr(self, ROUTE_FIELDS[route][1])

    def count_pin_attempt(self, route: str) -> None:
        """Count a PIN attempt before it is checked: a guess is never free (register_right_pin takes it back)."""
        count_field = ROUTE_FIELDS[route][0]
        setattr(self, count_field, getattr(self, count_field) + 1)

    def register_failed_pin(self, route: str, now: datetime | None = None) -> bool:
        """A counted attempt was wrong; returns True when it locks the route (the fifth in a row)."""
        count_field, until_field, locks_field = ROUTE_FIELDS[route]
        if getattr(self, count_field) < PIN_FAILURES_BEFORE_LOCK or self.is_locked(now, route):
            return False
        lock_count = getattr(self, locks_field) + 1
        setattr(self, locks_field, lock_count)
        setattr(self, count_field, 0)
        setattr(self, until_field, (now or timezone.now()) + self.lock_duration(lock_count))
        return True

    def register_right_pin(self, route: str) -> None:
        # The owner proved who they are: the escalation starts again from 15
        # minutes, so an attacker cannot keep them out for a day at a time.
        count_field, _until, locks_field = ROUTE_FIELDS[route]
        setattr(self, count_field, 0)
        setattr(self, locks_field, 0)

    def unlock(self) -> None:
        """An operator's unlock: both routes, their counts and their escalation."""
        for fields in ROUTE_FIELDS.values():
            count_field, until_field, locks_field = fields
            setattr(self, count_field, 0)
            setattr(self, until_field, None)
            setattr(self, locks_field, 0)

    def verify(self, now: datetime | None = None) -> None:
        self.status = AccountStatus.ACTIVE
        self.verified_at = now or timezone.now()

    @staticmethod
    def lock_duration(lock_count: int) -> timedelta:
        # Cap the exponent too, so that a huge lock count cannot overflow timedelta.
        return min(FIRST_LOCK * 2 ** min(max(lock_count - 1, 0), 16), LONGEST_LOCK)


class SharedLine(models.Model):
    """A phone many callers use (a housing unit's payphone): never anyone's home number."""

    phone_number = models.CharField(max_length=16, unique=True, help_text="E.164")
    name = models.CharField(max_length=100, blank=True, help_text="where it is, for operators")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(phone_number__regex=E164_REGEX), name="accounts_sharedline_phone_e164"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.phone_number})" if self.name else self.phone_number


class SignInFailure(models.Model):
    """One failed sign-in anywhere in the service, kept only to notice a spray.

    No account and no number: the per-account count lives on the account.
    """

    created = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"Failed sign-in at {local_time.stamp(self.created, seconds=True)}"


class SignInSpray(models.Model):
    """Failed sign-ins across many accounts above the service's limit: PIN-only entry is off until `until`."""

    started = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField(db_index=True)
    failures = models.PositiveIntegerField(help_text="failed sign-ins in the minute that started it")

    class Meta:
        # "Sign-in sprays" in the admin, as the README and the dashboard say, not Django's "Sign in sprays".
        verbose_name = "sign-in spray"
        constraints = [
            models.CheckConstraint(
                condition=Q(until__gt=models.F("started")), name="accounts_signinspray_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"Sign-in spray from {local_time.stamp(self.started)} to {local_time.local(self.until):%H:%M %Z}"


class Registration(models.Model):
    """An account created by phone, and the line it came from: the registration limits count these.

    line is a keyed digest of the caller's number (accounts.codes.line_digest), empty for a
    withheld number or a shared line, where many people register: those are bounded only by
    the service-wide hourly limit. Never the number itself.
    """

    created = models.DateTimeField(default=timezone.now, db_index=True)
    line = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["line", "created"], name="accounts_registration_line_idx")]

    def __str__(self) -> str:
        return f"Registration at {self.created:%Y-%m-%d %H:%M}"


class Recipient(models.Model):
    code = models.CharField(max_length=6, unique=True, help_text="6 digits the caller enters")
    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(code__regex=r"^[0-9]{6}$"), name="accounts_recipient_code_6_digits"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class TransferStatus(models.TextChoices):
    SUBMITTED = "submitted"
    SETTLED = "settled"
    REJECTED = "rejected"


class LedgerKind(models.TextChoices):
    DEPOSIT = "deposit"
    TRANSFER = "transfer"
    REVERSAL = "reversal", "transfer returned"
    # A mistaken deposit taken back (reverse_deposit), pointing at the deposit.
    CORRECTION = "correction", "deposit corrected"
    # Put on by a family through the deposit line (payments.CardDeposit says which card and charge).
    CARD = "card", "card deposit"
    # A card deposit given back to the card (refund_card_deposit, or Stripe's dashboard), pointing at the card deposit.
    REFUND = "refund", "card deposit refunded"
    # A card deposit's money withdrawn by a dispute (chargeback), and given back when the dispute is won.
    DISPUTE = "dispute", "card deposit disputed"
    REINSTATED = "reinstated", "dispute money given back"
    # A refund that Stripe reports failed or canceled: the money it took comes back.
    REFUND_RETURNED = "returned", "refund failed, money given back"


class CodePurpose(models.TextChoices):
    REGISTRATION = "registration"
    TRANSFER = "transfer"
    DEPOSIT = "deposit", "card deposit"


class Transfer(models.Model):
    Status = TransferStatus

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="transfers")
    recipient = models.ForeignKey(Recipient, on_delete=models.PROTECT, related_name="transfers")
    # The payee's name as it was when the transfer was made: renaming a recipient later changes no past transfer.
    recipient_name = models.CharField(max_length=100, blank=True)
    amount_cents = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    # The call and the prompt it was confirmed at: a retried webhook finds the
    # transfer it already made instead of making a second one.
    idempotency_key = models.CharField(max_length=100, unique=True)
    created = models.DateTimeField(default=timezone.now)
    decided = models.DateTimeField(null=True, blank=True, help_text="when settled or rejected")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="accounts_transfer_amount_positive"),
            models.CheckConstraint(
                condition=Q(status__in=TransferStatus.values), name="accounts_transfer_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created"], name="accounts_transfer_status_idx"),
            # The dashboard's 30 days, whatever the status.
            models.Index(fields=["created"], name="accounts_transfer_created_idx"),
            # What an account sent today, for the daily limit.
            models.Index(fields=["account", "created"], name="accounts_transfer_account_idx"),
        ]

    def __str__(self) -> str:
        return f"Transfer {self.pk}: {self.amount_display} to {self.recipient} ({self.status})"

    @property
    def amount_display(self) -> str:
        return format_dollars(self.amount_cents)


class LedgerEntry(models.Model):
    """One movement of money. Append-only: corrections are new, reversing entries."""

    Kind = LedgerKind

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_entries")
    amount_cents = models.BigIntegerField(help_text="positive credits, negative debits")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    transfer = models.ForeignKey(
        Transfer, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries"
    )
    # Several entries may point at one card deposit (refunds in parts, a dispute, money given back);
    # an operator's deposit is corrected at most once (the unique constraint below).
    corrects = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="corrections",
        help_text="the deposit (or card deposit) it takes back or gives back",
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=LedgerKind.values), name="accounts_ledgerentry_kind_valid"),
            # Each kind moves money in one direction and names a transfer, a deposit, or neither.
            models.CheckConstraint(
                condition=(
                    Q(kind="deposit", amount_cents__gt=0, transfer__isnull=True, corrects__isnull=True)
                    | Q(kind="transfer", amount_cents__lt=0, transfer__isnull=False, corrects__isnull=True)
                    | Q(kind="reversal", amount_cents__gt=0, transfer__isnull=False, corrects__isnull=True)
                    | Q(kind="correction", amount_cents__lt=0, transfer__isnull=True, corrects__isnull=False)
                    | Q(kind="card", amount_cents__gt=0, transfer__isnull=True, corrects__isnull=True)
                    | Q(
                        kind__in=["refund", "dispute"],
                        amount_cents__lt=0,
                        transfer__isnull=True,
                        corrects__isnull=False,
                    )
                    | Q(kind__in=["reinstated", "returned"], amount_cents__gt=0, transfer__isnull=True)
                    & Q(corrects__isnull=False)
                ),
                name="accounts_ledgerentry_kind_shape",
            ),
            # A mistaken deposit is taken back at most once.
            models.UniqueConstraint(
                fields=["corrects"], condition=Q(kind="correction"), name="accounts_ledgerentry_corrected_once"
            ),
            # A transfer is debited once and reversed at most once.
            models.UniqueConstraint(
                fields=["transfer", "kind"],
                condition=Q(transfer__isnull=False),
                name="accounts_ledgerentry_once_per_transfer",
            ),
        ]
        # The caller's recent transactions: newest first, for one account, however long its history.
        indexes = [models.Index(fields=["account", "-created", "-id"], name="accounts_ledger_recent_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {format_dollars(self.amount_cents)} on account {self.account_id}"

    def save(self, *args, **kwargs) -> None:
        # A guard, not business logic: history is never rewritten.
        if self.pk is not None and not self._state.adding:
            raise TypeError("ledger entries are append-only; write a reversing entry instead")
        super().save(*args, **kwargs)


class ConfirmationCode(models.Model):
    """A 6-digit code read to the caller, which an operator can verify offline."""

    Purpose = CodePurpose

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="confirmation_codes")
    purpose = models.CharField(max_length=12, choices=Purpose.choices)
    # HMAC-SHA256 keyed with PIN_PEPPER: an operator can look a code up, a
    # stolen database alone cannot.
    code_hash = models.CharField(max_length=64, db_index=True)
    transfer = models.OneToOneField(
        Transfer, on_delete=models.PROTECT, null=True, blank=True, related_name="confirmation_code"
    )
    # A card deposit's code points at the ledger entry the deposit made.
    entry = models.OneToOneField(
        "LedgerEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="confirmation_code"
    )
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField()
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(purpose__in=CodePurpose.values), name="accounts_confirmationcode_purpose_valid"
            ),
            models.CheckConstraint(
                condition=Q(purpose="registration", transfer__isnull=True, entry__isnull=True)
                | Q(purpose="transfer", transfer__isnull=False, entry__isnull=True)
                | Q(purpose="deposit", transfer__isnull=True, entry__isnull=False),
                name="accounts_confirmationcode_names_what_it_confirms",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} code for account {self.account_id}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires <= (now or timezone.now())


class ActivityKind(models.TextChoices):
    CALL = "call", "calls"
    SIGN_IN = "sign_in", "sign-ins"
    FAILED_PIN = "failed_pin", "failed PINs"
    LOCK = "lock", "locks"


class HourlyActivity(models.Model):
    """How many calls, sign-ins, failed PINs and locks each hour: the dashboard's charts.

    Counts only, no account and no number: call state is deleted when a call
    ends, and nothing here says who called.
    """

    Kind = ActivityKind

    hour = models.DateTimeField(help_text="the hour's start, UTC")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "hourly activity"
        constraints = [
            models.UniqueConstraint(fields=["hour", "kind"], name="accounts_hourlyactivity_one_per_hour"),
            models.CheckConstraint(
                condition=Q(kind__in=ActivityKind.values), name="accounts_hourlyactivity_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.count} {self.get_kind_display()} at {local_time.stamp(self.hour)}"
