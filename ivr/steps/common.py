"""What several parts of the call say or take alike."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import codes
from ivr.machine import PAUSE, Words
from ivr.models import CallSession
from ivr.twiml import spoken_digits

ONE_KEY_1_2 = re.compile(r"[12]", re.ASCII)
FOUR_DIGITS = re.compile(r"[0-9]{4}", re.ASCII)
SIX_DIGITS = re.compile(r"[0-9]{6}", re.ASCII)
PRESS_1_OR_2 = gettext_lazy("Please press 1 or 2.")
A_PIN_HAS_4_DIGITS = gettext_lazy("A PIN has 4 digits.")


def code_lines(call: CallSession, heading: Words) -> list[Words | object]:
    """A code, read slowly and twice: heading is "Your confirmation code is:" or the like."""
    code = codes.unseal_code(call.scratch.get("code", ""), context=call.call_sid) or ""
    return [
        f"{heading} {spoken_digits(code)}.",
        PAUSE,
        _("Again: %(digits)s.") % {"digits": spoken_digits(code)},
        PAUSE,
        _("Please write it down."),
    ]


def keep_code(call: CallSession, code: str, **extra: object) -> None:
    # Sealed, so that the call's state never holds a code in the clear.
    call.scratch = {"code": codes.seal_code(code, context=call.call_sid), **extra}
