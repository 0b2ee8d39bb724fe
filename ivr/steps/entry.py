"""How a call starts: the PIN alone from a trusted home number, or the member ID and PIN."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts import identity
from ivr.machine import Again, Goodbye, Goto, Outcome, Step, Words, first_step, step
from ivr.models import CallSession
from ivr.steps.common import A_PIN_HAS_4_DIGITS, FOUR_DIGITS

# An unknown member ID and a wrong PIN hear the same words: nothing tells a
# caller which member IDs exist.
NOT_RIGHT = gettext_lazy("That member ID or PIN is not correct.")
THIRD_WRONG_PIN = gettext_lazy("That PIN is not correct. For your security, this call will now end. Goodbye.")
PINS_PER_CALL = 3


@first_step
def choose_first_step(call: CallSession) -> str:
    """The PIN prompt when the caller ID is a trusted home number and PIN-only entry is on; else the member ID."""
    home = identity.pin_only_account(home_number=call.caller if call.caller_trusted else None)
    return PinOnly.name if home is not None else MemberId.name


def _locked(refusal: identity.AccountLocked) -> Goodbye:
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
    return Goto("menu", _("You are signed in."))


def _wrong_pin(call: CallSession, again: Outcome) -> Outcome:
    call.pin_failures += 1
    if call.pin_failures >= PINS_PER_CALL:
        return Goodbye(THIRD_WRONG_PIN)
    return again


@step
class PinOnly(Step):
    """A trusted call from an account's home number: the PIN alone signs in."""

    name = "entry"
    # "#" alone must reach us, so "#" is a key here, not finishOnKey: pressed
    # alone it arrives as Digits="#" when the timeout ends, while silence
    # arrives at the <Redirect>. Four digits arrive as soon as they are pressed.
    keys = re.compile(r"[0-9]{4}|#", re.ASCII)
    wrong_keys = gettext_lazy("Your PIN has 4 digits.")
    num_digits = 4
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[Words | object]:
        return [_("Please enter your 4-digit PIN."), _("For other options, press pound.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == "#":
            return Goto(MemberId.name)
        # Asked again: a spray may have begun, or an operator made this a shared line.
        home = identity.pin_only_account(home_number=call.caller if call.caller_trusted else None)
        if home is None:
            return Goto(MemberId.name)
        try:
            account = identity.account_sign_in(account_id=home.pk, pin=keys)
        except identity.AccountLocked as refusal:
            return _locked(refusal)
        except identity.WrongPin:
            return _wrong_pin(call, Again(_("That PIN is not correct."), strike=False))
        return _signed_in(call, account)


@step
class MemberId(Step):
    """Anyone else (an unknown, shared, withheld or doubtful number): who are you?"""

    name = "member_id"
    keys = re.compile(r"[0-9]{6}|#", re.ASCII)
    wrong_keys = gettext_lazy("Your member ID has 6 digits.")
    num_digits = 6
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[Words | object]:
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
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    num_digits = 4
    signed_in_only = False
    # Three wrong entries: perhaps the member ID was wrong; ask it again.
    after_three_wrong = MemberId.name

    def prompt(self, call: CallSession) -> list[Words | object]:
        return [_("Please enter your 4-digit PIN.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        member_id = call.scratch.get("member_id")
        if member_id is None:
            return Goto(MemberId.name)
        try:
            account = identity.account_sign_in(member_id=member_id, pin=keys)
        except identity.AccountLocked as refusal:
            return _locked(refusal)
        except identity.WrongPin:
            call.scratch = {}
            return _wrong_pin(call, Goto(MemberId.name, NOT_RIGHT))
        return _signed_in(call, account)
