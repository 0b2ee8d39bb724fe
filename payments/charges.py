"""Charging a card deposit ourselves, exactly once, and settling what an answer left open.

<Pay> only turns the card into a Stripe PaymentMethod; its action request
(card_deposit_paid) charges it within that one request, in short steps that
each commit before Stripe is asked, so no row stays locked while the network
answers:

1. the token is recorded against the pending deposit (a second request for it
   finds it taken and charges nothing);
2. the card's fingerprint is read from Stripe (at most 3 s) and checked against
   the card's limits under its lock, and the deposit becomes `charging`;
3. one PaymentIntent is asked for under the deposit's one idempotency key (at
   most 8 s, one retry with the same key and parameters if time is left);
4. what Stripe said is recorded: paid and credited once, not charged (and why),
   or uncertain.

An uncertain deposit is never charged again: Stripe's events (events.py) or
reconciliation (settle_open_deposits, listing PaymentIntents read-only) decide
it, and one with no PaymentIntent an hour after it began charging was not
charged. Nothing here logs the PaymentMethod, a card number or an expiry.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import codes, ledger
from accounts.confirmations import confirmation_code_issue
from accounts.models import Account, ConfirmationCode
from myibot import local_time
from payments import limits, stripe_api
from payments import metrics as payments_metrics
from payments.errors import AmountRefused, CannotReceiveDeposits, StripeFailed, TooManyAttempts, UnknownDeposit
from payments.models import CardDeposit, ChargedBy, DepositAttempt

logger = logging.getLogger(__name__)

SUCCESS = "success"
# Stripe's own budgets inside the action request's deadline (PAY_RESULT_DEADLINE_SECONDS, 10 s: no query
# starts after it, and each lasts at most 4 s, inside Twilio's 15 s; docs/TIME_BUDGET.md).
CARD_SECONDS = 2.5
CHARGE_SECONDS = 8.0
# Kept back from the charge's budget, so that what Stripe said is recorded before the deadline.
RECORD_SECONDS = 1.0
# Charging begins only with this much time left (locks may have eaten the rest): else nothing is charged,
# and the caller hears so; a retry is worth starting only with as much.
CHARGE_NEEDS_SECONDS = RETRY_NEEDS_SECONDS = 2.0
# A deposit charging with no PaymentIntent this long after it began was not charged (Stripe answers in seconds);
# one whose token came but whose charge never began (a crash between the two) is closed sooner.
NO_CHARGE_AFTER = timedelta(minutes=60)
NEVER_CHARGED_AFTER = timedelta(minutes=15)
# The PaymentIntents listed around a deposit: a little before its charge began (clocks differ), and after.
LISTED_BEFORE = timedelta(minutes=5)

# What Twilio may put in the action request's fields, kept only in these shapes: anything else is not stored.
_RESULT = re.compile(r"[a-z-]{1,40}")
_REFERENCE = re.compile(r"[A-Za-z0-9_]{1,255}")
_PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,250}")
_CARD_TYPE = re.compile(r"[a-z-]{1,20}")
_LAST_FOUR = re.compile(r"([0-9]{4})\Z")
# Stripe's codes for a card its bank declined; authentication_required is the bank asking for a check a call
# cannot do, not a decline to count against card testing.
ISSUER_DECLINE = "card_declined"


@dataclass(frozen=True)
class PayResult:
    """What <Pay>'s action request says, as a step may read it. token is used for the one charge, never kept."""

    result: str = ""
    token: str = ""
    confirmation_code: str = ""  # version 3: the connector's charge
    card_type: str = ""
    card_number: str = ""  # masked by Twilio; only its last four are kept


def deposit_line(phone_number: str) -> str:
    """What the limits keep of a caller's number: a keyed digest; every withheld number shares one bucket."""
    return codes.line_digest(phone_number) if phone_number else limits.WITHHELD_LINE


