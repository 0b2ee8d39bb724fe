"""What a call's caller ID tells us, and how far to trust it (SPEC section 5, Entry).

The caller's number is never an identity, only a convenience: a call from an
account's home number may sign in with the PIN alone, if the number is shown,
is a real E.164 number, and the carrier did not report that its STIR/SHAKEN
validation failed (a sign that the number was spoofed). Shared lines are the
database's business (accounts.identity.caller_home).
"""

from __future__ import annotations

import re

E164 = re.compile(r"\+[1-9][0-9]{1,14}", re.ASCII)

# How carriers spell a withheld number: words, or the words typed on a keypad
# (+266696687 is ANONYMOUS, +7378742833 is RESTRICTED).
WITHHELD = frozenset({"", "anonymous", "restricted", "unknown", "private", "+266696687", "+7378742833", "+86282452253"})


def caller_number(caller_id: str | None) -> str:
    """The caller's E.164 number, or "" when it is withheld or not a phone number.

    A withheld caller is served like anyone else; "" is all we keep of them.
    """
    caller_id = (caller_id or "").strip()
    if caller_id.lower() in WITHHELD or not E164.fullmatch(caller_id):
        return ""
    return caller_id


def validation_failed(stir_verstat: str | None) -> bool:
    """Twilio's StirVerstat says the caller ID failed STIR/SHAKEN validation (TN-Validation-Failed-A/B/C)."""
    return (stir_verstat or "").strip().lower().startswith("tn-validation-failed")


def trusted_number(caller_id: str | None, stir_verstat: str | None) -> str:
    """The caller's number when we may offer PIN-only sign-in on it, else ""."""
    return "" if validation_failed(stir_verstat) else caller_number(caller_id)
