"""What a call's caller ID tells us, and how far to trust it (docs/CALL_FLOW.md).

The caller's number is never an identity, only a convenience: a call from an
account's home number may sign in with the PIN alone, and registration may
make a number its home number, only when the caller ID is trusted: a valid
number the carrier vouches for. Carriers vouch with STIR/SHAKEN attestation A
(Twilio's StirVerstat=TN-Validation-Passed-A): the caller may use that number.
B and C say the carrier does not know, and a failed validation means the
number was probably spoofed. CALLER_ID_TRUST=unless-failed trusts any valid
number whose validation did not fail. Shared lines are the database's business
(accounts.identity.caller_home).
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from django.conf import settings

E164 = re.compile(r"\+[1-9][0-9]{1,14}", re.ASCII)

# How carriers spell a withheld number: words, or the words typed on a keypad
# (+266696687 ANONYMOUS, +7378742833 RESTRICTED, +86282452253 UNAVAILABLE,
# +2562533 BLOCKED, +8656696 UNKNOWN). phonenumbers holds none of the keypad
# spellings valid; they are listed so that the rule does not hang on its metadata.
WITHHELD = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "unknown",
        "private",
        "unavailable",
        "blocked",
        "+266696687",
        "+7378742833",
        "+86282452253",
        "+2562533",
        "+8656696",
    }
)
ATTESTED = "tn-validation-passed-a"


def caller_number(caller_id: str | None) -> str:
    """The caller's E.164 number, or "" when it is withheld or not a valid phone number.

    A withheld caller is served like anyone else; "" is all we keep of them.
    client: and sip: callers (Twilio's Voice SDK, a SIP trunk) have no number.
    """
    return _valid_number((caller_id or "").strip()[:40])


@lru_cache(maxsize=4096)
def _valid_number(caller_id: str) -> str:
    # Cached: every webhook of a call asks about the same From, and phonenumbers parses it anew each time.
    if caller_id.lower() in WITHHELD or not E164.fullmatch(caller_id):
        return ""
    try:
        number = phonenumbers.parse(caller_id)
    except phonenumbers.NumberParseException:
        return ""
    return caller_id if phonenumbers.is_valid_number(number) else ""


def validation_failed(stir_verstat: str | None) -> bool:
    """Twilio's StirVerstat says the caller ID failed STIR/SHAKEN validation (TN-Validation-Failed-A/B/C)."""
    return (stir_verstat or "").strip().lower().startswith("tn-validation-failed")


def attested(stir_verstat: str | None) -> bool:
    """The carrier vouches that the caller may use the number (attestation A)."""
    return (stir_verstat or "").strip().lower() == ATTESTED


def trusted_number(caller_id: str | None, stir_verstat: str | None) -> str:
    """The caller's number when it may open PIN-only sign-in or become a home number, else ""."""
    if settings.CALLER_ID_TRUST == "attested":
        trusted = attested(stir_verstat)
    else:
        trusted = not validation_failed(stir_verstat)
    return caller_number(caller_id) if trusted else ""