def member_lookup(*, member_id: str, line: str, vouched: bool, now: datetime | None = None) -> Account:
    """The active account this member ID names, for a family to pay into.

    TooManyAttempts when this line's failed lookups, or the service's issuer declines for callers no carrier
    vouches for, are used up; CannotReceiveDeposits (one failed lookup counted) when the ID is unknown or
    not verified: both sound the same to the caller.
    """
    now = now or timezone.now()
    # In the step's own transaction when there is one (no savepoint: nothing in it raises), else its own.
    with transaction.atomic(savepoint=False):
        # The line's lock: parallel calls from one line must not all pass its count before any writes its
        # attempt (every withheld number shares one bucket, held by each call's own three tries instead).
        if line != limits.WITHHELD_LINE:
            limits.lock("lookup", line)
        refusal = limits.lookup_refusal(line=line, vouched=vouched, now=now)
        member = None if refusal else Account.objects.filter(member_id=member_id, status=Account.Status.ACTIVE).first()
        if not refusal and member is None:
            DepositAttempt.objects.create(line=line, created=now)
    # Raised once the attempt is committed: inside the block, the refusal would roll it back.
    if refusal:
        raise TooManyAttempts(refusal)
    if member is None:
        raise CannotReceiveDeposits
    return member


@transaction.atomic
def card_deposit_start(
    *, account: Account, amount_cents: int, call_sid: str, line: str, vouched: bool, now: datetime | None = None
) -> CardDeposit:
    """The pending card deposit <Pay> will make a token for, written before <Pay> starts.

    The member's row (and a vouched line's lock) is held while the limits are checked, pending deposits
    included, so that parallel calls cannot pass together. AmountRefused, PaymentInProgress or TooManyAttempts.
    """
    now = now or timezone.now()
    if vouched:
        limits.lock("line", line)
    Account.objects.select_for_update().filter(pk=account.pk).get()
    limits.start_check(account=account, line=line, vouched=vouched, now=now)
    room = limits.room_cents(account=account, now=now)
    if amount_cents < 100 or amount_cents > room:
        raise AmountRefused(limit_cents=room, daily=room < limits.card_max_cents())
    deposit = CardDeposit.objects.create(
        account=account, amount_cents=amount_cents, call_sid=call_sid, line=line, vouched=vouched, created=now
    )
    logger.info("card deposit started: deposit=%s account=%s cents=%s", deposit.pk, account.pk, amount_cents)
    return deposit


def card_deposit_paid(*, deposit_id: int, call_sid: str, paid: PayResult, deadline: float) -> CardDeposit:
    """<Pay>'s action request: charge the token once, within the request; the deposit as it stands after.

    deadline (time.monotonic()) is when the webhook must have answered Twilio. A repeated request
    charges nothing more and returns the deposit as the first one left it. UnknownDeposit when the call
    has no such deposit. A database failure before charging began propagates (the caller hears the
    usual apology: nothing was charged); after it, any failure leaves the deposit charging and returns it
    (the caller hears that we do not know yet).
    """
    deposit, token = _token_received(deposit_id=deposit_id, call_sid=call_sid, paid=paid)
    if not token:
        return deposit
    try:
        card = stripe_api.card_of(token, timeout=min(CARD_SECONDS, _stripe_left(deadline)))
    except StripeFailed as failed:
        logger.warning("card deposit: card not read from Stripe: deposit=%s why=%s", deposit.pk, failed)
        return _decide(deposit.pk, status=CardDeposit.Status.NOT_CHARGED, reason=CardDeposit.Reason.PROCESSOR)
    deposit = _begin_charging(deposit_id=deposit.pk, card=card, deadline=deadline)
    if deposit.status != CardDeposit.Status.CHARGING:
        return deposit  # the card's or the member's limits refused it
    # From here the card may be charged. Whatever fails, the deposit stays charging and the caller hears
    # that we do not know yet, never "call again later", which invites a second payment: Stripe's event or
    # reconciliation settles it.
    try:
        answer = _charge(deposit, token=token, deadline=deadline)
        return _record(deposit, answer)
    except DatabaseError:
        logger.warning("card deposit charged but not recorded yet: deposit=%s", deposit.pk)
    except Exception:
        logger.exception("card deposit left charging by an unexpected error: deposit=%s", deposit.pk)
    deposit.status = CardDeposit.Status.CHARGING
    return deposit


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


