"""PINs: peppered, hashed, checked in constant-ish time, and refused when weak.

A PIN is HMAC-SHA256'd with PIN_PEPPER before Argon2id hashes it. With 10,000
possible PINs, a leaked database without the pepper would give up every PIN in
minutes; with the pepper, the database alone gives up nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password

# Common 4-digit PINs not already caught by the repeat and run rules: the most
# used ones in DataGenetics' study of 3.4 million PINs (1212, 1004, 2000, 6969,
# 1122, 1313, 2001, 1010), the keypad's middle column down and up (2580, 0852)
# and L-O-V-E on the keypad (5683).
COMMON_PINS = frozenset({"1212", "1004", "2000", "2580", "0852", "6969", "1122", "1313", "2001", "1010", "5683"})


def pin_weakness(pin: str) -> str | None:
    """Why a new PIN is too easy to guess, in words for the caller, or None."""
    if len(set(pin)) == 1:
        return "It uses one digit four times."
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:], strict=False)}
    if steps in ({1}, {-1}):
        return "Its digits run in order."
    if pin in COMMON_PINS:
        return "It is one of the most common PINs."
    return None


# One Argon2 computation at a time in a process. Each takes 19 MiB and a whole
# core for about 25 ms: with two workers on two cores, more at once would not
# finish sooner, only hold more memory (see docs/PERFORMANCE.md).
_argon2_slot = threading.BoundedSemaphore(1)


def _peppered(pin: str) -> str:
    return hmac.new(settings.PIN_PEPPER.encode(), pin.encode(), hashlib.sha256).hexdigest()


def hash_pin(pin: str) -> str:
    with _argon2_slot:
        return make_password(_peppered(pin))


def pin_matches(pin: str, pin_hash: str | None, *, rehash: Callable[[str], None] | None = None) -> bool:
    """Check a PIN against a stored hash.

    With no hash (an unknown caller) a dummy hash still runs, so that a miss
    takes as long as a check. rehash receives a new hash when the stored one
    was made with older parameters.
    """

    if pin_hash is None:
        hash_pin(pin)
        return False
    with _argon2_slot:
        upgraded: list[str] = []
        matches = check_password(_peppered(pin), pin_hash, setter=lambda peppered: upgraded.append(make_password(peppered)))
    if upgraded and rehash is not None:
        rehash(upgraded[0])
    return matches
