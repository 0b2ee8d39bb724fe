"""The deposit line (docs/CALL_FLOW.md, "The deposit line"): a family puts money on a member's account by card.

A second Twilio number, pointed at /twilio/deposit. Nobody signs in: the caller
enters the member's ID, hears it read back, enters whole dollars, hears the
exact charge and that there is no fee, then Twilio's <Pay> takes the card.
Card digits never reach a <Gather> or this server: <Pay> turns the card into a
Stripe PaymentMethod, and its action request charges it once (payments.charges,
called by the view before this step hears of it). What the caller hears follows
what is known: paid, not charged and why, or that we do not know yet.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from twilio.twiml.voice_response import VoiceResponse

from accounts.spoken import spoken_digits, spoken_dollars
from ivr import twiml
from ivr.machine import (
    DEPOSIT_LANGUAGE_MENU,
    PAUSE,
    Again,
    Code,
    Goodbye,
    Goto,
    Line,
    Outcome,
    Pay,
    Step,
    first_deposit_step,
    step,
)
from ivr.models import CallSession
from ivr.steps.common import HEAR_THE_CODE_AGAIN, SIX_DIGITS, MenuPrompt, Option
from ivr.steps.entry import Language
from myibot import languages
from payments import charges, selectors
from payments.errors import AmountRefused, CannotReceiveDeposits, PaymentInProgress, TooManyAttempts
from payments.models import CardDeposit

CANNOT_RECEIVE = gettext_lazy("That member ID cannot receive deposits.")
# Failed tries used up (payments.limits): this phone's for today, or the service's issuer declines for
# this hour, which only callers whose number no carrier vouches for are held to.
TOO_MANY_TRIES = {
    "line": gettext_lazy(
        "Sorry, there have been too many tries from this phone today. Please call again tomorrow. Goodbye."
    ),
    "service": gettext_lazy("Sorry, the deposit line is very busy right now. Please call again later. Goodbye."),
}
NOT_CHARGED = gettext_lazy("Your card was not charged.")
IN_PROGRESS = gettext_lazy("Another payment for this account is in progress. Please try again in a few minutes.")
GOODBYE = gettext_lazy("Goodbye.")
# Stripe gave no definite answer: never "not charged", never "call back" (that invites a second payment).
UNCERTAIN = gettext_lazy(
    "We do not know yet if your card was charged. Please do not pay again: if it was charged, the money will "
    "reach the account by itself. The member will hear it when they check their balance. Goodbye."
)
NOT_AVAILABLE = gettext_lazy("Sorry, card deposits are not available right now. Please call again later. Goodbye.")
# Said after <Pay> when Twilio goes on to the next verb without calling its action (the call then asks the
# action URL, which answers from what is recorded).
ONE_MOMENT = gettext_lazy("One moment, please.")
NO_ROOM_TODAY = gettext_lazy("That account cannot receive more card deposits today.")
THANKS_GOODBYE = gettext_lazy("Thank you for calling. Goodbye.")
WHOLE_DOLLARS = re.compile(r"[0-9]{1,5}", re.ASCII)

# (for, errorType or "", the words): what <Pay> asks for, and what it says after each kind of mistake.
PAY_PROMPTS = [
    ("payment-card-number", "", gettext_lazy("Please enter the card number, then press pound.")),
    (
        "payment-card-number",
        "timeout",
        gettext_lazy("We did not get the card number. Please enter it, then press pound."),
    ),
    (
        "payment-card-number",
        "invalid-card-number",
        gettext_lazy("That card number is not valid. Please enter it again, then press pound."),
    ),
    (
        "payment-card-number",
        "invalid-card-type",
        gettext_lazy("That kind of card is not accepted. Please enter another card number, then press pound."),
    ),
    (
        "expiration-date",
        "",
        gettext_lazy("Please enter the expiration date: 2 digits for the month, then 2 for the year."),
    ),
    (
        "expiration-date",
        "invalid-date",
        gettext_lazy("That date is not valid. Please enter the month and the year again, 4 digits."),
    ),
    (
        "expiration-date",
        "timeout",
        gettext_lazy("We did not get the expiration date. Please enter 2 digits for the month, then 2 for the year."),
    ),
    (
        "security-code",
        "",
        gettext_lazy(
            "Please enter the security code: 3 digits on the back, or 4 on the front of an American Express card."
        ),
    ),
    ("security-code", "invalid-security-code", gettext_lazy("That security code is not valid. Please enter it again.")),
    ("security-code", "timeout", gettext_lazy("We did not get the security code. Please enter it now.")),
    ("postal-code", "", gettext_lazy("Please enter the ZIP code of the card's billing address.")),
    ("postal-code", "invalid-postal-code", gettext_lazy("That ZIP code is not valid. Please enter it again.")),
    ("postal-code", "timeout", gettext_lazy("We did not get the ZIP code. Please enter it now.")),
    # Played while Twilio's connector turns the card into a token, the moment before our charge begins: the
    # caller then hears nothing until the action request answers, so this is where they are asked to stay.
    ("payment-processing", "", gettext_lazy("Please stay on the line while we charge your card.")),
]
# Why a card was not charged, in plain words (_why_not_charged picks one).
NOT_CHARGED_BECAUSE = {
    "declined": gettext_lazy("The card was declined."),
    "insufficient_funds": gettext_lazy("There is not enough money on the card."),
    "authentication_required": gettext_lazy(
        "Your bank asked for an extra step that cannot be done by phone. Please try another card."
    ),
    "card_details": gettext_lazy("The card details were not accepted."),
    "card_limit": gettext_lazy("That card cannot be used for this account. Please try another card."),
    # Said after a slow <Pay> while another payment for the member went through: never how much is left.
    "daily_limit": gettext_lazy("This account cannot receive that much by card today."),
    "processor": gettext_lazy("We could not reach the card processor."),
    "caller-interrupted-with-star": gettext_lazy("You pressed star, so the payment stopped."),
    "too-many-failed-attempts": gettext_lazy("The card details were not accepted."),
    "caller-hung-up": gettext_lazy("The payment did not finish."),
    "payment-connector-error": gettext_lazy("We could not reach the card processor."),
}
SOMETHING_WENT_WRONG = gettext_lazy("Something went wrong with the payment.")


@first_deposit_step
def choose_first_deposit_step(call: CallSession) -> str:
    """The language prompt while the caller has not chosen one, else the member ID."""
    if not call.language and len(settings.IVR_LANGUAGES) > 1:
        return DepositLanguage.name
    return DepositMemberId.name


class DepositStep(Step):
    """A prompt of the deposit line: nobody is signed in, and * starts the deposit over."""

    signed_in_only = False
    deposit_line = True
    abandoned = NOT_CHARGED


@step
class DepositLanguage(Language):
    """The language prompt, as on the members' line, leading to the member ID."""

    name = DEPOSIT_LANGUAGE_MENU
    deposit_line = True

    def chosen(self, call: CallSession, language: str, *, counts_silence: bool = True) -> Goto:
        call.language = language
        return Goto(DepositMemberId, counts_silence=counts_silence)


