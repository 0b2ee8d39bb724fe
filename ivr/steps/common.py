"""What several parts of the call say or take alike."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import codes
from ivr.machine import PAUSE, Code, Line, Words
from ivr.models import CallSession

ONE_KEY_1_2 = re.compile(r"[12]", re.ASCII)
FOUR_DIGITS = re.compile(r"[0-9]{4}", re.ASCII)
SIX_DIGITS = re.compile(r"[0-9]{6}", re.ASCII)
PRESS_1_OR_2 = gettext_lazy("Please press 1 or 2.")
A_PIN_HAS_4_DIGITS = gettext_lazy("A PIN has 4 digits.")
NOT_VERIFIED = gettext_lazy("Your account is not verified yet. Please give your registration code to staff.")
# Said when a signed-in caller leaves a flow for the main menu before it finished.
NOTHING_SENT = gettext_lazy("No money was sent.")
PIN_NOT_CHANGED = gettext_lazy("Your PIN was not changed.")
# Help at the prompts that choose a PIN or confirm it, at registration and at "change PIN".
CHOOSE_PIN_HELP = gettext_lazy("Choose 4 digits that only you know. Do not use a year, or digits in a row.")
CONFIRM_PIN_HELP = gettext_lazy("Enter the same 4 digits again, to be sure they are right.")


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
