"""What several parts of the call say or take alike, and the shapes of step they share.

A menu prompt is one table of options (MenuPrompt): its keys, the sentence a
wrong key hears, its lines and where each key leads all come from it. Choosing
a PIN, confirming it and reading a code back are written once here (ChoosePin,
ConfirmPin, ReadCode); registration, "change PIN" and sending money subclass
them and say only what differs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import ClassVar

from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import codes, holds, pins
from accounts.errors import MoneyHeld
from accounts.holds import Held
from accounts.models import Account
from accounts.spoken import spoken_amount, spoken_date
from ivr.machine import MAIN_MENU, PAUSE, STEPS, Again, Code, Goto, Line, Outcome, Step, Words
from ivr.models import CallSession
from myibot.db import Question

FOUR_DIGITS = re.compile(r"[0-9]{4}", re.ASCII)
SIX_DIGITS = re.compile(r"[0-9]{6}", re.ASCII)
A_PIN_HAS_4_DIGITS = gettext_lazy("A PIN has 4 digits.")
NOT_VERIFIED = gettext_lazy("Your account is not verified yet. Please give your registration code to staff.")
# Said when a signed-in caller leaves a flow for the main menu before it finished.
NOTHING_SENT = gettext_lazy("No money was sent.")


# Card money: held until its release, or taken back after it was spent --------------------------------


def owed_words(owed_cents: int) -> str:
    """Said instead of a balance below zero (never "minus")."""
    return _("You owe %(amount)s because a card deposit was taken back. Your next deposits will pay it first.") % {
        "amount": spoken_amount(owed_cents)
    }


def cannot_send_owed(owed_cents: int) -> str:
    return _("You owe %(amount)s, so you cannot send money now. Your next deposits will pay it first.") % {
        "amount": spoken_amount(owed_cents)
    }


def rest_held(held: Held, *, all_of_it: bool) -> str:
    """Why the rest cannot leave, and from when: the first local date all of it is free."""
    if held.until is None:
        if all_of_it:
            return _("It is from a card deposit: you cannot send it yet.")
        return _("The rest is from a card deposit: you cannot send it yet.")
    if all_of_it:
        return _("It is from a card deposit: you can send it starting %(date)s.") % {"date": spoken_date(held.until)}
    return _("The rest is from a card deposit: you can send it starting %(date)s.") % {"date": spoken_date(held.until)}


def balance_words(account: Account, *, now: datetime | None = None, held_now: Held | None = None) -> list[Line]:
    """The balance as the member hears it: what is owed instead, and what can be sent now when some is held.

    held_now: what is held, when the caller asked already (the balance prompt, with its other question).
    """
    if account.balance_cents < 0:
        return [owed_words(-account.balance_cents)]
    lines: list[Line] = [_("Your balance is %(amount)s.") % {"amount": spoken_amount(account.balance_cents)}]
    if not account.balance_cents:
        return lines  # nothing on the balance: nothing of it is held
    if held_now is None:
        held_now = holds.held(account_id=account.pk, now=now or timezone.now())
    if held_now.cents:
        sendable = holds.sendable_cents(balance_cents=account.balance_cents, held_now=held_now)
        if sendable:
            lines.append(_("You can send %(amount)s now.") % {"amount": spoken_amount(sendable)})
        lines.append(rest_held(held_now, all_of_it=not sendable))
    return lines


def held_refusal(refusal: MoneyHeld) -> str:
    """More than can leave now: how much can, then why the rest cannot and from when."""
    if refusal.sendable_cents:
        first = _("You can send only %(amount)s now.") % {"amount": spoken_amount(refusal.sendable_cents)}
    else:
        first = _("You cannot send money yet.")
    return f"{first} {rest_held(refusal.held, all_of_it=not refusal.sendable_cents)}"


PIN_NOT_CHANGED = gettext_lazy("Your PIN was not changed.")
TOO_EASY = gettext_lazy("That PIN is too easy to guess. %(reason)s Please choose another PIN.")
# Help at the prompts that choose a PIN or confirm it, at registration and at "change PIN".
CHOOSE_PIN_HELP = gettext_lazy("Choose 4 digits that only you know. Do not use a year, or digits in a row.")
CONFIRM_PIN_HELP = gettext_lazy("Enter the same 4 digits again, to be sure they are right.")
# After a code, or a balance: most callers hear it once, and go on.
HEAR_THE_CODE_AGAIN = gettext_lazy("To hear the code again, press 1.")
FOR_THE_MAIN_MENU = gettext_lazy("For the main menu, press 2.")
# A wrong key at a menu: the keys it offers, "1 or 2", "1, 2 or 3".
PRESS_ONE_OF = gettext_lazy("Please press %(keys)s or %(last)s.")


# Menus -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One key of a menu: the words that offer it, and what pressing it does.

    leads_to is a step (go there), MAIN_MENU, None (this prompt again), or a
    function of the call that does what the key asks and says where it leads
    (start_registration). words may be a function of the call, for an offer
    that depends on it (the main menu's other language).
    """

    key: str
    words: Line | Callable[[CallSession], Line]
    leads_to: type[Step] | str | Callable[[CallSession], Outcome] | None
    # Refused for a pending account: no money moves until staff verify it.
    verified_only: bool = False
    # Moves money or writes an account: the call stays locked while it does (Step.locks_call, for this key only).
    locks_call: bool = False


