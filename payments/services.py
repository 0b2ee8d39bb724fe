"""Card deposits moving money: started before <Pay>, credited once after it, refunded to the card.

Every function here is keyword-only and atomic. Crediting locks the pending
deposit's row first, so that Twilio's retried action request, a second worker
answering the same request, and a request for another call carrying the same
processor reference all find the deposit decided and credit nothing more.
Nothing here logs a card number, an expiry date or a PaymentToken: only the
deposit's number and the card's last four.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import codes, ledger
from accounts.confirmations import confirmation_code_issue
from accounts.models import Account, ConfirmationCode
from payments import selectors, stripe_api
from payments.errors import (
    AlreadyRefunded,
    AmountRefused,
    CannotReceiveDeposits,
    NotACardDeposit,
    NotCharged,
    StripeFailed,
    TooManyAttempts,
    UnknownDeposit,
)
from payments.models import CardDeposit, DepositAttempt

logger = logging.getLogger(__name__)

WITHHELD_LINE = selectors.WITHHELD_LINE
SUCCESS = "success"
# What Twilio may put in the action request's fields, kept only in these shapes: anything else is not stored.
_RESULT = re.compile(r"[a-z-]{1,40}")
_REFERENCE = re.compile(r"[A-Za-z0-9_]{1,255}")
_CARD_TYPE = re.compile(r"[a-z-]{1,20}")
_LAST_FOUR = re.compile(r"([0-9]{4})\Z")


def deposit_line(phone_number: str) -> str:
    """What the limits keep of a caller's number: a keyed digest; every withheld number shares one bucket."""
    return codes.line_digest(phone_number) if phone_number else WITHHELD_LINE


def member_lookup(*, member_id: str, line: str, trusted: bool, now: datetime | None = None) -> Account:
    """The active account this member ID names, for a family to pay into.

    TooManyAttempts when this line or the service has used its failed tries; CannotReceiveDeposits
    (and one failed try counted) when the ID is unknown or not verified: both sound the same.
    """
    now = now or timezone.now()
    if refusal := selectors.attempts_refusal(line=line, trusted=trusted, now=now):
        raise TooManyAttempts(refusal)
    member = selectors.member_for_deposit(member_id=member_id)
    if member is None:
        DepositAttempt.objects.create(line=line, created=now)
        raise CannotReceiveDeposits
    return member


@transaction.atomic
def card_deposit_start(
    *, account: Account, amount_cents: int, call_sid: str, line: str, trusted: bool = False, now: datetime | None = None
) -> CardDeposit:
    """The pending card deposit <Pay> will charge for, written before <Pay> starts.

    The member's row is locked while the limits are checked, so that two families paying one member at the
    same moment cannot both use the last of the day's room. AmountRefused or TooManyAttempts otherwise.
    """
    now = now or timezone.now()
    Account.objects.select_for_update().filter(pk=account.pk).get()
    room = selectors.deposit_room_cents(account=account, now=now)
    if amount_cents < 100 or amount_cents > room:
        raise AmountRefused(limit_cents=room, daily=room < selectors.card_max_cents())
    if refusal := selectors.attempts_refusal(line=line, trusted=trusted, now=now):
        raise TooManyAttempts(refusal)
    deposit = CardDeposit.objects.create(
        account=account, amount_cents=amount_cents, call_sid=call_sid, line=line, created=now
    )
    logger.info("card deposit started: deposit=%s account=%s cents=%s", deposit.pk, account.pk, amount_cents)
    return deposit


def _clean(pattern: re.Pattern, value: str | None) -> str:
    value = (value or "").strip()
    return value if pattern.fullmatch(value) else ""


def _last_four(masked: str | None) -> str:
    # Twilio masks the number ("xxxxxxxxxxxx4242", "************4242"); only the last four are kept.
    found = _LAST_FOUR.search((masked or "").strip())
    return found.group(1) if found else ""