def _stripe_left(deadline: float) -> float:
    """What Stripe may take of the request's time: all but what recording its answer needs."""
    return max(_left(deadline) - RECORD_SECONDS, 0.0)


def _clean(pattern: re.Pattern, value: str | None) -> str:
    value = (value or "").strip()
    return value if pattern.fullmatch(value) else ""


def _last_four(masked: str | None) -> str:
    # Twilio masks the number ("xxxxxxxxxxxx4242", "************4242"); only the last four are kept.
    found = _LAST_FOUR.search((masked or "").strip())
    return found.group(1) if found else ""


@transaction.atomic
def _token_received(*, deposit_id: int, call_sid: str, paid: PayResult) -> tuple[CardDeposit, str]:
    """Record what <Pay> said; the token when this request is the one to charge it, else ""."""
    charged_by = CardDeposit.objects.filter(pk=deposit_id, call_sid=call_sid).values_list("charged_by", flat=True)
    if not charged_by:
        raise UnknownDeposit
    if charged_by[0] == ChargedBy.CONNECTOR:
        # Version 3's result credits here (_connector_result): the account first, then the deposit, the order
        # every money path takes (reconcile --credit takes them so), or the two could deadlock.
        CardDeposit.locked(deposit_id)
    deposit = CardDeposit.objects.select_for_update(of=("self",)).filter(pk=deposit_id, call_sid=call_sid).first()
    if deposit.status != CardDeposit.Status.PENDING or deposit.token_received:
        return deposit.same_charge_as or deposit, ""  # Twilio's retry, or another worker answered first
    now = timezone.now()
    deposit.result = _clean(_RESULT, paid.result) or "unknown"
    deposit.card_type = _clean(_CARD_TYPE, paid.card_type.lower())
    deposit.card_last4 = _last_four(paid.card_number)
    if deposit.charged_by == ChargedBy.CONNECTOR:
        return _connector_result(deposit, paid=paid, now=now), ""
    token = _clean(_PAYMENT_METHOD, paid.token) if deposit.result == SUCCESS else ""
    if not token:
        # <Pay> gave no card (a mistyped card, *, a hang-up, an error while tokenizing) or no usable token:
        # nothing was charged, since only this request ever charges.
        deposit.status, deposit.not_charged_reason, deposit.decided = "not_charged", CardDeposit.Reason.PAY_RESULT, now
        if deposit.result == SUCCESS:
            deposit.result = "success-no-token"
        deposit.save()
        logger.info("card deposit not charged: deposit=%s result=%s", deposit.pk, deposit.result)
        return deposit, ""
    deposit.token_received = now
    deposit.save()
    return deposit, token


@transaction.atomic
def _begin_charging(*, deposit_id: int, card: stripe_api.Card, deadline: float) -> CardDeposit:
    """The card's limits under its lock, then `charging`, committed before Stripe is asked to charge."""
    now = timezone.now()
    if card.fingerprint:
        limits.lock("card", card.fingerprint)
    deposit = CardDeposit.locked(deposit_id, "account")
    if deposit.status != CardDeposit.Status.PENDING:
        return deposit  # reconciliation closed it meanwhile: nothing was charged, and nothing will be
    deposit.card_fingerprint = card.fingerprint[:64]
    deposit.card_type = deposit.card_type or _clean(_CARD_TYPE, card.brand.lower())
    deposit.card_last4 = deposit.card_last4 or _last_four(card.last4)
    if limits.card_refused(deposit=deposit, fingerprint=deposit.card_fingerprint, now=now):
        return _not_charging(deposit, CardDeposit.Reason.CARD_LIMIT, now=now)
    # Under the member's lock, as every other deposit of the day is counted: another family's payment may have
    # begun and been charged while this <Pay> ran past its slot (PAY_SLOT; limits.PAY_LONGEST).
    room = limits.room_cents(account=deposit.account, now=now, excluding=deposit.pk, day_of=deposit.created)
    if deposit.amount_cents > room:
        return _not_charging(deposit, CardDeposit.Reason.DAILY_LIMIT, now=now)
    if _stripe_left(deadline) < CHARGE_NEEDS_SECONDS:
        # Waiting for locks ate the request's time: asking Stripe now would most likely end uncertain.
        return _not_charging(deposit, CardDeposit.Reason.NO_TIME, now=now)
    deposit.status, deposit.charging_started = CardDeposit.Status.CHARGING, now
    deposit.save()
    return deposit


