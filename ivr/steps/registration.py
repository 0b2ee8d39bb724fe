"""Creating an account by phone: member ID, PIN, PIN again, then the registration code.

The account starts pending: it can sign in and hear its balance, but no money
leaves it until staff verify the registration code the caller hears here.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import errors, identity, pins, selectors
from ivr.machine import MAIN_MENU, Again, Goodbye, Goto, Line, Outcome, Step, step
from ivr.models import CallSession
from ivr.steps.common import (
    A_PIN_HAS_4_DIGITS,
    CHOOSE_PIN_HELP,
    CONFIRM_PIN_HELP,
    FOUR_DIGITS,
    ONE_KEY_1_2,
    PRESS_1_OR_2,
    SIX_DIGITS,
    code_lines,
    keep_code,
)

MEMBER_ID_TAKEN = gettext_lazy("That member ID already has an account. Staff can help.")
NO_MORE_ACCOUNTS = gettext_lazy("We cannot create more accounts right now. Please call again later. Goodbye.")
TOO_EASY = gettext_lazy("That PIN is too easy to guess. %(reason)s Please choose another PIN.")
MISMATCHES_PER_CALL = 3


def start_registration(call: CallSession) -> Outcome:
    """The caller chose to create an account: refused at once, before any key, when a limit is reached."""
    if selectors.registration_refusal(phone_number=call.caller):
        return Goodbye(NO_MORE_ACCOUNTS)
    call.scratch = {}
    return Goto(RegisterMemberId)


@step
class RegisterMemberId(Step):
    name = "register_member_id"
    keys = SIX_DIGITS
    wrong_keys = gettext_lazy("A member ID has 6 digits.")
    help = gettext_lazy("Enter the 6 digits of your member ID: it will be the number of your new account.")
    num_digits = 6
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("To create an account, enter your 6-digit member ID.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if selectors.member_id_is_taken(keys):
            return Again(MEMBER_ID_TAKEN, strike=False)
        call.scratch = {"member_id": keys, "mismatches": call.scratch.get("mismatches", 0)}
        return Goto(RegisterCreatePin)


@step
class RegisterCreatePin(Step):
    name = "register_create_pin"
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    help = CHOOSE_PIN_HELP
    num_digits = 4
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Now create a 4-digit PIN that is hard to guess.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if weakness := pins.pin_weakness(keys):
            return Again(TOO_EASY % {"reason": weakness}, strike=False)
        # Only the hash crosses to the next request; at "confirm" the same hash
        # becomes the account's, so the PIN is hashed once.
        call.scratch["pin_hash"] = pins.hash_pin(keys)
        return Goto(RegisterConfirmPin)


@step
class RegisterConfirmPin(Step):
    name = "register_confirm_pin"
    locks_call = True
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    help = CONFIRM_PIN_HELP
    num_digits = 4
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Please enter the same PIN again to confirm it.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        pin_hash = call.scratch.pop("pin_hash", None)
        if pin_hash is None or not pins.pin_matches(keys, pin_hash):
            call.scratch["mismatches"] = call.scratch.get("mismatches", 0) + 1
            if call.scratch["mismatches"] >= MISMATCHES_PER_CALL:
                return Goodbye(_("The PINs did not match. Please call again when you are ready. Goodbye."))
            return Goto(RegisterCreatePin, _("The two PINs did not match. Let's create your PIN again."))
        try:
            account, code = identity.account_register(
                member_id=call.scratch["member_id"],
                pin_hash=pin_hash,
                # Only a number we trust, and the service decides whether it is free and personal.
                home_number=call.caller if call.caller_trusted else None,
                line=call.caller,
                language=call.language or settings.IVR_LANGUAGES[0],
            )
        except errors.RegistrationLimitReached:
            return Goodbye(NO_MORE_ACCOUNTS)
        except errors.MemberIdTaken:
            call.scratch = {}
            return Goto(RegisterMemberId, MEMBER_ID_TAKEN)
        call.account = account
        keep_code(call, code)
        return Goto(RegistrationCode, _("Your account is created."))


@step
class RegistrationCode(Step):
    name = "registration_code"
    keys = ONE_KEY_1_2
    wrong_keys = PRESS_1_OR_2
    help = gettext_lazy(
        "Staff need this code to verify your account. Press 1 to hear it again, or 2 for the main menu."
    )
    num_digits = 1

    def prompt(self, call: CallSession) -> list[Line]:
        return [
            *code_lines(call, _("Your registration code is:")),
            _("Staff must verify your account before you can send money. Please give them this registration code."),
            _("To hear the code again, press 1. To continue to the main menu, press 2."),
        ]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == "1":
            return Goto(self.name)
        call.scratch = {}
        return Goto(MAIN_MENU)