@transaction.atomic
def card_deposit_settle(
    *,
    deposit_id: int,
    call_sid: str,
    result: str | None,
    reference: str | None,
    card_type: str | None = None,
    card_number: str | None = None,
    now: datetime | None = None,
) -> CardDeposit:
    """Record what <Pay> did; on Result=success credit the member once. Returns the deposit the caller hears about.

    A deposit already decided is returned as it is (Twilio retried, or another worker answered first). A
    success whose reference already credited another deposit credits nothing: this one fails, flagged, and
    the one that was credited is returned, so the caller hears the same confirmation. UnknownDeposit when
    the call has no such deposit.
    """
    now = now or timezone.now()
    deposit = CardDeposit.objects.select_for_update(of=("self",)).filter(pk=deposit_id, call_sid=call_sid).first()
    if deposit is None:
        raise UnknownDeposit
    if deposit.status != CardDeposit.Status.PENDING:
        return deposit.same_charge_as or deposit
    deposit.result = _clean(_RESULT, result) or "unknown"
    deposit.card_type = _clean(_CARD_TYPE, (card_type or "").lower())
    deposit.card_last4 = _last_four(card_number)
    deposit.decided = now
    if deposit.result != SUCCESS:
        deposit.status = CardDeposit.Status.FAILED
        deposit.save()
        logger.info("card deposit not charged: deposit=%s result=%s", deposit.pk, deposit.result)
        return deposit
    reference = _clean(_REFERENCE, reference)
    if not reference:
        # Charged (Twilio says success) but unnamed: credit it, so the family's money is not lost, and flag it.
        reference, deposit.needs_look = f"missing-{deposit.pk}", "charged with no processor reference"
    credited = CardDeposit.objects.filter(reference=reference).exclude(pk=deposit.pk).first()
    if credited is not None:
        return _same_charge_again(deposit, credited)
    try:
        with transaction.atomic():
            return _credit(deposit, reference=reference, now=now)
    except IntegrityError:
        # Another worker credited the same reference for another deposit a moment ago.
        credited = CardDeposit.objects.filter(reference=reference).exclude(pk=deposit.pk).first()
        if credited is None:
            raise
        return _same_charge_again(deposit, credited)


def _credit(deposit: CardDeposit, *, reference: str, now: datetime) -> CardDeposit:
    room = selectors.deposit_room_cents(account=deposit.account, now=now, excluding=deposit.pk)
    if deposit.amount_cents > room:
        # The card was charged: the money goes on the account all the same, and an operator looks.
        deposit.needs_look = deposit.needs_look or "credited past a limit (two payments at once)"
    entry = ledger.deposit(account=deposit.account, amount_cents=deposit.amount_cents, now=now, by_card=True)
    code = confirmation_code_issue(
        account=deposit.account, purpose=ConfirmationCode.Purpose.DEPOSIT, now=now, entry=entry
    )
    deposit.status, deposit.reference, deposit.entry = CardDeposit.Status.PAID, reference, entry
    deposit.code_sealed = codes.seal_code(code, context=_code_context(deposit))
    deposit.save()
    logger.info(
        "card deposit credited: deposit=%s entry=%s account=%s cents=%s card=%s",
        deposit.pk,
        entry.pk,
        deposit.account_id,
        deposit.amount_cents,
        deposit.card_last4 or "-",
    )
    return deposit


def _same_charge_again(deposit: CardDeposit, credited: CardDeposit) -> CardDeposit:
    # Nothing of a credit attempt that rolled back stays on the row.
    deposit.entry, deposit.reference, deposit.code_sealed = None, None, ""
    deposit.status, deposit.same_charge_as = CardDeposit.Status.FAILED, credited
    deposit.needs_look = f"the same charge as card deposit {credited.pk}, which was credited"
    deposit.save()
    logger.warning("card deposit reference seen again: deposit=%s credited=%s", deposit.pk, credited.pk)
    return credited


def _code_context(deposit: CardDeposit) -> str:
    return f"card-deposit:{deposit.pk}"


def confirmation_code(deposit: CardDeposit) -> str:
    """The code the caller heard for a paid deposit, to say again; "" when there is none."""
    if not deposit.code_sealed:
        return ""
    return codes.unseal_code(deposit.code_sealed, context=_code_context(deposit)) or ""


# Operators ---------------------------------------------------------------------------------------


