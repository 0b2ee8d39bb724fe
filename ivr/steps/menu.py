"""Signed in: the main menu, the balance, recent transactions and changing the PIN.

The main menu is one table (MAIN_MENU_OPTIONS): each option's key, words and
step are declared once, and the prompt, the keys it takes and where each
leads are derived from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import errors, identity, pins, selectors
from accounts.models import LedgerEntry, Transfer
from accounts.spoken import spoken_amount, spoken_date, spoken_dollars
from ivr.languages import LANGUAGE_OPTIONS
from ivr.machine import LANGUAGE_KEY, MAIN_MENU, PAUSE, Again, Goto, InLanguage, Line, Outcome, Step, Words, step
from ivr.models import CallSession
from ivr.steps.common import (
    A_PIN_HAS_4_DIGITS,
    CHOOSE_PIN_HELP,
    CONFIRM_PIN_HELP,
    FOUR_DIGITS,
    NOT_VERIFIED,
    ONE_KEY_1_2,
    PIN_NOT_CHANGED,
    PRESS_1_OR_2,
)
from ivr.steps.entry import count_wrong_pin, locked
from ivr.steps.registration import TOO_EASY
from ivr.steps.send_money import SendAmount


def other_language(call: CallSession) -> str | None:
    """The language 9 switches to at the main menu: only with exactly two languages offered."""
    offered = settings.IVR_LANGUAGES
    if len(offered) != 2:
        return None
    return offered[1] if (call.language or offered[0]) == offered[0] else offered[0]


@step
class Balance(Step):
    name = "balance"
    keys = ONE_KEY_1_2
    wrong_keys = PRESS_1_OR_2
    help = gettext_lazy("Press 1 to hear your balance again, or 2 for the main menu.")
    num_digits = 1

    def prompt(self, call: CallSession) -> list[Line]:
        lines: list[Line] = [_("Your balance is %(amount)s.") % {"amount": spoken_amount(call.account.balance_cents)}]
        # Money a family put on by card this week is named, so the member knows it came.
        card = selectors.last_card_deposit(account=call.account, since=timezone.now() - CARD_DEPOSIT_NEWS)
        if card is not None:
            lines.append(
                _("Your last card deposit was %(amount)s, on %(date)s.")
                % {"amount": spoken_dollars(card.amount_cents), "date": spoken_date(card.created)}
            )
        return [*lines, PAUSE, _("To hear it again, press 1. For the main menu, press 2.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        return Goto(self.name if keys == "1" else MAIN_MENU)


@step
class History(Step):
    """The last five ledger entries, newest first, one calm sentence each."""

    name = "history"
    keys = ONE_KEY_1_2
    wrong_keys = PRESS_1_OR_2
    help = gettext_lazy("Press 1 to hear your recent transactions again, or 2 for the main menu.")
    num_digits = 1
    COUNT = 5

    def prompt(self, call: CallSession) -> list[Line]:
        entries = selectors.ledger_recent(account=call.account, count=self.COUNT)
        lines: list[Line] = [describe_entry(entry) for entry in entries] or [_("You have no transactions yet.")]
        return [*lines, PAUSE, _("To hear them again, press 1. For the main menu, press 2.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        return Goto(self.name if keys == "1" else MAIN_MENU)


# How long the balance names the last card deposit a family made.
CARD_DEPOSIT_NEWS = timedelta(days=7)

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
            "date": when,
            "amount": amount,
            "name": transfer.recipient.name,
        }
        return f"{sent} {TRANSFER_STATUS[transfer.status]}"
    if entry.kind == LedgerEntry.Kind.REVERSAL:
        return _("On %(date)s, %(amount)s came back to you because a transfer to %(name)s was rejected.") % {
            "date": when,
            "amount": amount,
            "name": entry.transfer.recipient.name,
        }
    if entry.kind == LedgerEntry.Kind.CARD:
        return _("On %(date)s, a card deposit of %(amount)s.") % {"date": when, "amount": amount}
    if entry.kind == LedgerEntry.Kind.REFUND:
        return _("On %(date)s, a card deposit of %(amount)s was refunded to the card.") % {
            "date": when,
            "amount": amount,
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
    checks_pin = True
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    help = gettext_lazy("To change your PIN, first enter the PIN you use now.")
    abandoned = PIN_NOT_CHANGED
    num_digits = 4

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("To change your PIN, first enter your current PIN.")]

    def count_pin_attempt(self, call: CallSession, keys: str) -> identity.PinAttempt | None:
        return identity.pin_attempt_count(account_id=call.account_id, trusted_number=call.trusted_number)

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if call.pin_attempt is None:
            return Goto(self.name)  # not counted (the call moved meanwhile): never checked uncounted
        try:
            identity.account_check_pin(account=call.account, pin=keys, attempt=call.pin_attempt)
        except errors.AccountLocked as refusal:
            return locked(call, refusal)
        except errors.WrongPin:
            return count_wrong_pin(call, Again(_("That PIN is not correct."), strike=False))
        call.scratch = {"mismatches": 0}
        return Goto(ChangePinNew)


@step
class ChangePinNew(Step):
    name = "change_pin_new"
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    help = CHOOSE_PIN_HELP
    abandoned = PIN_NOT_CHANGED
    num_digits = 4

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Now enter your new 4-digit PIN. Choose one that is hard to guess.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if weakness := pins.pin_weakness(keys):
            return Again(TOO_EASY % {"reason": weakness}, strike=False)
        if pins.pin_matches(keys, call.account.pin_hash):
            return Again(_("That is your current PIN. Please choose a different one."), strike=False)
        # Only the hash crosses to the next request, as at registration.
        call.scratch["pin_hash"] = pins.hash_pin(keys)
        return Goto(ChangePinConfirm)


@step
class ChangePinConfirm(Step):
    name = "change_pin_confirm"
    locks_call = True
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    help = CONFIRM_PIN_HELP
    abandoned = PIN_NOT_CHANGED
    num_digits = 4

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Please enter the new PIN again to confirm it.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        pin_hash = call.scratch.pop("pin_hash", None)
        if pin_hash is None or not pins.pin_matches(keys, pin_hash):
            call.scratch["mismatches"] = call.scratch.get("mismatches", 0) + 1
            if call.scratch["mismatches"] >= 3:
                # Signed in: never hung up on; back to the main menu, told what did not happen.
                call.scratch = {}
                return Goto(MAIN_MENU, f"{_('The PINs did not match.')} {PIN_NOT_CHANGED}")
            return Goto(ChangePinNew, _("The two PINs did not match. Let's try the new PIN again."))
        identity.account_change_pin(account=call.account, pin_hash=pin_hash)
        call.scratch = {}
        return Goto(MAIN_MENU, _("Your PIN is changed."))


# The main menu ----------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One main-menu option: its key, what the caller hears, and the step it leads to (None: this menu again)."""

    key: str
    words: Words
    step: type[Step] | None
    verified_only: bool = False  # refused for a pending account: no money moves until staff verify it


