"""Signed in: the main menu and the balance."""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import identity
from accounts.money import spoken_amount
from ivr.machine import PAUSE, Again, Goto, InLanguage, Line, Outcome, Step, step
from ivr.models import CallSession
from ivr.steps.common import LANGUAGE_OPTIONS, ONE_KEY_1_2, PRESS_1_OR_2

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
    keys = re.compile(r"[1239]", re.ASCII)
    wrong_keys = gettext_lazy("Please press 1, 2 or 3.")
    num_digits = 1

    def prompt(self, call: CallSession) -> list[Line]:
        lines: list[Line] = [
            _("Main menu. For your balance, press 1. To send money, press 2. To hear these options again, press 3.")
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
        return Goto({"1": "balance", "2": "send_amount", "3": "menu"}[keys])


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
