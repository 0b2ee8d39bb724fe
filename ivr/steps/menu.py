"""Signed in: the main menu, the balance, recent transactions and changing the PIN.

Each menu is one table of options (ivr/steps/common.py, MenuPrompt): the main
menu's is MAIN_MENU_OPTIONS. Each option's key, words and step are declared
once, and the prompt, the keys it takes and where each leads are derived from it.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import errors, identity, pins, selectors
from accounts.models import LedgerEntry, Transfer
from accounts.spoken import spoken_date, spoken_dollars
from ivr.languages import other_language
from ivr.machine import LANGUAGE_KEY, MAIN_MENU, PAUSE, Again, Goto, Line, Outcome, Step, Words, language_offer, step
from ivr.models import CallSession
from ivr.steps.common import (
    A_PIN_HAS_4_DIGITS,
    FOR_THE_MAIN_MENU,
    FOUR_DIGITS,
    PIN_NOT_CHANGED,
    ChoosePin,
    ConfirmPin,
    MenuPrompt,
    Option,
    balance_words,
)
from ivr.steps.entry import count_wrong_pin, locked
from ivr.steps.send_money import SendAmount
from payments import holds


@step
class Balance(MenuPrompt):
    name = "balance"
    help = gettext_lazy("Press 1 to hear your balance again, or 2 for the main menu.")
    in_one_sentence = True
    options = (
        Option("1", gettext_lazy("To hear it again, press 1."), None),
        Option("2", FOR_THE_MAIN_MENU, MAIN_MENU),
    )

    prompt_asks = (holds.CARD_MONEY,)

    def prompt(self, call: CallSession) -> list[Line]:
        account, card = call.account, None
        if account.balance_cents < 0:
            lines = balance_words(account)  # what is owed, and nothing else
        else:
            # What is held and the week's last card deposit: read with the call where the answer that led
            # here said so (prompt_asks), else asked now, together.
            now = timezone.now()
            said = call.asked(holds.CARD_MONEY, now=now)
            lines = balance_words(account, now=now, held_now=said.held)
            card = said.last_deposit
        # Money a family put on by card this week is named, so the member knows it came; while card money
        # is held, the balance's own words already say so.
        if card is not None and len(lines) == 1:
            lines.append(
                _("Your last card deposit was %(amount)s, on %(date)s.")
                % {"amount": spoken_dollars(card.amount_cents), "date": spoken_date(card.created)}
            )
        return [*lines, PAUSE, *self.offers(call)]


@step
class History(MenuPrompt):
    """The last five ledger entries, newest first, one calm sentence each."""

    name = "history"
    help = gettext_lazy("Press 1 to hear your recent transactions again, or 2 for the main menu.")
    in_one_sentence = True
    options = (
        Option("1", gettext_lazy("To hear them again, press 1."), None),
        Option("2", FOR_THE_MAIN_MENU, MAIN_MENU),
    )
    COUNT = 5

    def prompt(self, call: CallSession) -> list[Line]:
        entries = selectors.ledger_recent(account=call.account, count=self.COUNT)
        lines: list[Line] = [describe_entry(entry) for entry in entries] or [_("You have no transactions yet.")]
        return [*lines, PAUSE, *self.offers(call)]


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
            "name": transfer.recipient_name or transfer.recipient.name,
        }
        return f"{sent} {TRANSFER_STATUS[transfer.status]}"
    if entry.kind == LedgerEntry.Kind.REVERSAL:
        return _("On %(date)s, %(amount)s came back to you because a transfer to %(name)s was rejected.") % {
            "date": when,
            "amount": amount,
            "name": entry.transfer.recipient_name or entry.transfer.recipient.name,
        }
    if entry.kind == LedgerEntry.Kind.CARD:
        return _("On %(date)s, you received a card deposit of %(amount)s.") % {"date": when, "amount": amount}
    if entry.kind in (LedgerEntry.Kind.REFUND, LedgerEntry.Kind.DISPUTE):
        # A refund and a dispute sound the same to the member: the card deposit's money went back.
        return _("On %(date)s, a card deposit of %(amount)s was taken back.") % {"date": when, "amount": amount}
    if entry.kind in (LedgerEntry.Kind.REINSTATED, LedgerEntry.Kind.REFUND_RETURNED):
        return _("On %(date)s, %(amount)s from a card deposit came back to you.") % {"date": when, "amount": amount}
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
class ChangePinNew(ChoosePin):
    name = "change_pin_new"
    abandoned = PIN_NOT_CHANGED
    asks = gettext_lazy("Now enter your new 4-digit PIN. Choose one that is hard to guess.")

    def refusal(self, call: CallSession, pin: str) -> Words:
        if pins.pin_matches(pin, call.account.pin_hash):
            return _("That is your current PIN. Please choose a different one.")
        return ""

    def confirm_step(self) -> type[ConfirmPin]:
        return ChangePinConfirm


@step
class ChangePinConfirm(ConfirmPin):
    name = "change_pin_confirm"
    abandoned = PIN_NOT_CHANGED
    asks = gettext_lazy("Please enter the new PIN again to confirm it.")
    chosen_at = ChangePinNew
    mismatch = gettext_lazy("The two PINs did not match. Let's try the new PIN again.")

    def too_many_mismatches(self, call: CallSession) -> Outcome:
        # Signed in: never hung up on; back to the main menu, told what did not happen.
        call.scratch = {}
        return Goto(MAIN_MENU, f"{_('The PINs did not match.')} {PIN_NOT_CHANGED}")

    def confirmed(self, call: CallSession, pin_hash: str) -> Outcome:
        identity.account_change_pin(account=call.account, pin_hash=pin_hash)
        call.scratch = {}
        return Goto(MAIN_MENU, _("Your PIN is changed."))


# The main menu ----------------------------------------------------------------------


def switch_language(call: CallSession) -> Outcome:
    """9: the other language, at once, and for the account's next call too."""
    call.language = other_language(call.language)
    identity.account_remember_language(account=call.account, language=call.language)
    return Goto(MAIN_MENU)


def other_language_offer(call: CallSession) -> Line:
    """Said in the other language and its voice, for the caller who needs it."""
    return language_offer(other_language(call.language), LANGUAGE_KEY)


# In the order they are said: the most used first, "hear again" last.
MAIN_MENU_OPTIONS = (
    Option("1", gettext_lazy("For your balance, press 1."), Balance),
    Option("2", gettext_lazy("To send money, press 2."), SendAmount, verified_only=True),
    Option("4", gettext_lazy("For your recent transactions, press 4."), History),
    Option("5", gettext_lazy("To change your PIN, press 5."), ChangePin),
    Option("3", gettext_lazy("To hear these options again, press 3."), None),
)
# With exactly two languages offered, 9 switches to the other (three or more: the language menu, before sign-in).
OTHER_LANGUAGE_OPTION = Option(LANGUAGE_KEY, other_language_offer, switch_language)


@step
class Menu(MenuPrompt):
    name = MAIN_MENU
    # Not the keys one by one: six of them would take longer to hear than the menu.
    wrong_keys = gettext_lazy("That key is not an option.")
    help = gettext_lazy("Press the key for what you want to do. To hear the options again, press 3.")

    @property
    def options(self) -> tuple[Option, ...]:
        if len(settings.IVR_LANGUAGES) == 2:
            return (*MAIN_MENU_OPTIONS, OTHER_LANGUAGE_OPTION)
        return MAIN_MENU_OPTIONS

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Main menu."), *self.offers(call)]