def _not_charging(deposit: CardDeposit, reason: str, *, now: datetime) -> CardDeposit:
    """A locked deposit refused before Stripe was asked: not charged, and why."""
    deposit.status, deposit.not_charged_reason, deposit.decided = CardDeposit.Status.NOT_CHARGED, reason, now
    deposit.save()
    # No time left is the database's slowness, worth an operator's look; a limit is the limits doing their work.
    level = logging.WARNING if reason == CardDeposit.Reason.NO_TIME else logging.INFO
    logger.log(
        level, "card deposit not charged, refused before Stripe was asked: deposit=%s reason=%s", deposit.pk, reason
    )
    return deposit


def _charge(deposit: CardDeposit, *, token: str, deadline: float) -> stripe_api.ChargeAnswer:
    """One PaymentIntent, and at most one retry with the same key and parameters while time is left."""
    ask = {
        "amount_cents": deposit.amount_cents,
        "payment_method": token,
        "description": deposit.description,
        "metadata": {"public_id": str(deposit.public_id), "deposit": str(deposit.pk)},
        "idempotency_key": deposit.idempotency_key,
    }
    answer = stripe_api.charge(**ask, timeout=min(CHARGE_SECONDS, _stripe_left(deadline)))
    if answer.retryable and _stripe_left(deadline) >= RETRY_NEEDS_SECONDS:
        logger.info("card deposit charge retried: deposit=%s why=%s", deposit.pk, answer.why)
        retried = stripe_api.charge(**ask, timeout=min(CHARGE_SECONDS, _stripe_left(deadline)))
        # The first may have charged: a retry Stripe refuses (a 4xx) says nothing of it, so it stays uncertain.
        if retried.answer is not stripe_api.Answer.REFUSED:
            answer = retried
    return answer


def _record(deposit: CardDeposit, answer: stripe_api.ChargeAnswer) -> CardDeposit:
    if answer.answer is stripe_api.Answer.SUCCEEDED:
        return credit(deposit_id=deposit.pk, payment_intent=answer.payment_intent, amount_cents=deposit.amount_cents)
    if answer.answer is stripe_api.Answer.CARD_ERROR:
        return _card_refused(
            deposit.pk, code=answer.code, decline_code=answer.decline_code, payment_intent=answer.payment_intent
        )
    if answer.answer is stripe_api.Answer.REFUSED:
        logger.warning("card deposit: Stripe refused the charge request: deposit=%s why=%s", deposit.pk, answer.why)
        return _decide(deposit.pk, status=CardDeposit.Status.NOT_CHARGED, reason=CardDeposit.Reason.PROCESSOR)
    logger.warning("card deposit uncertain: deposit=%s why=%s", deposit.pk, answer.why)
    return _decide(deposit.pk, status=CardDeposit.Status.UNCERTAIN, payment_intent=answer.payment_intent)


@transaction.atomic
def _decide(
    deposit_id: int, *, status: str, reason: str = "", decline_code: str = "", payment_intent: str = ""
) -> CardDeposit:
    """Move a deposit that is not paid to not_charged or uncertain, if MOVES allows it; else leave it."""
    deposit = CardDeposit.objects.select_for_update(of=("self",)).get(pk=deposit_id)
    if not deposit.can_move_to(status):
        return deposit
    deposit.status, deposit.not_charged_reason = status, reason
    deposit.decline_code = decline_code[:40] or deposit.decline_code
    if payment_intent and not CardDeposit.objects.filter(payment_intent=payment_intent).exclude(pk=deposit.pk).exists():
        deposit.payment_intent = payment_intent
    if status == CardDeposit.Status.NOT_CHARGED:
        deposit.decided = timezone.now()
    deposit.save()
    payments_metrics.charge_decided(status)
    logger.info("card deposit %s: deposit=%s reason=%s", status, deposit.pk, reason or "-")
    return deposit


