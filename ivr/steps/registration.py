"""Creating an account by phone: member ID, PIN, PIN again, then the registration code.

The account starts pending: it can sign in and hear its balance, but no money
leaves it until staff verify the registration code the caller hears here.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import errors, identity, selectors
from ivr.machine import Again, Goodbye, Goto, Line, Outcome, Step, step
from ivr.models import CallSession
from ivr.steps.common import SIX_DIGITS, ChoosePin, ConfirmPin, ReadCode, keep_code

MEMBER_ID_TAKEN = gettext_lazy("That member ID already has an account. Staff can help.")
NO_MORE_ACCOUNTS = gettext_lazy("We cannot create more accounts right now. Please call again later. Goodbye.")


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
class RegisterCreatePin(ChoosePin):
    name = "register_create_pin"
    signed_in_only = False
    asks = gettext_lazy("Now create a 4-digit PIN that is hard to guess.")

    def confirm_step(self) -> type[ConfirmPin]:
        return RegisterConfirmPin


@step
class RegisterConfirmPin(ConfirmPin):
    name = "register_confirm_pin"
    signed_in_only = False
    asks = gettext_lazy("Please enter the same PIN again to confirm it.")
    chosen_at = RegisterCreatePin
    mismatch = gettext_lazy("The two PINs did not match. Let's create your PIN again.")

    def too_many_mismatches(self, call: CallSession) -> Outcome:
        return Goodbye(_("The PINs did not match. Please call again when you are ready. Goodbye."))

    def confirmed(self, call: CallSession, pin_hash: str) -> Outcome:
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
class RegistrationCode(ReadCode):
    name = "registration_code"
    help = gettext_lazy(
        "Staff need this code to verify your account. Press 1 to hear it again, or 2 for the main menu."
    )
    heading = gettext_lazy("Your registration code is:")
    after_code = (
        gettext_lazy(
            "Staff must verify your account before you can send money. Please give them this registration code."
        ),
    )
    main_menu = gettext_lazy("To continue to the main menu, press 2.")