class MenuPrompt(Step):
    """A prompt that offers one key per option, all from one table: options.

    The keys it takes, the sentence a wrong key hears, the lines that offer
    the keys and where each leads are derived from the table, so they cannot
    disagree. A prompt that says something before its options (a balance, a
    code) puts its lines before self.offers(call).
    """

    # In the order they are said. A property where the table depends on settings (the languages offered).
    options: ClassVar[tuple[Option, ...]]
    num_digits = 1
    # The options said as one sentence ("To hear it again, press 1. For the main menu, press 2."),
    # not one <Say> each: for a prompt of two short options after what it reports.
    in_one_sentence: ClassVar[bool] = False

    @property
    def keys(self) -> re.Pattern[str]:
        return _one_key_of("".join(option.key for option in self.options))

    @property
    def wrong_keys(self) -> Words:
        offered = [option.key for option in self.options]
        return _press_one_of(", ".join(offered[:-1]), offered[-1])

    def prompt(self, call: CallSession) -> list[Line]:
        return self.offers(call)

    def offers(self, call: CallSession) -> list[Line]:
        lines = [option.words(call) if callable(option.words) else option.words for option in self.options]
        if self.in_one_sentence:
            return [" ".join(str(line) for line in lines)]
        return lines

    def locks_for(self, entry: str | None) -> bool:
        return self.locks_call or any(option.locks_call and option.key == entry for option in self.options)

    def read_with_call(self, entry: str | None) -> tuple[Question, ...]:
        option = next((option for option in self.options if option.key == entry), None)
        target = self.name if option is not None and option.leads_to is None else getattr(option, "leads_to", None)
        if isinstance(target, str):
            target = STEPS.get(target)
        return tuple(getattr(target, "prompt_asks", ()))

    def answer(self, call: CallSession, keys: str) -> Outcome:
        option = next(option for option in self.options if option.key == keys)
        if option.verified_only and not call.account.is_verified:
            return Again(NOT_VERIFIED, strike=False)
        if option.leads_to is None:
            return Goto(self.name)
        if isinstance(option.leads_to, type | str):
            return Goto(option.leads_to)
        return option.leads_to(call)


@lru_cache(maxsize=32)
def _one_key_of(keys: str) -> re.Pattern[str]:
    return re.compile(f"[{re.escape(keys)}]", re.ASCII)


# Translated when said, in the call's language.
_press_one_of = lazy(lambda keys, last: PRESS_ONE_OF % {"keys": keys, "last": last}, str)


# Choosing a PIN and confirming it ------------------------------------------------------


