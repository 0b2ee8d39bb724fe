"""Confirmation codes: 6 digits from `secrets`, stored only as a keyed hash.

A code must be spoken again when the caller asks, and spoken again when Twilio
retries a webhook, so the call keeps it between requests; it keeps it sealed
with the pepper (see seal_code), never as the digits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from django.conf import settings

CODE_LENGTH = 6
_CODE = re.compile(r"[0-9]{6}", re.ASCII)
_MODULUS = 10**CODE_LENGTH


def is_code(text: str) -> bool:
    return bool(_CODE.fullmatch(text))


def new_code() -> str:
    return f"{secrets.randbelow(_MODULUS):06d}"


def _keyed(purpose: bytes, message: str) -> bytes:
    return hmac.new(settings.PIN_PEPPER.encode(), purpose + message.encode(), hashlib.sha256).digest()


def line_digest(phone_number: str) -> str:
    """What the registration limits keep of a caller's line: HMAC-SHA256 with PIN_PEPPER, in hex."""
    return _keyed(b"registration-line:", phone_number).hex()


def code_digest(code: str) -> str:
    """What the database keeps of a code: HMAC-SHA256 with PIN_PEPPER, in hex."""
    return _keyed(b"confirmation-code:", code).hex()


def seal_code(code: str, *, context: str) -> str:
    """Hide a code for the call's scratch data: a one-time pad from HMAC(pepper, nonce).

    Without PIN_PEPPER the sealed value says nothing about the code; with it,
    the code could be found from its stored digest anyway. context (the CallSid)
    binds the seal to one call.
    """
    nonce = secrets.token_hex(8)
    return f"{nonce}:{(int(code) + _pad(context, nonce)) % _MODULUS:06d}"


def unseal_code(sealed: str, *, context: str) -> str | None:
    nonce, _, masked = sealed.partition(":")
    if not nonce or not is_code(masked):
        return None
    return f"{(int(masked) - _pad(context, nonce)) % _MODULUS:06d}"


def _pad(context: str, nonce: str) -> int:
    return int.from_bytes(_keyed(b"code-seal:", f"{context}:{nonce}"), "big") % _MODULUS
