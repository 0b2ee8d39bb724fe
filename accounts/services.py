"""Work that spans models: moving money and verifying codes (accounts/identity.py has who a caller is).

Every function here is keyword-only and atomic. Money paths take the account
row with select_for_update() first, so that checking a balance and debiting it
are one step even when two calls on one account confirm at the same moment.
Rows are always locked in the same order (call session, then account) so that
two transactions never wait on each other in a circle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from accounts import activity, codes
from accounts.models import Account, ConfirmationCode, LedgerEntry, Recipient, Transfer
from accounts.money import format_dollars
from myibot import local_time

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class TransferReceipt:
    transfer: Transfer
    # The plain code, only for the request that created the transfer; a
    # replayed request gets None (the code exists only as its hash).
    code: str | None


@dataclass(frozen=True)
class CodeCheck:
    confirmation_code: ConfirmationCode
    already_verified: bool
    expired: bool


def transfer_limit_cents() -> int:
    return settings.TRANSFER_LIMIT_DOLLARS * 100


def deposit_limit_cents() -> int:
    return settings.DEPOSIT_MAX_DOLLARS * 100


def daily_limit_cents() -> int:
    return settings.DAILY_TRANSFER_LIMIT_DOLLARS * 100


def transfers_counted_today(*, account: Account, now: datetime | None = None) -> QuerySet[Transfer]:
    """The account's transfers that count toward today's limit: submitted or settled since local midnight.

    Today is the calendar day in TIME_ZONE. A range on created, not a __date
    lookup, so that the (account, created) index serves it.
    """
    start, end = local_time.day_bounds(now or timezone.now())
    return Transfer.objects.filter(account=account, created__gte=start, created__lt=end).exclude(
        status=Transfer.Status.REJECTED
    )


def daily_room_cents(*, account: Account, now: datetime | None = None) -> int:
    """What the account may still send today (in TIME_ZONE): the limit less what it sent since local
    midnight; a rejected transfer gives its room back. One query, on an index."""
    sent = transfers_counted_today(account=account, now=now).aggregate(total=Sum("amount_cents"))["total"]
    return max(daily_limit_cents() - (sent or 0), 0)


# Money -----------------------------------------------------------------


def deposit_check(*, amount_cents: int) -> None:
    """Refuse an amount no deposit may be, before the operator is asked to confirm it."""
    if amount_cents <= 0:
        raise InvalidAmount
    if amount_cents > deposit_limit_cents():
        raise DepositTooLarge(limit_cents=deposit_limit_cents())


@transaction.atomic
def deposit(*, account: Account, amount_cents: int, now: datetime | None = None) -> LedgerEntry:
    """Credit an account, as a ledger entry."""
    deposit_check(amount_cents=amount_cents)
    Account.objects.select_for_update().filter(pk=account.pk).get()
    entry = LedgerEntry.objects.create(
        account=account, amount_cents=amount_cents, kind=LedgerEntry.Kind.DEPOSIT, created=now or timezone.now()
    )
    Account.objects.filter(pk=account.pk).update(balance_cents=F("balance_cents") + amount_cents)
    account.refresh_from_db(fields=["balance_cents"])
    logger.info("deposit: account=%s cents=%s", account.pk, amount_cents)
    return entry


def transfer_check(*, account: Account, amount_cents: int, now: datetime | None = None) -> None:
    """Refuse an amount early, before the caller picks a recipient; transfer_submit checks again, locked."""
    if not account.is_verified:
        raise AccountNotVerified
    if amount_cents <= 0:
        raise InvalidAmount
    if amount_cents > transfer_limit_cents():
        raise TransferLimitExceeded(limit_cents=transfer_limit_cents())
    room = daily_room_cents(account=account, now=now)
    if amount_cents > room:
        raise DailyLimitReached(room_cents=room, limit_cents=daily_limit_cents())
    if amount_cents > account.balance_cents:
        raise InsufficientFunds


@transaction.atomic
def transfer_submit(
    *, account: Account, recipient_code: str, amount_cents: int, idempotency_key: str, now: datetime | None = None
) -> TransferReceipt:
    """Debit the account and record a submitted transfer with its confirmation code.

    The same idempotency_key with the same transfer returns the first result
    and writes nothing; with a different transfer it is an IdempotencyConflict.
    """
    now = now or timezone.now()
    # The lock that makes the balance check and the debit one step.
    locked = Account.objects.select_for_update().get(pk=account.pk)
    existing = Transfer.objects.filter(idempotency_key=idempotency_key).select_related("recipient").first()
    if existing is not None:
        if (existing.account_id, existing.recipient.code, existing.amount_cents) != (
            account.pk,
            recipient_code,
            amount_cents,
        ):
            raise IdempotencyConflict
        return TransferReceipt(transfer=existing, code=None)

    recipient = Recipient.objects.filter(code=recipient_code, active=True).first()
    if recipient is None:
        raise UnknownRecipient
    # Under the account's lock: two calls at once cannot both pass the balance or the daily limit.
    transfer_check(account=locked, amount_cents=amount_cents, now=now)

    transfer = Transfer.objects.create(
        account=locked, recipient=recipient, amount_cents=amount_cents, idempotency_key=idempotency_key, created=now
    )
    LedgerEntry.objects.create(
        account=locked, amount_cents=-amount_cents, kind=LedgerEntry.Kind.TRANSFER, transfer=transfer, created=now
    )
    Account.objects.filter(pk=locked.pk).update(balance_cents=F("balance_cents") - amount_cents)
    code = confirmation_code_issue(
        account=locked, purpose=ConfirmationCode.Purpose.TRANSFER, transfer=transfer, now=now
    )
    account.balance_cents = locked.balance_cents - amount_cents
    activity.transfer_submitted(amount_cents)
    logger.info("transfer submitted: transfer=%s account=%s cents=%s", transfer.pk, locked.pk, amount_cents)
    return TransferReceipt(transfer=transfer, code=code)


@transaction.atomic
def transfer_settle(*, transfer: Transfer, now: datetime | None = None) -> Transfer:
    """Mark a submitted transfer paid out. The money already left the balance."""
    transfer = _transfer_lock_undecided(transfer)
    transfer.status = Transfer.Status.SETTLED
    transfer.decided = now or timezone.now()
    transfer.save(update_fields=["status", "decided"])
    logger.info("transfer settled: transfer=%s", transfer.pk)
    return transfer


@transaction.atomic
def transfer_reject(*, transfer: Transfer, now: datetime | None = None) -> Transfer:
    """Refuse a submitted transfer and give the money back with a reversing entry."""
    now = now or timezone.now()
    # Account first, then transfer: the order transfer_submit takes them in.
    Account.objects.select_for_update().filter(pk=transfer.account_id).get()
    transfer = _transfer_lock_undecided(transfer)
    LedgerEntry.objects.create(
        account_id=transfer.account_id,
        amount_cents=transfer.amount_cents,
        kind=LedgerEntry.Kind.REVERSAL,
        transfer=transfer,
        created=now,
    )
    Account.objects.filter(pk=transfer.account_id).update(balance_cents=F("balance_cents") + transfer.amount_cents)
    transfer.status = Transfer.Status.REJECTED
    transfer.decided = now
    transfer.save(update_fields=["status", "decided"])
    logger.info("transfer rejected: transfer=%s account=%s", transfer.pk, transfer.account_id)
    return transfer


def _transfer_lock_undecided(transfer: Transfer) -> Transfer:
    transfer = Transfer.objects.select_for_update().get(pk=transfer.pk)
    if transfer.status != Transfer.Status.SUBMITTED:
        raise TransferAlreadyDecided
    return transfer


@transaction.atomic
def deposit_reverse(*, entry: LedgerEntry, now: datetime | None = None) -> LedgerEntry:
    """Take back a mistaken deposit with a correction entry pointing at it; at most once, never into overdraft."""
    Account.objects.select_for_update().filter(pk=entry.account_id).get()
    entry = LedgerEntry.objects.select_related("account").get(pk=entry.pk)
    if entry.kind != LedgerEntry.Kind.DEPOSIT:
        raise NotADeposit
    if LedgerEntry.objects.filter(corrects=entry).exists():
        raise AlreadyCorrected
    if entry.account.balance_cents < entry.amount_cents:
        raise InsufficientFunds  # the money was spent: it cannot be taken back
    correction = LedgerEntry.objects.create(
        account_id=entry.account_id,
        amount_cents=-entry.amount_cents,
        kind=LedgerEntry.Kind.CORRECTION,
        corrects=entry,
        created=now or timezone.now(),
    )
    Account.objects.filter(pk=entry.account_id).update(balance_cents=F("balance_cents") - entry.amount_cents)
    # INFO, as the deposit it corrects: an operator's everyday act, which their command summarises itself.
    logger.info(
        "deposit corrected: entry=%s correction=%s account=%s cents=%s",
        entry.pk,
        correction.pk,
        entry.account_id,
        entry.amount_cents,
    )
    return correction


def ledger_recent(*, account: Account, count: int = 5) -> list[LedgerEntry]:
    """The account's last entries, newest first, with what each names: one query, however long the history."""
    return list(
        LedgerEntry.objects.filter(account=account)
        .select_related("transfer__recipient")
        .order_by("-created", "-id")[:count]
    )


