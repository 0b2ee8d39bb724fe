"""PINs: peppered, hashed, checked in constant-ish time, and refused when weak.

A PIN is HMAC-SHA256'd with PIN_PEPPER before Argon2id hashes it. With 10,000
possible PINs, a leaked database without the pepper would give up every PIN in
minutes; with the pepper, the database alone gives up nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.utils.translation import gettext

logger = logging.getLogger(__name__)

# The most used 4-digit PINs that no rule below catches. The rules cover all
# of the top 20 in DataGenetics' 2012 study of 3.4 million PINs (1234, 1111,
# 0000, 1212, 7777, 1004, 2000, 4444, 2222, 6969, 9999, 3333, 5555, 6666, 1122,
# 1313, 8888, 4321, 2001, 1010) but 1004 ("ten-oh-four"), and the study found
# years 19xx and 20xx heavily over-represented. Added: the keypad's middle
# column down and up (2580, 0852) and L-O-V-E spelled on the keypad (5683).
COMMON_PINS = frozenset({"1004", "2580", "0852", "5683"})


def pin_weakness(pin: str) -> str | None:
    """Why a new PIN is too easy to guess, in words for the caller (translated), or None."""
    digits = [int(d) for d in pin]
    steps = {b - a for a, b in itertools.pairwise(digits)}
    if len(set(pin)) == 1:
        return gettext("It uses one digit four times.")
    if steps in ({1}, {-1}):
        return gettext("Its digits run in order.")
    if len(steps) == 1:
        # 2468, 1357, 8642, 0369: the digits go up or down by the same step.
        return gettext("Its digits go up or down in equal steps.")
    if 1950 <= int(pin) <= 2029:
        return gettext("It looks like a year.")
    if pin[:2] == pin[2:] or (pin[0] == pin[1] and pin[2] == pin[3]):
        # 1212, 1313, 6969, 1010 and 1122, 3344: a pair of digits, twice.
        return gettext("It repeats a pair of digits.")
    if pin[:3] == pin[0] * 3 or pin[1:] == pin[1] * 3:
        # 0007, 1000, 7770: three of a kind.
        return gettext("It uses one digit three times in a row.")
    if pin in COMMON_PINS:
        return gettext("It is one of the most common PINs.")
    return None


class _Argon2Turn:
    """One Argon2 computation at a time in this process, and in this instance's workers where gunicorn.conf.py
    names a file for them to take turns on (ARGON2_LOCK_FILE).

    Each computation holds 19 MiB for about 25 ms of a core. Two workers hashing at once held 38 MiB more
    than their calls need, and the instance's peak went past the 150 MiB a 256 MB Fly machine leaves it
    (docs/PERFORMANCE.md, "Memory"); on a Fly machine's one shared core they would not finish sooner either.
    The workers' turn is an advisory lock on the file (flock), which the kernel releases with a worker that
    dies holding it. A turn not had within TURN_WAIT_SECONDS is taken anyway (a worker frozen mid-check):
    the caller's PIN is checked, only with more memory for a moment.
    """

    TURN_WAIT_SECONDS = 1.0

    def __init__(self) -> None:
        self._threads = threading.Lock()
        self._file: BinaryIO | None = None
        self._opened: tuple[int, str] | None = None  # by which process, which file

    def __enter__(self) -> None:
        self._threads.acquire()
        self._holding = self._take_instance_turn()

    def __exit__(self, *exc: object) -> None:
        try:
            if self._holding:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _take_instance_turn(self) -> bool:
        path = os.environ.get("ARGON2_LOCK_FILE", "").strip()
        if not path:
            return False
        try:
            if self._opened != (os.getpid(), path):
                # Opened in this process: a descriptor inherited across fork would share one lock with the master.
                if self._file is not None and self._opened[0] == os.getpid():
                    self._file.close()
                self._file, self._opened = open(path, "ab"), (os.getpid(), path)  # noqa: SIM115 - held for the process
            give_up_at = time.monotonic() + self.TURN_WAIT_SECONDS
            while True:
                try:
                    fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() > give_up_at:
                        logger.warning("argon2: no turn within %.1f s, checking anyway", self.TURN_WAIT_SECONDS)
                        return False
                    time.sleep(0.002)
        except OSError as error:
            logger.warning("argon2: no instance-wide turn (%s), this process's only", type(error).__name__)
            return False


_argon2_slot = _Argon2Turn()


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
        matches = check_password(
            _peppered(pin), pin_hash, setter=lambda peppered: upgraded.append(make_password(peppered))
        )
    if upgraded and rehash is not None:
        rehash(upgraded[0])
    return matches
