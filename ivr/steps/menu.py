"""Signed in: the main menu and the balance."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.money import spoken_amount
from ivr.machine import PAUSE, Again, Goto, Outcome, Step, Words, step
from ivr.models import CallSession
from ivr.steps.common import ONE_KEY_1_2, PRESS_1_OR_2

NOT_VERIFIED = gettext_lazy("Your account is not verified yet. Please give your registration code to staff.")


@step
class Menu(Step):
    name = "menu"
    keys = re.compile(r"[123]", re.ASCII)
    wrong_keys = gettext_lazy("Please press 1, 2 or 3.")
    num_digits = 1

    def prompt(self, call: CallSession) -> list[Words | object]:
        return [_("Main menu. For your balance, press 1. To send money, press 2. To hear these options again, press 3.")]

    def answer(self, call: CallSession, keys: str) -> Outcome:
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

    def prompt(self, call: CallSession) -> list[Words | object]:
        return [
            _("Your balance is %(amount)s.") % {"amount": spoken_amount(call.account.balance_cents)},
            PAUSE,
            _("To hear it again, press 1. For the main menu, press 2."),
        ]

    def answer(self, call: CallSession, keys: str) -> Outcome:
        return Goto("balance" if keys == "1" else "menu")