def ledger_balance_cents(*, account: Account) -> int:
    """The balance recomputed from the ledger, which the cached column must equal."""
    return LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount_cents"))["total"] or 0


# Confirmation codes ---------------------------------------------------------


def confirmation_code_issue(*, account: Account, purpose: str, now: datetime, transfer: Transfer | None = None) -> str:
    """Store a new code's keyed hash and return the code, the only time it exists in the clear."""
    for _ in range(10):
        code = codes.new_code()
        digest = codes.code_digest(code)
        # Among codes still valid, one code must name one thing.
        if not ConfirmationCode.objects.filter(code_hash=digest, expires__gt=now).exists():
            break
    ConfirmationCode.objects.create(
        account=account,
        purpose=purpose,
        transfer=transfer,
        code_hash=digest,
        created=now,
        expires=now + timedelta(days=settings.CONFIRMATION_CODE_TTL_DAYS),
    )
    return code


@transaction.atomic
def confirmation_code_verify(*, code: str, now: datetime | None = None) -> CodeCheck:
    """Look a code up by its keyed hash and mark it verified, once; UnknownCode if none."""
    now = now or timezone.now()
    if not codes.is_code(code):
        raise UnknownCode
    found = (
        ConfirmationCode.objects.select_for_update(of=("self",))
        .filter(code_hash=codes.code_digest(code))
        .select_related("account", "transfer__recipient")
        .order_by("-expires")
        .first()
    )
    if found is None:
        raise UnknownCode
    already_verified = found.verified_at is not None
    expired = found.is_expired(now)
    if not already_verified and not expired:
        found.verified_at = now
        found.save(update_fields=["verified_at"])
        if found.purpose == ConfirmationCode.Purpose.REGISTRATION and not found.account.is_verified:
            # The caller read staff the code they heard at registration: money may now move.
            found.account.verify(now)
            found.account.save(update_fields=["status", "verified_at"])
            logger.info("account verified: account=%s", found.account_id)
    logger.info("confirmation checked: confirmation=%s expired=%s already=%s", found.pk, expired, already_verified)
    return CodeCheck(confirmation_code=found, already_verified=already_verified, expired=expired)


def describe_code_check(check: CodeCheck) -> str:
    """What an operator is told about a code: for verify_code and the admin's form."""
    found = check.confirmation_code
    if found.transfer_id:
        transfer = found.transfer
        what = (
            f"transfer {transfer.pk} of {format_dollars(transfer.amount_cents)} to {transfer.recipient} "
            f"from {found.account}, {transfer.status}"
        )
    else:
        what = f"registration of {found.account} ({found.account.get_status_display().lower()})"
    when = f"issued {local_time.stamp(found.created)}"
    if check.expired:
        state = f"EXPIRED on {local_time.stamp(found.expires)}; not verified"
    elif check.already_verified:
        state = f"already verified on {local_time.stamp(found.verified_at)}"
    else:
        state = "verified now"
    return f"Code confirms the {what}; {when}; {state}."
