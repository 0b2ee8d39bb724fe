"""The PIN hasher: Django's Argon2 hasher at OWASP's minimum for Argon2id."""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class PinArgon2idHasher(Argon2PasswordHasher):
    """Argon2id, 19 MiB, 2 iterations, parallelism 1 (OWASP's first recommendation).

    Django's default (100 MiB, p=8) costs about 146 ms a check on our 2-core
    machines and cannot run in two gunicorn workers on a 256 MB Fly machine;
    this costs about 25 ms and 31 MiB. Django's hasher verifies with the
    parameters written in each hash, so hashes it made still verify and are
    re-hashed with these parameters on the next right PIN.
    """

    algorithm = "argon2id"
    time_cost = 2
    memory_cost = 19456
    parallelism = 1
