"""Whether a call's From is a number we can key an account on."""

from __future__ import annotations

import re

E164 = re.compile(r"\+[1-9][0-9]{1,14}", re.ASCII)

# How carriers spell a withheld number: words, or the words typed on a keypad
# (+266696687 is ANONYMOUS, +7378742833 is RESTRICTED).
WITHHELD = frozenset({"", "anonymous", "restricted", "unknown", "private", "+266696687", "+7378742833", "+86282452253"})


def account_number(caller_id: str | None) -> str | None:
    """The caller's E.164 number, or None when it is withheld or not a phone number."""
    caller_id = (caller_id or "").strip()
    if caller_id.lower() in WITHHELD or not E164.fullmatch(caller_id):
        return None
    return caller_id
