"""Signed in: the main menu, the balance, recent transactions and changing the PIN."""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import identity, pins, services
from accounts.models import LedgerEntry, Transfer
from accounts.spoken import spoken_amount, spoken_date, spoken_dollars
from ivr.machine import PAUSE, Again, Goodbye, Goto, InLanguage, Line, Outcome, Step, step
from ivr.models import CallSession
from ivr.steps.common import A_PIN_HAS_4_DIGITS, FOUR_DIGITS, LANGUAGE_OPTIONS, ONE_KEY_1_2, PRESS_1_OR_2
from ivr.steps.entry import count_wrong_pin, locked_goodbye

NOT_VERIFIED = gettext_lazy("Your account is not verified yet. Please give your registration code to staff.")


def other_language(call: CallSession) -> str | None:
    """The language 9 switches to at the main menu: only with exactly two languages offered."""
    offered = settings.IVR_LANGUAGES
    if len(offered) != 2:
        return None
    return offered[1] if (call.language or offered[0]) == offered[0] else offered[0]


@step
class Menu(Step):
    name = "menu"
    keys = re.compile(r"[123459]", re.ASCII)
    wrong_keys = gettext_lazy("Please press 1, 2, 3, 4 or 5.")
    num_digits = 1

    def prompt(self, call: CallSession) -> list[Line]:
        # The most used first, one short sentence an option, "hear again" last.
        lines: list[Line] = [
            _("Main menu."),
            _("For your balance, press 1."),
            _("To send money, press 2."),
            _("For your recent transactions, press 4."),
            _("To change your PIN, press 5."),
            _("To hear these options again, press 3."),
        ]
        if other := other_language(call):
            # Said in the other language and its voice, for the caller who needs it.
            lines.append(InLanguage(other, LANGUAGE_OPTIONS[other], (("key", 9),)))
        return lines

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == "9":
            other = other_language(call)
            if other is None:
                return Again(self.wrong_keys)
            call.language = other
            identity.account_remember_language(account=call.account, language=other)
            return Goto(self.name)
        if keys == "2" and not call.account.is_verified:
            # A pending account: no money moves until staff verify it.
            return Again(NOT_VERIFIED, strike=False)
        return Goto({"1": "balance", "2": "send_amount", "3": "menu", "4": "history", "5": "change_pin"}[keys])


@step
class Balance(Step):
    name = "balance"
    keys = ONE_KEY_1_2
    wrong_keys = PRESS_1_OR_2
    num_digits = 1

    def prompt(self, call: CallSession) -> list[Line]:
        return [
            _("Your balance is %(amount)s.") % {"amount": spoken_amount(call.account.balance_cents)},
            PAUSE,
            _("To hear it again, press 1. For the main menu, press 2."),
        ]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        return Goto("balance" if keys == "1" else "menu")


@step
class History(Step):
    """The last five ledger entries, newest first, one calm sentence each."""

    name = "history"
    keys = ONE_KEY_1_2
    wrong_keys = PRESS_1_OR_2
    num_digits = 1
    COUNT = 5

    def prompt(self, call: CallSession) -> list[Line]:
        entries = services.ledger_recent(account=call.account, count=self.COUNT)
        lines: list[Line] = [describe_entry(entry) for entry in entries] or [_("You have no transactions yet.")]
        return [*lines, PAUSE, _("To hear them again, press 1. For the main menu, press 2.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        return Goto(self.name if keys == "1" else "menu")


TRANSFER_STATUS = {
    Transfer.Status.SUBMITTED: gettext_lazy("It is submitted."),
    Transfer.Status.SETTLED: gettext_lazy("It was paid out."),
    Transfer.Status.REJECTED: gettext_lazy("It was rejected, and the money came back."),
}


def describe_entry(entry: LedgerEntry) -> str:
    """One ledger entry as the caller hears it: the date, the amount, what it was."""
    when = spoken_date(entry.created)
    amount = spoken_dollars(abs(entry.amount_cents))
    if entry.kind == LedgerEntry.Kind.TRANSFER:
        transfer = entry.transfer
        sent = _("On %(date)s, you sent %(amount)s to %(name)s.") % {
            "date": when, "amount": amount, "name": transfer.recipient.name,
        }
        return f"{sent} {TRANSFER_STATUS[transfer.status]}"
    if entry.kind == LedgerEntry.Kind.REVERSAL:
        return _("On %(date)s, %(amount)s came back to you because a transfer to %(name)s was rejected.") % {
            "date": when, "amount": amount, "name": entry.transfer.recipient.name,
        }
    if entry.kind == LedgerEntry.Kind.CORRECTION:
        return _("On %(date)s, a deposit was corrected: %(amount)s was taken back.") % {"date": when, "amount": amount}
    return _("On %(date)s, %(amount)s was added to your account.") % {"date": when, "amount": amount}


# Change PIN -------------------------------------------------------------------------------


@step
class ChangePin(Step):
    """The current PIN first: a wrong one counts toward the account's lock, as at sign-in."""

    name = "change_pin"
    locks_call = True
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    num_digits = 4

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("To change your PIN, first enter your current PIN.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        try:
            identity.account_check_pin(account=call.account, pin=keys)
        except identity.AccountLocked as refusal:
            return locked_goodbye(refusal)
        except identity.WrongPin:
            return count_wrong_pin(call, Again(_("That PIN is not correct."), strike=False))
        call.scratch = {"mismatches": 0}
        return Goto("change_pin_new")


@step
class ChangePinNew(Step):
    name = "change_pin_new"
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    num_digits = 4

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Now enter your new 4-digit PIN. Choose one that is hard to guess.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        weakness = pins.pin_weakness(keys)
        if weakness:
            return Again(_("That PIN is too easy to guess. %(reason)s Please choose another PIN.") % {"reason": weakness})
        if pins.pin_matches(keys, call.account.pin_hash):
            return Again(_("That is your current PIN. Please choose a different one."))
        # Only the hash crosses to the next request, as at registration.
        call.scratch["pin_hash"] = pins.hash_pin(keys)
        return Goto("change_pin_confirm")


@step
class ChangePinConfirm(Step):
    name = "change_pin_confirm"
    locks_call = True
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    num_digits = 4

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Please enter the new PIN again to confirm it.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        pin_hash = call.scratch.pop("pin_hash", None)
        if pin_hash is None or not pins.pin_matches(keys, pin_hash):
            call.scratch["mismatches"] = call.scratch.get("mismatches", 0) + 1
            if call.scratch["mismatches"] >= 3:
                return Goodbye(_("The PINs did not match. Your PIN is not changed. Please call again when you are ready. Goodbye."))
            return Goto("change_pin_new", _("The two PINs did not match. Let's try the new PIN again."))
        identity.account_change_pin(account=call.account, pin_hash=pin_hash)
        call.scratch = {}
        return Goto("menu", _("Your PIN is changed."))