def card_deposit_refund(*, entry_id: int, now: datetime | None = None) -> CardDeposit:
    """Give a card deposit back to the card through Stripe, taking it off the member's account first.

    In two steps, so that no row stays locked while Stripe is asked (up to a minute, with retries:
    a family paying the same member meanwhile must still be credited). First, in one short
    transaction, the money is taken off the account (refused if it was spent: InsufficientFunds)
    and the deposit marked refunded with no Stripe refund yet. Then Stripe refunds the charge, with
    an idempotency key per deposit, and its refund id is kept. If Stripe fails, the money stays off
    the account, the deposit needs a look, and running this again asks Stripe again and nothing else.
    """
    deposit = _take_back_for_refund(entry_id=entry_id, now=now or timezone.now())
    try:
        refund_id = stripe_api.refund(reference=deposit.reference, idempotency_key=f"myibot-card-deposit-{deposit.pk}")
    except StripeFailed:
        CardDeposit.objects.filter(pk=deposit.pk).update(
            needs_look="taken off the account for a refund Stripe has not made: run refund_card_deposit again"
        )
        raise
    CardDeposit.objects.filter(pk=deposit.pk).update(refund_reference=refund_id, needs_look="")
    deposit.refund_reference, deposit.needs_look = refund_id, ""
    logger.info("card deposit refunded: deposit=%s entry=%s refund=%s", deposit.pk, entry_id, refund_id)
    return deposit


@transaction.atomic
def _take_back_for_refund(*, entry_id: int, now: datetime) -> CardDeposit:
    deposit = (
        CardDeposit.objects.select_for_update(of=("self",))
        .filter(entry_id=entry_id)
        .select_related("account", "entry")
        .first()
    )
    if deposit is None:
        raise NotACardDeposit
    if deposit.status == CardDeposit.Status.REFUNDED:
        if deposit.refund_reference:
            raise AlreadyRefunded
        return deposit  # taken off the account before; Stripe has yet to refund it
    if deposit.status != CardDeposit.Status.PAID:
        raise NotCharged
    ledger.card_deposit_take_back(entry=deposit.entry, now=now)  # locks the account; InsufficientFunds if spent
    deposit.status = CardDeposit.Status.REFUNDED
    deposit.save(update_fields=["status"])
    return deposit


@transaction.atomic
def charge_credit(*, deposit_id: int, reference: str, card_type: str, card_last4: str) -> CardDeposit:
    """Credit a charge Stripe holds for a deposit that was never credited (its action request was lost)."""
    deposit = CardDeposit.objects.select_for_update(of=("self",)).select_related("account").get(pk=deposit_id)
    settled = deposit.entry_id or deposit.same_charge_as_id or deposit.refund_reference
    if deposit.status not in (CardDeposit.Status.PENDING, CardDeposit.Status.FAILED) or settled:
        raise UnknownDeposit
    if CardDeposit.objects.filter(reference=reference).exists():
        raise UnknownDeposit  # this charge already credited a deposit
    deposit.result = deposit.result or "reconciled"
    deposit.card_type, deposit.card_last4 = _clean(_CARD_TYPE, card_type.lower()), _last_four(card_last4)
    deposit.decided = deposit.decided or timezone.now()
    return _credit(deposit, reference=reference, now=timezone.now())


@transaction.atomic
def charge_refund_uncredited(*, deposit_id: int, reference: str) -> CardDeposit:
    """Refund a charge that was never credited: the card gets its money back, the ledger never had it."""
    deposit = CardDeposit.objects.select_for_update(of=("self",)).get(pk=deposit_id)
    if deposit.entry_id:
        raise UnknownDeposit
    refund_id = stripe_api.refund(reference=reference, idempotency_key=f"myibot-uncredited-{deposit.pk}")
    deposit.status, deposit.result, deposit.refund_reference = (
        CardDeposit.Status.FAILED,
        "refunded uncredited",
        refund_id,
    )
    deposit.decided = deposit.decided or timezone.now()
    deposit.save()
    logger.warning("uncredited charge refunded: deposit=%s refund=%s", deposit.pk, refund_id)
    return deposit