@step
class DepositMemberId(DepositStep):
    """ "To put money on an account, enter the 6-digit member ID." Unknown and pending IDs hear the same refusal."""

    name = "deposit_member_id"
    keys = SIX_DIGITS
    num_digits = 6
    wrong_keys = gettext_lazy("A member ID has 6 digits.")
    help = gettext_lazy("Enter the 6-digit member ID of the person you are putting money on. There is no fee.")
    takes_language_key = True
    locks_call = True  # an ID that cannot receive deposits is counted against member-ID probing
    abandoned = ""

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("To put money on an account, enter the 6-digit member ID.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        try:
            charges.member_lookup(member_id=keys, line=charges.deposit_line(call.caller), vouched=_vouched(call))
        except TooManyAttempts as refused:
            return Goodbye(TOO_MANY_TRIES[refused.scope])
        except CannotReceiveDeposits:
            return Again(CANNOT_RECEIVE)  # three tries, then goodbye
        call.scratch = {"member_id": keys}
        return Goto(DepositMemberCheck)


def _member_confirmed(call: CallSession) -> Outcome:
    member = selectors.member_for_deposit(member_id=call.scratch["member_id"])
    if member is None:
        return Goto(DepositMemberId, CANNOT_RECEIVE)
    if selectors.deposit_room_cents(account=member) < 100:
        return Goto(DepositMemberId, NO_ROOM_TODAY)
    return Goto(DepositAmount)


@step
class DepositMemberCheck(DepositStep, MenuPrompt):
    """The member ID read back digit by digit: 1 if right, 2 to enter it again."""

    name = "deposit_member_check"
    help = gettext_lazy("Press 1 if the member ID you heard is right, or 2 to enter it again.")
    in_one_sentence = True
    options = (
        Option("1", gettext_lazy("If that is right, press 1."), _member_confirmed),
        Option("2", gettext_lazy("To enter it again, press 2."), lambda call: Goto(DepositMemberId)),
    )

    def prompt(self, call: CallSession) -> list[Line]:
        return [Code(_("You entered the member ID"), call.scratch["member_id"]), *self.offers(call)]


@step
class DepositAmount(DepositStep):
    """Whole dollars, then #: at least 1, at most one card deposit's maximum and what is left of today's."""

    name = "deposit_amount"
    keys = WHOLE_DOLLARS
    wrong_keys = gettext_lazy("Please enter whole dollars, then press pound.")
    help = gettext_lazy("Enter the amount in whole dollars, for example 2 5 for 25 dollars, then press pound.")

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Enter the amount in whole dollars, then press pound.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        cents = int(keys) * 100
        if cents < 100:
            return Again(_("The least you can pay is 1 dollar."), strike=False)
        member = selectors.member_for_deposit(member_id=call.scratch["member_id"])
        if member is None:
            return Goto(DepositMemberId, CANNOT_RECEIVE)
        room = selectors.deposit_room_cents(account=member)
        if cents > room:
            return Again(_refused(room, daily=room < selectors.card_max_cents()), strike=False)
        call.scratch["amount_cents"] = cents
        return Goto(DepositConfirm)


def _refused(room_cents: int, *, daily: bool) -> str:
    if room_cents < 100:
        return str(NO_ROOM_TODAY)
    if daily:
        # Not what is left today: that would tell any caller how much the member received today.
        return _(
            "That is more than this account can receive by card today. The most it can receive in a day is %(amount)s."
        ) % {"amount": spoken_dollars(selectors.daily_limit_cents())}
    return _("The most you can pay at one time is %(amount)s.") % {"amount": spoken_dollars(room_cents)}


def _vouched(call: CallSession) -> bool:
    """A number a carrier vouches for (STIR/SHAKEN A): one family's line. Withheld and unvouched numbers are shared."""
    return bool(call.caller and call.caller_trusted)


def _start_paying(call: CallSession) -> Outcome:
    """1 at the charge: write the pending card deposit, then hand the call to <Pay>."""
    member = selectors.member_for_deposit(member_id=call.scratch["member_id"])
    if member is None:
        return Goto(DepositMemberId, CANNOT_RECEIVE)
    try:
        deposit = charges.card_deposit_start(
            account=member,
            amount_cents=call.scratch["amount_cents"],
            call_sid=call.call_sid,
            line=charges.deposit_line(call.caller),
            vouched=_vouched(call),
        )
    except AmountRefused as refused:
        return Goto(DepositAmount, _refused(refused.limit_cents, daily=refused.daily))
    except PaymentInProgress:
        return Goodbye([IN_PROGRESS, GOODBYE])
    except TooManyAttempts as refused:
        return Goodbye(TOO_MANY_TRIES[refused.scope])
    call.scratch["paying"] = deposit.pk
    return Pay(deposit.pk)


@step
class DepositConfirm(DepositStep, MenuPrompt):
    """The exact charge and "There is no fee", then <Pay>: 1 pays by card, 2 cancels."""

    name = "deposit_confirm"
    help = gettext_lazy("Press 1 to pay by card now, or 2 to cancel. Your card is charged only if you press 1.")
    locks_call = True  # writes the pending card deposit, and counts the <Pay> attempt
    in_one_sentence = True
    options = (
        Option("1", gettext_lazy("To pay by card, press 1."), _start_paying),
        Option("2", gettext_lazy("To cancel, press 2."), lambda call: Goto(DepositMemberId, NOT_CHARGED)),
    )

    def prompt(self, call: CallSession) -> list[Line]:
        amount = spoken_dollars(call.scratch["amount_cents"])
        return [
            _("Your card will be charged exactly %(amount)s. There is no fee.") % {"amount": amount},
            *self.offers(call),
        ]

    def pay(self, call: CallSession, deposit_id: int, action: str) -> VoiceResponse:
        return _pay(call, deposit_id, action)

    def paid(self, call: CallSession, deposit_id: int, result: dict[str, str]) -> Outcome:
        return _paid(call, deposit_id)


def _pay(call: CallSession, deposit_id: int, action: str) -> VoiceResponse:
    prompts = [(for_, error_type, str(words)) for for_, error_type, words in PAY_PROMPTS]
    return twiml.pay(
        connector=settings.PAY_CONNECTOR,
        description=f"MyiBot deposit {deposit_id}",
        # <Pay> says what it says itself in the language record's pay_locale; our prompts, in the call's voice.
        language=languages.registered()[call.language or settings.IVR_LANGUAGES[0]].pay_locale,
        action=action,
        progress=pay_progress_url(deposit_id),
        prompts=prompts,
        after=ONE_MOMENT,
    )


def pay_progress_url(deposit_id: int) -> str:
    return f"{settings.BASE_URL}{_pay_progress_path()}?d={deposit_id}"


@lru_cache(maxsize=1)
def _pay_progress_path() -> str:
    return reverse("ivr:deposit_pay_progress")


def _paid(call: CallSession, deposit_id: int) -> Outcome:
    """Where the deposit stands after <Pay>'s action request (the view charged it first): words that are true."""
    deposit = selectors.card_deposit(deposit_id=deposit_id)
    if deposit.status == CardDeposit.Status.PAID:
        call.scratch = {"paid": deposit.pk, "member_id": call.scratch.get("member_id", "")}
        return Goto(DepositDone)
    if deposit.status == CardDeposit.Status.NOT_CHARGED:
        call.scratch["why"] = _why_not_charged(deposit)
        return Goto(DepositFailed)
    # Charging, uncertain, or a token another request is charging: only Stripe's later word will tell.
    return Goodbye(UNCERTAIN)


def _why_not_charged(deposit: CardDeposit) -> str:
    """Which NOT_CHARGED_BECAUSE sentence fits: by the reason, then Stripe's code, or <Pay>'s Result."""
    reason, code = deposit.not_charged_reason, deposit.decline_code
    if reason == CardDeposit.Reason.CARD_LIMIT:
        return "card_limit"
    if reason == CardDeposit.Reason.DAILY_LIMIT:
        return "daily_limit"
    if reason == CardDeposit.Reason.NO_TIME:
        return ""  # Stripe was never asked: "Something went wrong with the payment."
    if reason in (CardDeposit.Reason.PROCESSOR, CardDeposit.Reason.NO_CHARGE):
        return "processor"
    if code == "authentication_required":
        return "authentication_required"
    if code == "insufficient_funds":
        return "insufficient_funds"
    if reason == CardDeposit.Reason.ISSUER_DECLINE:
        return "declined"
    if reason == CardDeposit.Reason.CARD_ERROR:
        return "card_details"
    return deposit.result


def _another_deposit(call: CallSession) -> Outcome:
    call.scratch = {}
    return Goto(DepositMemberId)


@step
class DepositDone(DepositStep, MenuPrompt):
    """The money is on the account: the amount, the card's last four, and a confirmation code read slowly."""

    name = "deposit_done"
    says_digits = True  # the card's last four
    help = gettext_lazy("Press 1 to hear the confirmation code again, or 2 to put money on another account.")
    abandoned = ""
    in_one_sentence = True
    options = (
        Option("1", HEAR_THE_CODE_AGAIN, None),
        Option("2", gettext_lazy("For another deposit, press 2."), _another_deposit),
    )

    def prompt(self, call: CallSession) -> list[Line]:
        deposit = selectors.card_deposit(deposit_id=call.scratch["paid"])
        amount = spoken_dollars(deposit.amount_cents)
        lines: list[Line] = [_("Thank you. %(amount)s are on the account.") % {"amount": amount}]
        if deposit.card_last4:
            digits = spoken_digits(deposit.card_last4)
            lines.append(_("Your card ending in %(digits)s was charged.") % {"digits": digits})
        code = charges.confirmation_code(deposit)
        if code:
            lines += [Code(_("Your confirmation code is:"), code), PAUSE, Code(_("Again:"), code)]
        return [*lines, *self.offers(call)]

    def silence(self, call: CallSession) -> Outcome | None:
        # The deposit is done: a caller who says nothing more is thanked, not told they pressed nothing.
        return None if call.timeouts < 2 else Goodbye(THANKS_GOODBYE)


def _over_daily_limit(call: CallSession) -> bool:
    return call.scratch.get("why") == "daily_limit"


def _try_again(call: CallSession) -> Outcome:
    """1 after nothing was charged: another card, or, where the account could not take that much today, a
    smaller amount (another card would be refused the same), if it can take any more today."""
    return _member_confirmed(call) if _over_daily_limit(call) else _start_paying(call)


ANOTHER_CARD = gettext_lazy("To use another card, press 1.")
SMALLER_AMOUNT = gettext_lazy("To choose a smaller amount, press 1.")


@step
class DepositFailed(DepositStep, MenuPrompt):
    """Nothing was charged: why, in plain words; 1 pays with another card, 2 ends the call."""

    name = "deposit_failed"
    help = gettext_lazy("Press 1 to try again, or 2 to end the call. Your card was not charged.")
    locks_call = True  # 1 writes a new pending card deposit
    in_one_sentence = True
    options = (
        Option("1", lambda call: SMALLER_AMOUNT if _over_daily_limit(call) else ANOTHER_CARD, _try_again),
        Option("2", gettext_lazy("To end the call, press 2."), lambda call: Goodbye(THANKS_GOODBYE)),
    )

    def prompt(self, call: CallSession) -> list[Line]:
        why = NOT_CHARGED_BECAUSE.get(call.scratch.get("why", ""), SOMETHING_WENT_WRONG)
        return [f"{NOT_CHARGED} {why}", *self.offers(call)]

    def pay(self, call: CallSession, deposit_id: int, action: str) -> VoiceResponse:
        return _pay(call, deposit_id, action)

    def paid(self, call: CallSession, deposit_id: int, result: dict[str, str]) -> Outcome:
        return _paid(call, deposit_id)
