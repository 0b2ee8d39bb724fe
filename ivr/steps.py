"""Every prompt of the call (SPEC section 5): what it says, what it takes, where it leads.

Adding a step is one class here. Counting silences and wrong keys, retries,
stale URLs and the TwiML itself are ivr/machine.py's work.
"""

from __future__ import annotations

import re

from accounts import codes, pins, services
from accounts.models import Account, Recipient
from accounts.money import spoken_amount, spoken_dollars
from ivr.machine import PAUSE, Again, Goodbye, Goto, Outcome, Step, step
from ivr.models import CallSession
from ivr.twiml import spoken_digits

ONE_KEY_1_2 = re.compile(r"[12]", re.ASCII)
FOUR_DIGITS = re.compile(r"[0-9]{4}", re.ASCII)
SIX_DIGITS = re.compile(r"[0-9]{6}", re.ASCII)
PRESS_1_OR_2 = "Please press 1 or 2."


def _code_lines(call: CallSession) -> list[str | object]:
    """A confirmation code, read slowly and twice."""
    code = codes.unseal_code(call.scratch.get("code", ""), context=call.call_sid) or ""
    return [
        f"Your confirmation code is: {spoken_digits(code)}.",
        PAUSE,
        f"Again, your confirmation code is: {spoken_digits(code)}.",
        PAUSE,
        "Please write it down.",
    ]


def _keep_code(call: CallSession, code: str, **extra: object) -> None:
    # Sealed, so that the call's state never holds a code in the clear.
    call.scratch = {"code": codes.seal_code(code, context=call.call_sid), **extra}


# Entry and sign-in ---------------------------------------------------------------


