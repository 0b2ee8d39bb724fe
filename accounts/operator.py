"""What operator commands share: naming an account the way an operator would."""

from __future__ import annotations

from django.core.management.base import CommandError

from accounts import identity
from accounts.models import Account
from accounts.services import UnknownAccount

ACCOUNT_HELP = "a 6-digit member ID, or the account's home number (+12026230001, 202-623-0001, (202) 623-0001)"


def account_argument(text: str) -> Account:
    """The account a command names, or a CommandError that says what was wrong with the name."""
    try:
        return identity.account_by_reference(text)
    except identity.NotAPhoneNumber:
        raise CommandError(
            f"{text!r} is not a 6-digit member ID, nor a phone number in E.164 or national form"
        ) from None
    except UnknownAccount:
        raise CommandError(f"no account has the member ID or home number {text}") from None


def phone_argument(text: str) -> str:
    try:
        return identity.parse_phone_number(text)
    except identity.NotAPhoneNumber:
        raise CommandError(f"{text!r} is not a phone number in E.164 or national form") from None
