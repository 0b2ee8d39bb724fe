"""Who a caller is: registering, signing in, verifying, locking, and noticing a spray.

The member ID is the identity. A caller's number is only a convenience: a
call from an account's home number, with a caller ID we have no reason to
doubt, may sign in with the PIN alone. Every function here is keyword-only and
atomic; the ones that count wrong PINs lock the account row first, so that
concurrent guesses on one account are all counted.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts import activity, pins
from accounts.models import Account, ConfirmationCode, LedgerEntry, SharedLine, SignInFailure, SignInSpray
from accounts.services import AccountsError, UnknownAccount, confirmation_code_issue
from myibot.db import insert_unless_conflict

logger = logging.getLogger(__name__)

# How long PIN-only entry stays off after a spray of failed sign-ins.
SPRAY_SUSPENSION = timedelta(minutes=15)
SPRAY_WINDOW = timedelta(minutes=1)
MEMBER_ID = re.compile(r"[0-9]{6}", re.ASCII)
TYPED_PHONE = re.compile(r"\+?[0-9 ().-]{4,24}", re.ASCII)


class MemberIdTaken(AccountsError):
    pass


class WrongPin(AccountsError):
    """A wrong PIN, an unknown member ID or an unknown number: the caller is told the same."""


@dataclass
class AccountLocked(AccountsError):
    until: datetime

    def minutes_left(self, now: datetime | None = None) -> int:
        """Whole minutes left, rounded up, never 0."""
        return max(1, math.ceil((self.until - (now or timezone.now())).total_seconds() / 60))


class NotPending(AccountsError):
    """Only a registration staff never verified can be rejected."""


class HoldsMoney(AccountsError):
    """An account with money or history is never removed."""


# Entry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HomeLine:
    """What a caller's number tells us: whose home number it is, their language, and whether PIN-only entry is open."""

    account_id: int
    language: str
    pin_only: bool


def caller_home(*, phone_number: str, now: datetime | None = None) -> HomeLine | None:
    """The account whose home number this is, or None. One query.

    PIN-only entry is open only from a personal number (not a shared line) and
    only while no spray of failed sign-ins is going on. The caller ID's own
    trust (withheld, failed STIR validation) is the caller's concern.
    """
    if not phone_number:
        return None
    now = now or timezone.now()
    found = (
        Account.objects.filter(home_number=phone_number)
        .annotate(
            shared=Exists(SharedLine.objects.filter(phone_number=OuterRef("home_number"))),
            spray=Exists(SignInSpray.objects.filter(until__gt=now)),
        )
        .values_list("pk", "language", "shared", "spray")
        .first()
    )
    if found is None:
        return None
    account_id, language, shared, spray = found
    return HomeLine(account_id=account_id, language=language, pin_only=not (shared or spray))


def is_shared_line(phone_number: str) -> bool:
    return SharedLine.objects.filter(phone_number=phone_number).exists()


# Registration ------------------------------------------------------------------


def member_id_is_taken(member_id: str) -> bool:
    return Account.objects.filter(member_id=member_id).exists()


@transaction.atomic
def account_register(
    *, member_id: str, pin_hash: str, home_number: str | None = None, language: str = "en", now: datetime | None = None
) -> tuple[Account, str]:
    """Create a pending account from a PIN hashed at the "create a PIN" step; returns it and its code.

    home_number is the caller's number when it is trusted and personal; the
    account gets it only if no other account has it. Both rules are kept with
    INSERT ... ON CONFLICT DO NOTHING rather than by catching a unique
    violation, which PostgreSQL would log with the member ID and number in it.
    """
    now = now or timezone.now()
    if home_number and (is_shared_line(home_number) or Account.objects.filter(home_number=home_number).exists()):
        home_number = None
    new = {"member_id": member_id, "pin_hash": pin_hash, "language": language, "created": now}
    account = _insert_account(Account(home_number=home_number, **new))
    if account is None and home_number:
        # Another call took the number (or the member ID) a moment ago.
        account = _insert_account(Account(home_number=None, **new))
    if account is None:
        raise MemberIdTaken
    code = confirmation_code_issue(account=account, purpose=ConfirmationCode.Purpose.REGISTRATION, now=now)
    logger.info("account registered: account=%s home_number=%s", account.pk, "yes" if account.home_number else "no")
    return account, code


def _insert_account(account: Account) -> Account | None:
    """Insert unless a unique rule (member ID, home number) stops it; the new account, or None."""
    return account if insert_unless_conflict(account) else None


@transaction.atomic
def registration_reject(*, member_id: str) -> Account:
    """Remove a pending account that never held money, freeing its member ID and home number."""
    account = Account.objects.select_for_update().filter(member_id=member_id).first()
    if account is None:
        raise UnknownAccount
    if account.status != Account.Status.PENDING:
        raise NotPending
    if account.balance_cents or LedgerEntry.objects.filter(account=account).exists():
        raise HoldsMoney
    _remove(account)
    logger.warning("registration rejected by operator: account=%s", account.pk)
    return account


