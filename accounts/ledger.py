"""Money moving: deposits, transfers and their settlement, corrections (accounts/selectors.py reads it back).

Every function here is keyword-only and atomic. Money paths take the account
row with select_for_update() first, so that checking a balance and debiting it
are one step even when two calls on one account confirm at the same moment.
Rows are always locked in the same order (call session, then account) so that
two transactions never wait on each other in a circle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from accounts import activity, holds
from accounts.confirmations import confirmation_code_issue
from accounts.errors import (
    AccountNotVerified,
    AlreadyCorrected,
    DailyLimitReached,
    DepositTooLarge,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    MoneyHeld,
    MoneyOwed,
    NotADeposit,
    TransferAlreadyDecided,
    TransferLimitExceeded,
    UnknownRecipient,
)
from accounts.models import (
    Account,
    ConfirmationCode,
    LedgerEntry,
    Recipient,
    Transfer,
)
from accounts.selectors import daily_limit_cents, daily_room_cents, deposit_limit_cents, transfer_limit_cents

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferReceipt:
    transfer: Transfer
    # The plain code, only for the request that created the transfer; a
    # replayed request gets None (the code exists only as its hash).
    code: str | None


def deposit_check(*, amount_cents: int) -> None:
    """Refuse an amount no operator's deposit may be, before the operator is asked to confirm it."""
    if amount_cents <= 0:
        raise InvalidAmount
    if amount_cents > deposit_limit_cents():
        raise DepositTooLarge(limit_cents=deposit_limit_cents())


@transaction.atomic
def deposit(*, account: Account, amount_cents: int, now: datetime | None = None, by_card: bool = False) -> LedgerEntry:
    """Credit an account, as a ledger entry: an operator's deposit, or a family's card deposit (by_card).

    A card deposit is bounded by the deposit line's own limits before the card is charged
    (payments); once charged it is always credited, so DEPOSIT_MAX_DOLLARS is not checked again.
    """
    if by_card and amount_cents <= 0:
        raise InvalidAmount
    if not by_card:
        deposit_check(amount_cents=amount_cents)
    locked = Account.objects.select_for_update().get(pk=account.pk)
    kind = LedgerEntry.Kind.CARD if by_card else LedgerEntry.Kind.DEPOSIT
    entry = LedgerEntry.objects.create(
        account=account, amount_cents=amount_cents, kind=kind, created=now or timezone.now()
    )
    _credited(locked, amount_cents)
    account.refresh_from_db(fields=["balance_cents"])
    logger.info("%s: account=%s cents=%s entry=%s", kind.label.lower(), account.pk, amount_cents, entry.pk)
    return entry


def transfer_check(
    *,
    account: Account,
    amount_cents: int,
    now: datetime | None = None,
    held_now: holds.Held | None = None,
    room_cents: int | None = None,
) -> None:
    """Refuse an amount early, before the caller picks a recipient; transfer_submit checks again, locked.

    The refusals come in the order the caller needs them (SPEC "Card money and the ledger after the
    call"): not verified, money owed, money held, the per-transfer limit, the daily limit. Money held is
    said only where it is what stops the amount: "you can send only X now" never names an X a limit
    refuses (then the limit is said), and held money a debt used up is no money to wait for.
    held_now and room_cents: what is held and what is left of today's limit, when the caller read them
    already (with the call, in one statement: payments.holds.AMOUNT_CHECK); else asked here.
    """
    if not account.is_verified:
        raise AccountNotVerified
    if account.balance_cents < 0:
        raise MoneyOwed(owed_cents=-account.balance_cents)
    if amount_cents <= 0:
        raise InvalidAmount
    if held_now is None:
        held_now = holds.held(account_id=account.pk, now=now or timezone.now())
    sendable = holds.sendable_cents(balance_cents=account.balance_cents, held_now=held_now)
    limit = transfer_limit_cents()
    room = daily_room_cents(account=account, now=now) if room_cents is None else room_cents
    held_on_the_balance = min(held_now.cents, account.balance_cents)
    if held_on_the_balance and amount_cents > sendable and sendable < min(limit, room):
        raise MoneyHeld(sendable_cents=sendable, held=held_now)
    if amount_cents > limit:
        raise TransferLimitExceeded(limit_cents=limit)
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
        account=locked,
        recipient=recipient,
        recipient_name=recipient.name,
        amount_cents=amount_cents,
        idempotency_key=idempotency_key,
        created=now,
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
    _credited(Account.objects.get(pk=transfer.account_id), transfer.amount_cents)
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
    """Take back a mistaken operator's deposit with a correction entry pointing at it; at most once, never into
    overdraft. A card deposit is not taken back this way: its money goes back to the card (card_money_take_back)."""
    return _take_back(entry, deposit_kind=LedgerEntry.Kind.DEPOSIT, kind=LedgerEntry.Kind.CORRECTION, now=now)


