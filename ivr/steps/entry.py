"""How a call starts: the language, then the PIN alone from a trusted home number, or the member ID and PIN.

A lone "#" and silence are one thing here (ivr/machine.py): at the two entry
prompts either leads at once to a one-key choice that offers what "#" offered,
so a new caller reaches registration however Twilio delivers the "#".
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import partial

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts import activity, errors, identity, selectors
from ivr.machine import (
    LANGUAGE_MENU,
    MAIN_MENU,
    Again,
    Goodbye,
    Goto,
    Line,
    Outcome,
    Step,
    first_step,
    language_offer,
    step,
)
from ivr.models import CallSession
from ivr.steps.common import A_PIN_HAS_4_DIGITS, FOUR_DIGITS, SIX_DIGITS, MenuPrompt, Option
from ivr.steps.registration import start_registration
from myibot import languages

# An unknown member ID and a wrong PIN hear the same words: nothing tells a
# caller which member IDs exist.
NOT_RIGHT = gettext_lazy("That member ID or PIN is not correct. Let's start again with your member ID.")
THIRD_WRONG_PIN = gettext_lazy("That PIN is not correct. For your security, this call will now end. Goodbye.")
PINS_PER_CALL = 3


@first_step
def choose_first_step(call: CallSession) -> str:
    """The language prompt for a caller we do not know; then the PIN prompt for a trusted
    home number with PIN-only entry open, the member-ID prompt for anyone else."""
    home = selectors.caller_home(phone_number=call.caller)
    if home is not None and call.caller_trusted and not call.language and home.language in settings.IVR_LANGUAGES:
        # Remembered by number: never asked again. Not for a doubtful caller
        # ID, whose skipped language prompt would tell a spoofer the number has an account.
        call.language = home.language
    if not call.language and len(settings.IVR_LANGUAGES) > 1:
        return Language.name
    return PinOnly.name if home is not None and home.pin_only and call.caller_trusted else MemberId.name


def language_chosen(call: CallSession, language: str, *, counts_silence: bool = True) -> Goto:
    call.language = language
    # A caller we do not know by number has no home number to sign in from.
    return Goto(MemberId, counts_silence=counts_silence)


@step
class Language(MenuPrompt):
    """ "For English, press 1. Para español, oprima 2.", each in its own voice.

    Silence offers the choice once more, then goes on in the first language.
    """

    name = LANGUAGE_MENU
    wrong_keys = ""  # the prompt itself, in every language, says what to press
    help = ""
    signed_in_only = False

    @property
    def options(self) -> tuple[Option, ...]:
        # The languages offered, each at its place in IVR_LANGUAGES.
        return tuple(
            Option(str(key), language_offer(language.code, str(key)), partial(self.chosen, language=language.code))
            for key, language in enumerate(languages.offered(), start=1)
        )

    def silence(self, call: CallSession) -> Outcome | None:
        if call.timeouts < 2:
            return None  # once more: a caller who missed it may not follow English
        # The first language; not a silence at the next prompt, where the caller did nothing wrong yet.
        return self.chosen(call, call.language or settings.IVR_LANGUAGES[0], counts_silence=False)

    def chosen(self, call: CallSession, language: str, *, counts_silence: bool = True) -> Goto:
        """Where the caller goes once the language is chosen (the deposit line's language prompt goes elsewhere)."""
        return language_chosen(call, language, counts_silence=counts_silence)


def locked(call: CallSession, refusal: errors.AccountLocked) -> Goto:
    """The account is locked: a prompt that says for how long, where 0 reaches help or staff."""
    call.account = None
    call.scratch = {"locked_until": refusal.until.isoformat()}
    return Goto(Locked)


@step
class Locked(Step):
    """ "This account is locked for 15 minutes." Any key but 0, or silence: goodbye."""

    name = "locked"
    keys = re.compile(r"[0-9*#]", re.ASCII)
    wrong_keys = ""
    help = gettext_lazy("The account was locked because of wrong PINs. It opens again by itself, or staff can open it.")
    num_digits = 1
    finish_on_key = ""
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[Line]:
        until = datetime.fromisoformat(call.scratch.get("locked_until", timezone.now().isoformat()))
        minutes = errors.AccountLocked(until=until).minutes_left()
        if minutes <= 60:
            how_long = ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
        else:
            hours = -(-minutes // 60)
            how_long = ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
        return [
            _("This account is locked for %(how_long)s. Please call again later.") % {"how_long": how_long},
            _("Staff can help. For help, press 0."),
        ]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        return Goodbye(_("Goodbye."))

    def silence(self, call: CallSession) -> Outcome:
        return Goodbye(_("Goodbye."))


def _signed_in(call: CallSession, account) -> Goto:
    call.account = account
    call.scratch = {}
    activity.signed_in()
    if call.language:
        identity.account_remember_language(account=account, language=call.language)
    return Goto(MAIN_MENU, _("You are signed in."))


def count_wrong_pin(call: CallSession, again: Outcome) -> Outcome:
    call.pin_failures += 1
    if call.pin_failures >= PINS_PER_CALL:
        return Goodbye(THIRD_WRONG_PIN)
    return again


@step
class MemberId(Step):
    """Anyone else (an unknown, shared, withheld or doubtful number): who are you?"""

    name = "member_id"
    keys = SIX_DIGITS
    wrong_keys = gettext_lazy("Your member ID has 6 digits.")
    help = gettext_lazy("Enter the 6 digits of your member ID. If you do not have an account yet, press pound.")
    num_digits = 6
    signed_in_only = False
    takes_language_key = True

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Please enter your 6-digit member ID."), _("To create a new account, press pound.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        # Whether the member ID exists is not said, nor looked up: the PIN
        # prompt comes either way, and the sign-in treats both alike.
        call.scratch = {"member_id": keys}
        return Goto(Pin)

    def silence(self, call: CallSession) -> Outcome:
        # "#" alone, or nothing: the same helpful choice, at once.
        call.scratch = {}
        return Goto(NewOrMemberId)


@step
class NewOrMemberId(MenuPrompt):
    """After an empty entry at the member-ID prompt: a new account, or the member ID after all."""

    name = "new_or_member_id"
    help = gettext_lazy("If you are new here, press 1. If you already have a member ID, press 2.")
    signed_in_only = False
    takes_language_key = True
    options = (
        Option("1", gettext_lazy("To create a new account, press 1."), start_registration),
        Option("2", gettext_lazy("To enter your member ID, press 2."), MemberId),
    )


@step
class PinOnly(Step):
    """A trusted call from an account's home number: the PIN alone signs in."""

    name = "entry"
    locks_call = True
    checks_pin = True
    keys = FOUR_DIGITS
    wrong_keys = gettext_lazy("Your PIN has 4 digits.")
    help = gettext_lazy("Enter the 4-digit PIN of the account for this phone. For other options, press pound.")
    num_digits = 4
    signed_in_only = False
    takes_language_key = True

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Please enter your 4-digit PIN."), _("For other options, press pound.")]

    def count_pin_attempt(self, call: CallSession, keys: str) -> identity.PinAttempt | None:
        home = selectors.caller_home(phone_number=call.caller)
        if home is None or not home.pin_only or not call.caller_trusted:
            return None
        return identity.pin_attempt_count(account_id=home.account_id, trusted_number=call.trusted_number)

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if call.pin_attempt is None:
            # Not counted: a spray began, or an operator made this a shared line, since the prompt.
            home = selectors.caller_home(phone_number=call.caller)
            return Goto(MemberId) if home is None or not home.pin_only else Goto(self.name)
        try:
            account = identity.account_sign_in(pin=keys, attempt=call.pin_attempt)
        except errors.AccountLocked as refusal:
            return locked(call, refusal)
        except errors.WrongPin:
            return count_wrong_pin(call, Again(_("That PIN is not correct."), strike=False))
        return _signed_in(call, account)

    def silence(self, call: CallSession) -> Outcome:
        return Goto(HomeOptions)


def pin_again(call: CallSession) -> Goto:
    """Back to the PIN prompt, unless PIN-only entry closed meanwhile."""
    return Goto(choose_first_step(call))


@step
class HomeOptions(MenuPrompt):
    """After an empty entry at the home number's PIN prompt: the other ways in."""

    name = "home_options"
    help = gettext_lazy("Someone else can use this phone too: press 2 to sign in with a member ID.")
    signed_in_only = False
    takes_language_key = True
    options = (
        Option("1", gettext_lazy("To enter your PIN, press 1."), pin_again),
        Option("2", gettext_lazy("To enter a member ID, press 2."), MemberId),
        Option("3", gettext_lazy("To create a new account, press 3."), start_registration),
    )


@step
class Pin(Step):
    name = "pin"
    locks_call = True
    checks_pin = True
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    help = gettext_lazy("Enter the 4-digit PIN you chose for this member ID.")
    num_digits = 4
    signed_in_only = False
    takes_language_key = True
    # Three wrong entries: perhaps the member ID was wrong; ask it again.
    after_three_wrong = MemberId.name

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Please enter your 4-digit PIN.")]

    def count_pin_attempt(self, call: CallSession, keys: str) -> identity.PinAttempt | None:
        member_id = call.scratch.get("member_id")
        if member_id is None:
            return None
        return identity.pin_attempt_count(member_id=member_id, trusted_number=call.trusted_number)

    def answer(self, call: CallSession, keys: str) -> Outcome:
        member_id = call.scratch.get("member_id")
        if member_id is None:
            return Goto(MemberId)
        if call.pin_attempt is None:
            return Goto(self.name)  # not counted (the call moved meanwhile): never checked uncounted
        try:
            account = identity.account_sign_in(pin=keys, attempt=call.pin_attempt)
        except errors.AccountLocked as refusal:
            return locked(call, refusal)
        except errors.WrongPin:
            call.scratch = {}
            return count_wrong_pin(call, Goto(MemberId, NOT_RIGHT))
        return _signed_in(call, account)
