"""How a call starts: the language, then the PIN alone from a trusted home number, or the member ID and PIN."""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts import activity, identity
from ivr.machine import Again, Goodbye, Goto, InLanguage, Line, Outcome, Step, first_step, step
from ivr.models import CallSession
from ivr.steps.common import A_PIN_HAS_4_DIGITS, FOUR_DIGITS, LANGUAGE_OPTIONS

# An unknown member ID and a wrong PIN hear the same words: nothing tells a
# caller which member IDs exist.
NOT_RIGHT = gettext_lazy("That member ID or PIN is not correct.")
THIRD_WRONG_PIN = gettext_lazy("That PIN is not correct. For your security, this call will now end. Goodbye.")
PINS_PER_CALL = 3


@first_step
def choose_first_step(call: CallSession) -> str:
    """The language prompt for a caller we do not know; then the PIN prompt for a trusted
    home number with PIN-only entry open, the member-ID prompt for anyone else."""
    home = identity.caller_home(phone_number=call.caller)
    if home is not None and call.caller_trusted and not call.language and home.language in settings.IVR_LANGUAGES:
        # Remembered by number: never asked again. Not for a doubtful caller
        # ID, whose skipped language prompt would tell a spoofer the number has an account.
        call.language = home.language
    if not call.language and len(settings.IVR_LANGUAGES) > 1:
        return Language.name
    return PinOnly.name if home is not None and home.pin_only and call.caller_trusted else MemberId.name


def _pound_as_key() -> bool:
    return settings.IVR_POUND_AS_KEY


@step
class Language(Step):
    """ "For English, press 1. Para español, oprima 2.", each in its own voice. Silence: the first language."""

    name = "language"
    keys = re.compile(r"[1-9]", re.ASCII)
    wrong_keys = ""  # the prompt itself, in every language, says what to press
    num_digits = 1
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[Line]:
        return [
            InLanguage(code, LANGUAGE_OPTIONS[code], (("key", key),))
            for key, code in enumerate(settings.IVR_LANGUAGES, start=1)
        ]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if int(keys) > len(settings.IVR_LANGUAGES):
            return Again("")
        return self._chosen(call, settings.IVR_LANGUAGES[int(keys) - 1])

    def silence(self, call: CallSession) -> Outcome:
        return self._chosen(call, settings.IVR_LANGUAGES[0])

    def _chosen(self, call: CallSession, language: str) -> Outcome:
        call.language = language
        # A caller we do not know by number has no home number to sign in from.
        return Goto(MemberId.name)


def locked_goodbye(refusal: identity.AccountLocked) -> Goodbye:
    minutes = refusal.minutes_left()
    if minutes <= 60:
        how_long = ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    else:
        hours = -(-minutes // 60)
        how_long = ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
    return Goodbye(
        _("This account is locked for %(how_long)s. Please call again later. Staff can help if you need it. Goodbye.")
        % {"how_long": how_long}
    )


def _signed_in(call: CallSession, account) -> Goto:
    call.account = account
    call.scratch = {}
    activity.signed_in()
    if call.language:
        identity.account_remember_language(account=account, language=call.language)
    return Goto("menu", _("You are signed in."))


def count_wrong_pin(call: CallSession, again: Outcome) -> Outcome:
    call.pin_failures += 1
    if call.pin_failures >= PINS_PER_CALL:
        return Goodbye(THIRD_WRONG_PIN)
    return again


@step
class PinOnly(Step):
    """A trusted call from an account's home number: the PIN alone signs in."""

    name = "entry"
    locks_call = True
    # "#" alone must reach us at once: with finishOnKey "#" and
    # actionOnEmptyResult, Twilio posts Digits="" FinishedOnKey="#" the moment
    # it is pressed. IVR_POUND_AS_KEY turns back to version 1's way ("#" as a
    # digit, posted when the timeout ends) should a real number not send FinishedOnKey.
    keys = re.compile(r"[0-9]{4}|#", re.ASCII)
    wrong_keys = gettext_lazy("Your PIN has 4 digits.")
    num_digits = 4
    signed_in_only = False

    @property
    def finish_on_key(self) -> str:
        return "" if _pound_as_key() else "#"

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Please enter your 4-digit PIN."), _("For other options, press pound.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == "#":
            return Goto(MemberId.name)
        # Asked again: a spray may have begun, or an operator made this a shared line.
        home = identity.caller_home(phone_number=call.caller)
        if home is None or not home.pin_only:
            return Goto(MemberId.name)
        try:
            account = identity.account_sign_in(account_id=home.account_id, pin=keys)
        except identity.AccountLocked as refusal:
            return locked_goodbye(refusal)
        except identity.WrongPin:
            return count_wrong_pin(call, Again(_("That PIN is not correct."), strike=False))
        return _signed_in(call, account)


@step
class MemberId(Step):
    """Anyone else (an unknown, shared, withheld or doubtful number): who are you?"""

    name = "member_id"
    keys = re.compile(r"[0-9]{6}|#", re.ASCII)
    wrong_keys = gettext_lazy("Your member ID has 6 digits.")
    num_digits = 6
    signed_in_only = False

    @property
    def finish_on_key(self) -> str:
        return "" if _pound_as_key() else "#"

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Please enter your 6-digit member ID."), _("To create a new account, press pound.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == "#":
            call.scratch = {}
            return Goto("register_member_id")
        # Whether the member ID exists is not said, nor looked up: the PIN
        # prompt comes either way, and the sign-in treats both alike.
        call.scratch = {"member_id": keys}
        return Goto(Pin.name)


@step
class Pin(Step):
    name = "pin"
    locks_call = True
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    num_digits = 4
    signed_in_only = False
    # Three wrong entries: perhaps the member ID was wrong; ask it again.
    after_three_wrong = MemberId.name

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Please enter your 4-digit PIN.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        member_id = call.scratch.get("member_id")
        if member_id is None:
            return Goto(MemberId.name)
        try:
            account = identity.account_sign_in(member_id=member_id, pin=keys)
        except identity.AccountLocked as refusal:
            return locked_goodbye(refusal)
        except identity.WrongPin:
            call.scratch = {}
            return count_wrong_pin(call, Goto(MemberId.name, NOT_RIGHT))
        return _signed_in(call, account)