@transaction.atomic
def card_money_take_back(
    *, entry: LedgerEntry, amount_cents: int, kind: str, owing: bool = False, now: datetime | None = None
) -> LedgerEntry:
    """Take card deposit money back (a refund, or a dispute): an entry pointing at the card deposit's credit.

    What is taken back, less what was given back, never exceeds the deposit (checked under the account's
    lock). InsufficientFunds when the money was spent, unless owing: only a dispute or a clawback may take
    the balance below zero, and they lower the account's floor with it.
    """
    now = now or timezone.now()
    account = Account.objects.select_for_update().get(pk=entry.account_id)
    entry = LedgerEntry.objects.get(pk=entry.pk)
    if entry.kind != LedgerEntry.Kind.CARD or kind not in (LedgerEntry.Kind.REFUND, LedgerEntry.Kind.DISPUTE):
        raise NotADeposit
    if amount_cents <= 0 or amount_cents > entry.amount_cents - card_money_taken_cents(entry=entry):
        raise AlreadyCorrected
    if account.balance_cents < amount_cents and not owing:
        raise InsufficientFunds  # the money was spent
    taken = LedgerEntry.objects.create(
        account_id=entry.account_id, amount_cents=-amount_cents, kind=kind, corrects=entry, created=now
    )
    left = account.balance_cents - amount_cents
    Account.objects.filter(pk=account.pk).update(
        balance_cents=F("balance_cents") - amount_cents, lowest_balance_cents=min(account.lowest_balance_cents, left, 0)
    )
    logger.info(
        "card money taken back: entry=%s by entry=%s account=%s cents=%s", entry.pk, taken.pk, account.pk, amount_cents
    )
    return taken


@transaction.atomic
def card_money_give_back(
    *, entry: LedgerEntry, amount_cents: int, kind: str, now: datetime | None = None
) -> LedgerEntry:
    """Give back card deposit money that was taken (a refund that failed, a dispute won): an entry of its own."""
    now = now or timezone.now()
    account = Account.objects.select_for_update().get(pk=entry.account_id)
    if kind not in (LedgerEntry.Kind.REINSTATED, LedgerEntry.Kind.REFUND_RETURNED) or amount_cents <= 0:
        raise NotADeposit
    if amount_cents > card_money_taken_cents(entry=entry):
        raise AlreadyCorrected
    given = LedgerEntry.objects.create(
        account_id=entry.account_id, amount_cents=amount_cents, kind=kind, corrects=entry, created=now
    )
    _credited(account, amount_cents)
    logger.info(
        "card money given back: entry=%s by entry=%s account=%s cents=%s", entry.pk, given.pk, account.pk, amount_cents
    )
    return given


def card_money_taken_cents(*, entry: LedgerEntry) -> int:
    """What is taken back of a card deposit's credit, less what was given back."""
    return -(LedgerEntry.objects.filter(corrects=entry).aggregate(total=Sum("amount_cents"))["total"] or 0)


def _credited(account: Account, amount_cents: int) -> None:
    """Add to a locked account's balance; a debt left by a clawback is repaid first (the floor rises with it)."""
    left = account.balance_cents + amount_cents
    Account.objects.filter(pk=account.pk).update(
        balance_cents=F("balance_cents") + amount_cents,
        lowest_balance_cents=min(max(account.lowest_balance_cents, left), 0),
    )


def _take_back(entry: LedgerEntry, *, deposit_kind: str, kind: str, now: datetime | None) -> LedgerEntry:
    Account.objects.select_for_update().filter(pk=entry.account_id).get()
    entry = LedgerEntry.objects.select_related("account").get(pk=entry.pk)
    if entry.kind != deposit_kind:
        raise NotADeposit
    if LedgerEntry.objects.filter(corrects=entry, kind=LedgerEntry.Kind.CORRECTION).exists():
        raise AlreadyCorrected
    if entry.account.balance_cents < entry.amount_cents:
        raise InsufficientFunds  # the money was spent: it cannot be taken back
    taken = LedgerEntry.objects.create(
        account_id=entry.account_id,
        amount_cents=-entry.amount_cents,
        kind=kind,
        corrects=entry,
        created=now or timezone.now(),
    )
    Account.objects.filter(pk=entry.account_id).update(balance_cents=F("balance_cents") - entry.amount_cents)
    # INFO, as the deposit it takes back: an operator's everyday act, which their command summarises itself.
    logger.info(
        "%s: entry=%s taken back by entry=%s account=%s cents=%s",
        LedgerEntry.Kind(kind).label.lower(),
        entry.pk,
        taken.pk,
        entry.account_id,
        entry.amount_cents,
    )
    return taken