class ChoosePin(Step):
    """A new PIN (registration, "change PIN"): refused if easy to guess; only its hash goes on to be confirmed.

    A subclass says what the prompt asks (asks), may refuse a PIN for a reason
    of its own (refusal), and names the step that confirms it (confirm_step).
    """

    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    help = CHOOSE_PIN_HELP
    num_digits = 4
    asks: ClassVar[Words]

    def prompt(self, call: CallSession) -> list[Line]:
        return [self.asks]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        if weakness := pins.pin_weakness(keys):
            return Again(TOO_EASY % {"reason": weakness}, strike=False)
        if refused := self.refusal(call, keys):
            return Again(refused, strike=False)
        # Only the hash crosses to the next request; at registration the same hash
        # becomes the account's, so the PIN is hashed once.
        call.scratch["pin_hash"] = pins.hash_pin(keys)
        return Goto(self.confirm_step())

    def refusal(self, call: CallSession, pin: str) -> Words:
        """Why this PIN will not do here, beyond being easy to guess; "" when it will."""
        return ""

    def confirm_step(self) -> type[ConfirmPin]:
        """The step that asks for the PIN again: a method, because that step is written after this one."""
        raise NotImplementedError


class ConfirmPin(Step):
    """The new PIN again: a match goes on (confirmed); a mismatch chooses again, three in a call end the attempt.

    A subclass says what the prompt asks (asks), where a mismatch leads back
    to (chosen_at) with which words (mismatch), what the third mismatch does,
    and what a confirmed PIN does.
    """

    # Creates an account or changes a PIN: the call stays locked for the whole step.
    locks_call = True
    keys = FOUR_DIGITS
    wrong_keys = A_PIN_HAS_4_DIGITS
    help = CONFIRM_PIN_HELP
    num_digits = 4
    MISMATCHES_PER_CALL = 3
    asks: ClassVar[Words]
    chosen_at: ClassVar[type[ChoosePin]]
    mismatch: ClassVar[Words]

    def prompt(self, call: CallSession) -> list[Line]:
        return [self.asks]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        pin_hash = call.scratch.pop("pin_hash", None)
        if pin_hash is None or not pins.pin_matches(keys, pin_hash):
            call.scratch["mismatches"] = call.scratch.get("mismatches", 0) + 1
            if call.scratch["mismatches"] >= self.MISMATCHES_PER_CALL:
                return self.too_many_mismatches(call)
            return Goto(self.chosen_at, self.mismatch)
        return self.confirmed(call, pin_hash)

    def too_many_mismatches(self, call: CallSession) -> Outcome:
        raise NotImplementedError

    def confirmed(self, call: CallSession, pin_hash: str) -> Outcome:
        raise NotImplementedError


# Reading a code back ----------------------------------------------------------------


def code_lines(call: CallSession, heading: Words) -> list[Line]:
    """A code, read for writing down and twice: the first time whole, before any key can cut it off.

    heading is "Your confirmation code is:" or the like.
    """
    code = codes.unseal_code(call.scratch.get("code", ""), context=call.call_sid) or ""
    return [
        Code(f"{_('Have something to write with.')} {heading}", code, uninterrupted=True),
        PAUSE,
        Code(_("Again:"), code),
        PAUSE,
        _("Please write it down."),
    ]


def keep_code(call: CallSession, code: str, **extra: object) -> None:
    # Sealed, so that the call's state never holds a code in the clear.
    call.scratch = {"code": codes.seal_code(code, context=call.call_sid), **extra}


def leave_code(call: CallSession) -> Outcome:
    """The caller has the code: forget it, and on to the main menu."""
    call.scratch = {}
    return Goto(MAIN_MENU)


class ReadCode(MenuPrompt):
    """A code to write down (registration, a transfer), then 1 to hear it again or 2 for the main menu.

    A subclass says the code's heading, what follows the code (after_code), and
    may offer the main menu in words of its own.
    """

    heading: ClassVar[Words]
    after_code: ClassVar[tuple[Words, ...]] = ()
    main_menu: ClassVar[Words] = FOR_THE_MAIN_MENU
    in_one_sentence = True

    @property
    def options(self) -> tuple[Option, ...]:
        return (Option("1", HEAR_THE_CODE_AGAIN, None), Option("2", self.main_menu, leave_code))

    def prompt(self, call: CallSession) -> list[Line]:
        return [*code_lines(call, self.heading), *self.after_code, *self.offers(call)]