@transaction.atomic
def credit(*, deposit_id: int, payment_intent: str, amount_cents: int, now: datetime | None = None) -> CardDeposit:
    """Credit a deposit Stripe charged, exactly once: the action request, an event and reconciliation all come here.

    A deposit already paid is returned as it is. A charge whose amount is not the deposit's, or whose
    PaymentIntent another deposit was credited for, credits nothing and is flagged. Money Stripe took is
    always credited, even past a limit (two payments raced) or after we said not charged (a late success):
    the operator is told.
    """
    now = now or timezone.now()
    deposit = CardDeposit.locked(deposit_id, "account")
    if deposit.status == CardDeposit.Status.PAID:
        return deposit
    if amount_cents != deposit.amount_cents:
        deposit.needs_look = f"Stripe charged {amount_cents} cents on {payment_intent}, not the deposit's amount"
        deposit.save(update_fields=["needs_look"])
        logger.warning("card deposit charge of another amount: deposit=%s", deposit.pk)
        return deposit
    if CardDeposit.objects.filter(payment_intent=payment_intent).exclude(pk=deposit.pk).exists():
        deposit.needs_look = f"{payment_intent} is another deposit's charge"
        deposit.save(update_fields=["needs_look"])
        return deposit
    return _credit(deposit, now=now, payment_intent=payment_intent)


def _credit(deposit: CardDeposit, *, now: datetime, payment_intent: str = "", reference: str = "") -> CardDeposit:
    """The ledger entry, the code and paid, for a locked deposit. Callers hold the account's lock."""
    if deposit.status == CardDeposit.Status.NOT_CHARGED:
        deposit.needs_look = f"charged after it was closed as not charged ({deposit.not_charged_reason}): credited"
    elif deposit.amount_cents > limits.room_cents(account=deposit.account, now=now, excluding=deposit.pk):
        # The card was charged: the money goes on the account all the same, and an operator looks.
        deposit.needs_look = deposit.needs_look or "credited past a limit (two payments at once)"
    entry = ledger.deposit(account=deposit.account, amount_cents=deposit.amount_cents, now=now, by_card=True)
    code = confirmation_code_issue(
        account=deposit.account, purpose=ConfirmationCode.Purpose.DEPOSIT, now=now, entry=entry
    )
    deposit.status, deposit.not_charged_reason, deposit.entry = CardDeposit.Status.PAID, "", entry
    deposit.payment_intent = payment_intent or deposit.payment_intent
    deposit.reference = reference or deposit.reference
    deposit.decided = now
    deposit.release_at = release_at(now)
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
    payments_metrics.charge_decided(CardDeposit.Status.PAID)
    return deposit