@step
class Entry(Step):
    name = "entry"
    # "#" alone must reach us, so "#" is a key here, not finishOnKey: pressed
    # alone it arrives as Digits="#" when the timeout ends, while silence
    # arrives at the <Redirect>. Four digits arrive as soon as they are pressed.
    keys = re.compile(r"[0-9]{4}|#", re.ASCII)
    wrong_keys = "Your PIN has 4 digits."
    num_digits = 4
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[str | object]:
        return ["Please enter your 4-digit PIN.", "To create a new account, press pound."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == "#":
            if Account.objects.filter(phone_number=call.caller).exists():
                return Goto("entry", "This phone number already has an account.")
            return Goto("register_member_id")
        try:
            call.account = services.account_sign_in(phone_number=call.caller, pin=keys)
        except services.AccountLocked:
            return Goodbye("This account is temporarily locked. Please call again later. Goodbye.")
        except services.WrongPin:
            # An unknown number and a wrong PIN hear exactly the same words.
            call.pin_failures += 1
            if call.pin_failures >= 3:
                return Goodbye("That PIN is not correct. For your security, this call will now end. Goodbye.")
            return Again("That PIN is not correct.", strike=False)
        call.scratch = {}
        return Goto("menu", "You are signed in.")


# Registration ---------------------------------------------------------------


@step
class RegisterMemberId(Step):
    name = "register_member_id"
    keys = SIX_DIGITS
    wrong_keys = "A member ID has 6 digits."
    num_digits = 6
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[str | object]:
        return ["To create an account, enter your 6-digit member ID."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if Account.objects.filter(member_id=keys).exists():
            return Again("That member ID already has an account. If this is a mistake, please contact support.")
        call.scratch = {"member_id": keys, "mismatches": call.scratch.get("mismatches", 0)}
        return Goto("register_create_pin")


@step
class RegisterCreatePin(Step):
    name = "register_create_pin"
    keys = FOUR_DIGITS
    wrong_keys = "A PIN has 4 digits."
    num_digits = 4
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[str | object]:
        return ["Now create a 4-digit PIN that is hard to guess."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        weakness = pins.pin_weakness(keys)
        if weakness:
            return Again(f"That PIN is too easy to guess. {weakness} Please choose another PIN.")
        # Only the hash crosses to the next request; at "confirm" the same hash
        # becomes the account's, so the PIN is hashed once.
        call.scratch["pin_hash"] = pins.hash_pin(keys)
        return Goto("register_confirm_pin")


@step
class RegisterConfirmPin(Step):
    name = "register_confirm_pin"
    keys = FOUR_DIGITS
    wrong_keys = "A PIN has 4 digits."
    num_digits = 4
    signed_in_only = False

    def prompt(self, call: CallSession) -> list[str | object]:
        return ["Please enter the same PIN again to confirm it."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        pin_hash = call.scratch.pop("pin_hash", None)
        if pin_hash is None or not pins.pin_matches(keys, pin_hash):
            call.scratch["mismatches"] = call.scratch.get("mismatches", 0) + 1
            if call.scratch["mismatches"] >= 3:
                return Goodbye("The PINs did not match. Please call again when you are ready. Goodbye.")
            return Goto("register_create_pin", "The two PINs did not match. Let's create your PIN again.")
        try:
            account, code = services.account_register(
                phone_number=call.caller, member_id=call.scratch["member_id"], pin_hash=pin_hash
            )
        except services.PhoneNumberTaken:
            call.scratch = {}
            return Goto("entry", "This phone number already has an account.")
        except services.MemberIdTaken:
            call.scratch = {}
            return Goto("register_member_id", "That member ID already has an account.")
        call.account = account
        _keep_code(call, code)
        return Goto("registration_code", "Your account is ready.")


@step
class RegistrationCode(Step):
    name = "registration_code"
    keys = ONE_KEY_1_2
    wrong_keys = PRESS_1_OR_2
    num_digits = 1

    def prompt(self, call: CallSession) -> list[str | object]:
        return [*_code_lines(call), "To hear the code again, press 1. To continue to the main menu, press 2."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == "1":
            return Goto(self.name)
        call.scratch = {}
        return Goto("menu")


# Signed in ---------------------------------------------------------------------


@step
class Menu(Step):
    name = "menu"
    keys = re.compile(r"[123]", re.ASCII)
    wrong_keys = "Please press 1, 2 or 3."
    num_digits = 1

    def prompt(self, call: CallSession) -> list[str | object]:
        return ["Main menu. For your balance, press 1. To send money, press 2. To hear these options again, press 3."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        return Goto({"1": "balance", "2": "send_amount", "3": "menu"}[keys])


@step
class Balance(Step):
    name = "balance"
    keys = ONE_KEY_1_2
    wrong_keys = PRESS_1_OR_2
    num_digits = 1

    def prompt(self, call: CallSession) -> list[str | object]:
        return [f"Your balance is {spoken_amount(call.account.balance_cents)}.", PAUSE, "To hear it again, press 1. For the main menu, press 2."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        return Goto("balance" if keys == "1" else "menu")


# Send money ------------------------------------------------------------------------


@step
class SendAmount(Step):
    name = "send_amount"
    keys = re.compile(r"[0-9]{1,4}", re.ASCII)
    wrong_keys = "Please enter whole dollars only, up to 4 digits, then press pound."
    finish_on_key = "#"

    def prompt(self, call: CallSession) -> list[str | object]:
        return ["How many dollars would you like to send? Enter the amount in whole dollars, then press pound."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        amount_cents = int(keys) * 100
        try:
            services.transfer_check(account=call.account, amount_cents=amount_cents)
        except services.InvalidAmount:
            return Again("The amount must be at least 1 dollar.")
        except services.TransferLimitExceeded as refusal:
            return Again(f"The most you can send at one time is {spoken_dollars(refusal.limit_cents)}.")
        except services.InsufficientFunds:
            return Again(f"Not enough funds. Your balance is {spoken_amount(call.account.balance_cents)}.")
        call.scratch = {"amount_cents": amount_cents}
        return Goto("send_recipient")


@step
class SendRecipient(Step):
    name = "send_recipient"
    keys = SIX_DIGITS
    wrong_keys = "A recipient code has 6 digits."
    num_digits = 6
    after_three_wrong = "menu"

    def prompt(self, call: CallSession) -> list[str | object]:
        return ["Enter the 6-digit code of the person you are sending to."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        recipient = Recipient.objects.filter(code=keys, active=True).first()
        if recipient is None:
            return Again("We could not find that recipient code.")
        call.scratch.update(recipient_code=recipient.code, recipient_name=recipient.name)
        return Goto("send_confirm")


@step
class SendConfirm(Step):
    name = "send_confirm"
    keys = ONE_KEY_1_2
    wrong_keys = PRESS_1_OR_2
    num_digits = 1

    def prompt(self, call: CallSession) -> list[str | object]:
        return [
            f"You are sending {spoken_dollars(call.scratch['amount_cents'])} to {call.scratch['recipient_name']}, "
            f"recipient code {spoken_digits(call.scratch['recipient_code'])}.",
            "To confirm, press 1. To cancel, press 2.",
        ]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == "2":
            call.scratch = {}
            return Goto("menu", "Cancelled. No money was sent.")
        try:
            receipt = services.transfer_submit(
                account=call.account,
                recipient_code=call.scratch["recipient_code"],
                amount_cents=call.scratch["amount_cents"],
                # This prompt of this call: a retried confirmation finds its transfer.
                idempotency_key=f"{call.call_sid}:{call.prompt_number}",
            )
        except services.InsufficientFunds:
            call.scratch = {}
            return Goto("menu", "Not enough funds. No money was sent.")
        except services.UnknownRecipient:
            call.scratch = {}
            return Goto("menu", "That recipient can no longer receive money. No money was sent.")
        except (services.TransferLimitExceeded, services.InvalidAmount):
            call.scratch = {}
            return Goto("menu", "That amount cannot be sent. No money was sent.")
        if receipt.code is None:
            call.scratch = {}
            return Goto("menu", "This transfer was already submitted.")
        sent = f"Your transfer of {spoken_dollars(receipt.transfer.amount_cents)} to {call.scratch['recipient_name']} is submitted."
        _keep_code(call, receipt.code, sent=sent)
        return Goto("send_code")


@step
class SendCode(Step):
    name = "send_code"
    keys = ONE_KEY_1_2
    wrong_keys = PRESS_1_OR_2
    num_digits = 1

    def prompt(self, call: CallSession) -> list[str | object]:
        return [call.scratch.get("sent", ""), *_code_lines(call), "To hear the code again, press 1. For the main menu, press 2."]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == "1":
            return Goto(self.name)
        call.scratch = {}
        return Goto("menu")