# In the order they are said: the most used first, "hear again" last.
MAIN_MENU_OPTIONS = (
    Option("1", gettext_lazy("For your balance, press 1."), Balance),
    Option("2", gettext_lazy("To send money, press 2."), SendAmount, verified_only=True),
    Option("4", gettext_lazy("For your recent transactions, press 4."), History),
    Option("5", gettext_lazy("To change your PIN, press 5."), ChangePin),
    Option("3", gettext_lazy("To hear these options again, press 3."), None),
)
_OPTIONS_BY_KEY = {option.key: option for option in MAIN_MENU_OPTIONS}


@step
class Menu(Step):
    name = MAIN_MENU
    # The options' keys, and 9 for the other language (refused when there is none).
    keys = re.compile(f"[{''.join(sorted(_OPTIONS_BY_KEY))}{LANGUAGE_KEY}]", re.ASCII)
    wrong_keys = gettext_lazy("That key is not an option.")
    help = gettext_lazy("Press the key for what you want to do. To hear the options again, press 3.")
    num_digits = 1

    def prompt(self, call: CallSession) -> list[Line]:
        lines: list[Line] = [_("Main menu."), *(option.words for option in MAIN_MENU_OPTIONS)]
        if other := other_language(call):
            # Said in the other language and its voice, for the caller who needs it.
            lines.append(InLanguage(other, LANGUAGE_OPTIONS[other], (("key", LANGUAGE_KEY),)))
        return lines

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if keys == LANGUAGE_KEY:
            other = other_language(call)
            if other is None:
                return Again(self.wrong_keys)
            call.language = other
            identity.account_remember_language(account=call.account, language=other)
            return Goto(self.name)
        option = _OPTIONS_BY_KEY[keys]
        if option.verified_only and not call.account.is_verified:
            return Again(NOT_VERIFIED, strike=False)
        return Goto(option.step or self.name)