def release_at(charged: datetime) -> datetime:
    """When card money charged at `charged` may leave by transfer: the next local midnight plus the hold, so
    that the date a member hears is a whole day.

    The hold's whole days are counted on the local calendar, not as elapsed hours: across a clock change
    72 hours after a midnight is 23:00 or 01:00, and the member would hear one day and be held to another.
    """
    hours = settings.CARD_FUNDS_HOLD_HOURS
    release_day = local_time.local_date(charged) + timedelta(days=1 + hours // 24)
    return local_time.day_start(release_day) + timedelta(hours=hours % 24)


def _code_context(deposit: CardDeposit) -> str:
    return f"card-deposit:{deposit.pk}"


def confirmation_code(deposit: CardDeposit) -> str:
    """The code the caller heard for a paid deposit, to say again; "" when there is none."""
    if not deposit.code_sealed:
        return ""
    return codes.unseal_code(deposit.code_sealed, context=_code_context(deposit)) or ""


# Version 3: Twilio's connector charged inside <Pay> -------------------------------------------------


# <Pay> results after which Twilio's connector (version 3, <Pay chargeAmount>) may have charged the card: it
# reports an error of its own or Twilio's when its request to Stripe timed out or failed midway, whatever
# Stripe did. A star, a hang-up or too many wrong entries end <Pay> before any charge.
CONNECTOR_MAY_HAVE_CHARGED = frozenset({"payment-connector-error", "internal-error"})


def _connector_result(deposit: CardDeposit, *, paid: PayResult, now: datetime) -> CardDeposit:
    """A call that began before version 4 was deployed: its <Pay> charged, and its result is credited once."""
    reference = _clean(_REFERENCE, paid.confirmation_code)
    if deposit.result != SUCCESS or not reference:
        deposit.status, deposit.not_charged_reason, deposit.decided = "not_charged", CardDeposit.Reason.PAY_RESULT, now
        if deposit.result == SUCCESS or deposit.result in CONNECTOR_MAY_HAVE_CHARGED:
            # Twilio says charged but names no charge, or its connector failed while it may have been charging:
            # neither is "not charged". reconcile_card_deposits pairs the charge by its description.
            deposit.status, deposit.not_charged_reason = CardDeposit.Status.UNCERTAIN, ""
            deposit.charging_started, deposit.decided = now, None
            deposit.needs_look = (
                "version 3 success with no processor reference: pair it with reconcile --credit"
                if deposit.result == SUCCESS
                else f"version 3 {deposit.result}: the connector may have charged; pair it with reconcile --credit"
            )
        deposit.save()
        return deposit
    field = "payment_intent" if reference.startswith("pi_") else "reference"
    credited = CardDeposit.objects.filter(**{field: reference}).exclude(pk=deposit.pk).first()
    if credited is not None:
        deposit.status, deposit.not_charged_reason, deposit.decided = "not_charged", CardDeposit.Reason.PAY_RESULT, now
        deposit.same_charge_as = credited
        deposit.needs_look = f"the same charge as card deposit {credited.pk}, which was credited"
        deposit.save()
        return credited
    Account.objects.select_for_update().filter(pk=deposit.account_id).get()
    return _credit(deposit, now=now, **{field: reference})


def named_elsewhere(references: set[str], *, deposit_id: int) -> bool:
    """Whether another card deposit names one of a charge's ids (its charge or its PaymentIntent, in either
    field): version 3 kept whichever <Pay> reported, so one charge may be known by either."""
    return (
        CardDeposit.objects.filter(Q(reference__in=references) | Q(payment_intent__in=references))
        .exclude(pk=deposit_id)
        .exists()
    )


def connector_credit(
    *, deposit_id: int, reference: str, card_type: str, card_last4: str, references: set[str] = frozenset()
) -> CardDeposit:
    """Version 3: credit a connector's charge Stripe holds for a deposit that was never credited.

    references: every id Stripe gives the charge (stripe_api.Charge.references), so that a charge another
    deposit was credited for by its other id is never credited twice (UnknownDeposit)."""
    with transaction.atomic():
        deposit = CardDeposit.locked(deposit_id, "account")
        taken = named_elsewhere({reference, *references}, deposit_id=deposit.pk)
        if deposit.status == CardDeposit.Status.PAID or deposit.refunds.exists() or taken:
            raise UnknownDeposit
        deposit.result = deposit.result or "reconciled"
        deposit.card_type = deposit.card_type or _clean(_CARD_TYPE, card_type.lower())
        deposit.card_last4 = deposit.card_last4 or _last_four(card_last4)
        named_by = "payment_intent" if reference.startswith("pi_") else "reference"
        return _credit(deposit, now=timezone.now(), **{named_by: reference})


# Settling what was left open, read-only toward Stripe -----------------------------------------------


@dataclass
class Settled:
    credited: list[CardDeposit]
    not_charged: list[CardDeposit]
    still_open: list[CardDeposit]
    # Charging began so recently that its request may still be under way: the next run looks.
    too_recent: list[CardDeposit] = field(default_factory=list)


def settle_open_deposits(*, now: datetime | None = None, resolve: bool = True) -> Settled:
    """Decide deposits left charging or uncertain from the PaymentIntents Stripe made, never creating one.

    A PaymentIntent carrying the deposit's public_id and amount decides it: succeeded credits, failed or
    canceled closes it as not charged. None an hour after charging began: Stripe made no charge. Deposits
    whose token came but whose charge never began, and those whose <Pay> never reported, are closed as not
    charged too (only the action request charges). resolve=False only reports. StripeFailed when Stripe
    cannot be read.
    """
    now = now or timezone.now()
    settled = Settled([], [], [])
    _close_never_charged(now=now, resolve=resolve, settled=settled)
    charging = CardDeposit.objects.filter(status__in=[CardDeposit.Status.CHARGING, CardDeposit.Status.UNCERTAIN])
    settled.too_recent = list(charging.filter(charging_started__gte=now - limits.CHARGING_SLOT).order_by("pk"))
    open_deposits = list(charging.filter(charging_started__lt=now - limits.CHARGING_SLOT).order_by("charging_started"))
    if not open_deposits:
        return settled
    since = min(deposit.charging_started for deposit in open_deposits) - LISTED_BEFORE
    until = max(deposit.charging_started for deposit in open_deposits) + NO_CHARGE_AFTER
    found = {
        intent.public_id: intent
        for intent in stripe_api.intents_created(since=since, until=min(until, now))
        if intent.public_id and intent.livemode == stripe_api.livemode()
    }
    for deposit in open_deposits:
        intent = found.get(str(deposit.public_id))
        if intent is not None and intent.amount_cents == deposit.amount_cents and intent.succeeded:
            if resolve:
                deposit = credit(deposit_id=deposit.pk, payment_intent=intent.id, amount_cents=intent.amount_cents)
            settled.credited.append(deposit)
        elif intent is not None and intent.failed:
            if resolve:
                deposit = payment_failed(deposit=deposit, intent=intent)
            settled.not_charged.append(deposit)
        elif intent is None and deposit.charging_started < now - NO_CHARGE_AFTER:
            if resolve:
                deposit = _decide(
                    deposit.pk, status=CardDeposit.Status.NOT_CHARGED, reason=CardDeposit.Reason.NO_CHARGE
                )
            settled.not_charged.append(deposit)
        else:
            settled.still_open.append(deposit)
    return settled


def payment_failed(*, deposit: CardDeposit, intent: stripe_api.Intent) -> CardDeposit:
    """Stripe says the deposit's PaymentIntent did not charge: not charged, with the bank's word if it gave one."""
    return _card_refused(deposit.pk, code=intent.code, decline_code=intent.decline_code, payment_intent=intent.id)


def _card_refused(deposit_id: int, *, code: str, decline_code: str, payment_intent: str) -> CardDeposit:
    """Not charged because the card was refused: an issuer decline (counted against card testing) or a card error."""
    declined = code == ISSUER_DECLINE and decline_code != "authentication_required"
    return _decide(
        deposit_id,
        status=CardDeposit.Status.NOT_CHARGED,
        reason=CardDeposit.Reason.ISSUER_DECLINE if declined else CardDeposit.Reason.CARD_ERROR,
        decline_code=decline_code or code,
        payment_intent=payment_intent,
    )


def _close_never_charged(*, now: datetime, resolve: bool, settled: Settled) -> None:
    stale = CardDeposit.objects.filter(
        status=CardDeposit.Status.PENDING, charged_by=ChargedBy.SERVICE, created__lt=now - limits.PAY_LONGEST
    ).exclude(token_received__gt=now - NEVER_CHARGED_AFTER)
    for deposit in stale:
        if resolve:
            deposit = _decide(deposit.pk, status=CardDeposit.Status.NOT_CHARGED, reason=CardDeposit.Reason.NO_CHARGE)
            if not deposit.result:
                CardDeposit.objects.filter(pk=deposit.pk).update(result="no-result")
        settled.not_charged.append(deposit)
