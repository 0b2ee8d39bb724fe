"""What operators type: naming an account or a phone number the way an operator would, for commands and the admin."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings
from django.core.management.base import CommandError

from accounts.errors import NotAPhoneNumber, UnknownAccount
from accounts.identity import MEMBER_ID
from accounts.models import Account

TYPED_PHONE = re.compile(r"\+?[0-9 ().-]{4,24}", re.ASCII)

ACCOUNT_HELP = "a 6-digit member ID, or the account's home number (+12026230001, 202-623-0001, (202) 623-0001)"


def account_argument(text: str) -> Account:
    """The account a command names, or a CommandError that says what was wrong with the name."""
    try:
        return account_by_reference(text)
    except NotAPhoneNumber:
        raise CommandError(
            f"{text!r} is not a 6-digit member ID, nor a phone number in E.164 or national form"
        ) from None
    except UnknownAccount:
        raise CommandError(f"no account has the member ID or home number {text}") from None


def phone_argument(text: str) -> str:
    try:
        return parse_phone_number(text)
    except NotAPhoneNumber:
        raise CommandError(f"{text!r} is not a phone number in E.164 or national form") from None


def parse_phone_number(text: str) -> str:
    """E.164 from what an operator types: +12026230001, 202-623-0001, (202) 623-0001.

    Numbers without a + are read in PHONE_REGION. NotAPhoneNumber otherwise.
    """
    # Digits and the usual punctuation only: phonenumbers would read letters
    # as a vanity number (1-800-FLOWERS), never what an operator meant here.
    if not TYPED_PHONE.fullmatch(text.strip()):
        raise NotAPhoneNumber
    try:
        number = phonenumbers.parse(text.strip(), settings.PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise NotAPhoneNumber from None
    # Possible, not valid, so that test lines in the 555 range are accepted;
    # a number dialable only locally (555-1234) names no one line.
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise NotAPhoneNumber
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def account_by_reference(text: str) -> Account:
    """The account an operator names: a 6-digit member ID or its home number.

    UnknownAccount when none matches, NotAPhoneNumber when text is neither.
    """
    text = text.strip()
    if MEMBER_ID.fullmatch(text):
        account = Account.objects.filter(member_id=text).first()
    else:
        account = Account.objects.filter(home_number=parse_phone_number(text)).first()
    if account is None:
        raise UnknownAccount
    return account