@transaction.atomic
def registrations_release_expired(*, now: datetime | None = None) -> int:
    """Remove registrations nobody verified within REGISTRATION_VERIFY_DAYS; how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.REGISTRATION_VERIFY_DAYS)
    expired = (
        Account.objects.select_for_update()
        .filter(status=Account.Status.PENDING, created__lt=cutoff, balance_cents=0)
        .filter(~Exists(LedgerEntry.objects.filter(account=OuterRef("pk"))))
    )
    released = 0
    for account in expired:
        _remove(account)
        released += 1
    if released:
        logger.info("unverified registrations released: count=%s", released)
    return released


def _remove(account: Account) -> None:
    # A pending account has no transfers; its registration code goes with it.
    ConfirmationCode.objects.filter(account=account).delete()
    account.delete()


@transaction.atomic
def account_verify(*, account: Account, now: datetime | None = None) -> bool:
    """Activate a pending account: staff checked its registration. False if it already was."""
    locked = Account.objects.select_for_update().get(pk=account.pk)
    if locked.is_verified:
        return False
    locked.verify(now)
    locked.save(update_fields=["status", "verified_at"])
    account.status, account.verified_at = locked.status, locked.verified_at
    logger.info("account verified: account=%s", account.pk)
    return True


# Sign-in ---------------------------------------------------------------------------


def account_sign_in(
    *, pin: str, member_id: str | None = None, account_id: int | None = None, now: datetime | None = None
) -> Account:
    """The account for a member ID (or, from its home number, its id) if the PIN is right.

    WrongPin when the PIN is wrong or there is no such account, AccountLocked
    while it is locked.
    """
    now = now or timezone.now()
    # The failure count must be committed before the error is raised: raising
    # inside the transaction would roll the count back and undo the lockout.
    with transaction.atomic():
        query = Account.objects.select_for_update()
        account = query.filter(pk=account_id).first() if account_id else query.filter(member_id=member_id or "").first()
        outcome = _check_pin(account, pin=pin, now=now)
        if outcome == "wrong":
            _count_service_failure(now)
    if outcome == "locked":
        raise AccountLocked(until=account.locked_until)
    if outcome == "wrong":
        raise WrongPin
    return account


def account_check_pin(*, account: Account, pin: str, now: datetime | None = None) -> None:
    """Check a signed-in caller's current PIN (to change it), counting a wrong one as at sign-in."""
    account_sign_in(pin=pin, account_id=account.pk, now=now)


def _check_pin(account: Account | None, *, pin: str, now: datetime) -> str:
    if account is None:
        pins.pin_matches(pin, None)  # the same work as a real check: no enumeration by timing
        return "wrong"
    if account.is_locked(now):
        return "locked"

    rehashed = False

    def rehash(new_hash: str) -> None:
        nonlocal rehashed
        account.pin_hash, rehashed = new_hash, True

    if not pins.pin_matches(pin, account.pin_hash, rehash=rehash):
        locked = account.register_failed_pin(now)
        account.save(update_fields=["failed_pin_count", "lock_count", "locked_until"])
        if locked:
            activity.account_locked(now)
            logger.warning(
                "account locked: account=%s lock=%s until=%s", account.pk, account.lock_count, account.locked_until.isoformat()
            )
            return "locked"
        logger.info("sign-in refused: account=%s failures=%s", account.pk, account.failed_pin_count)
        return "wrong"
    # Written only when something changed: most sign-ins cost no write.
    if account.failed_pin_count or account.lock_count or rehashed:
        account.register_right_pin()
        account.save(update_fields=["failed_pin_count", "lock_count", "pin_hash"])
    return "signed in"


@transaction.atomic
def account_change_pin(*, account: Account, pin_hash: str) -> None:
    """Give a signed-in caller's account the PIN hashed at "new PIN" (only the hash crossed requests)."""
    locked = Account.objects.select_for_update().get(pk=account.pk)
    locked.pin_hash = pin_hash
    locked.save(update_fields=["pin_hash"])
    account.pin_hash = pin_hash
    logger.info("caller changed the account secret: account=%s", account.pk)


def account_remember_language(*, account: Account, language: str) -> None:
    """Keep the language a caller chose, for their next call: one write, only when it changed."""
    if account.language != language:
        Account.objects.filter(pk=account.pk).update(language=language)
        account.language = language


def _count_service_failure(now: datetime) -> None:
    """Remember a failed sign-in; above SIGN_IN_SPRAY_PER_MINUTE in a minute, suspend PIN-only entry.

    A spray (one guess each on many accounts from many spoofed numbers) never
    trips a per-account lock. Suspending PIN-only entry makes every caller give
    a member ID as well, and locks nobody out.
    """
    SignInFailure.objects.create(created=now)
    activity.sign_in_failed(now)
    failures = SignInFailure.objects.filter(created__gt=now - SPRAY_WINDOW, created__lte=now).count()
    if failures <= settings.SIGN_IN_SPRAY_PER_MINUTE:
        return
    if SignInSpray.objects.filter(until__gt=now).exists():
        return
    spray = SignInSpray.objects.create(started=now, until=now + SPRAY_SUSPENSION, failures=failures)
    activity.spray_started()
    logger.warning(
        "sign-in spray: failures=%s in the last minute; PIN-only entry suspended until %s", failures, spray.until.isoformat()
    )


def spray_active(*, now: datetime | None = None) -> SignInSpray | None:
    return SignInSpray.objects.filter(until__gt=now or timezone.now()).order_by("-until").first()


def sign_in_failures_forget(*, older_than: timedelta = timedelta(days=1), now: datetime | None = None) -> int:
    """Delete old failure marks: only the last minute matters, a day is kept for operators."""
    deleted, _ = SignInFailure.objects.filter(created__lt=(now or timezone.now()) - older_than).delete()
    return deleted


@transaction.atomic
def account_unlock(*, account: Account) -> bool:
    """Lift a lock and reset its escalation; False when there was nothing to lift."""
    locked = Account.objects.select_for_update().get(pk=account.pk)
    had_anything = locked.is_locked() or locked.failed_pin_count > 0 or locked.lock_count > 0
    locked.unlock()
    locked.save(update_fields=["locked_until", "failed_pin_count", "lock_count"])
    logger.info("account unlocked by operator: account=%s was_locked=%s", locked.pk, had_anything)
    return had_anything


# What operators type --------------------------------------------------------------


class NotAPhoneNumber(AccountsError):
    pass


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
