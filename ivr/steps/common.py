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
# Each language offered in its own words and voice, with its key: its place
# in IVR_LANGUAGES at the language prompt, 9 at the main menu.
LANGUAGE_OPTIONS = {
    "en": gettext_lazy("For English, press %(key)s."),
    "es": gettext_lazy("Para español, oprima %(key)s."),
}


def code_lines(call: CallSession, heading: Words) -> list[Line]:
    """A code, read for writing down and twice: the first time whole, before any key can cut it off.

    heading is "Your confirmation code is:" or the like.
    """
    code = codes.unseal_code(call.scratch.get("code", ""), context=call.call_sid) or ""
    return [
        Code(heading, code, uninterrupted=True),
        PAUSE,
        Code(_("Again:"), code),
        PAUSE,
        _("Please write it down."),
    ]


def keep_code(call: CallSession, code: str, **extra: object) -> None:
    # Sealed, so that the call's state never holds a code in the clear.
    call.scratch = {"code": codes.seal_code(code, context=call.call_sid), **extra}
