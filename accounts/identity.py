"""Who a caller is: registering, signing in, verifying, locking, and noticing a spray.

The member ID is the identity. A caller's number is only a convenience: a
call from an account's home number, with a caller ID we have no reason to
doubt, may sign in with the PIN alone. Every function here is keyword-only and
atomic; the ones that count wrong PINs lock the account row first, so that
concurrent guesses on one account are all counted.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts import activity, pins
from accounts.confirmations import confirmation_code_issue
from accounts.errors import (
    AccountLocked,
    HoldsMoney,
    MemberIdTaken,
    NotPending,
    RegistrationLimitReached,
    UnknownAccount,
    UnknownLanguage,
    WrongPin,
)
from accounts.models import (
    ROUTE_FIELDS,
    Account,
    ConfirmationCode,
    LedgerEntry,
    Registration,
    SharedLine,
    SignInFailure,
    SignInRoute,
    SignInSpray,
)
from accounts.selectors import (
    is_shared_line,
    registration_line,
    registration_refusal,
)
from myibot import languages
from myibot.db import insert_unless_conflict

logger = logging.getLogger(__name__)

# How long PIN-only entry stays off after a spray of failed sign-ins.
SPRAY_SUSPENSION = timedelta(minutes=15)
SPRAY_WINDOW = timedelta(minutes=1)
MEMBER_ID = re.compile(r"[0-9]{6}", re.ASCII)


# Entry ---------------------------------------------------------------------------


# Registration ------------------------------------------------------------------


@transaction.atomic
def account_register(
    *,
    member_id: str,
    pin_hash: str,
    home_number: str | None = None,
    line: str = "",
    language: str = "en",
    now: datetime | None = None,
) -> tuple[Account, str]:
    """Create a pending account from a PIN hashed at the "create a PIN" step; returns it and its code.

    home_number is the caller's number when it is trusted and personal; the
    account gets it only if no other account has it. line is the caller's
    number ("" when withheld), counted by the registration limits
    (RegistrationLimitReached, and nothing written, above them). language is a code of
    the registry (UnknownLanguage otherwise). Both rules are kept with
    INSERT ... ON CONFLICT DO NOTHING rather than by catching a unique
    violation, which PostgreSQL would log with the member ID and number in it.
    """
    if not languages.is_registered(language):
        raise UnknownLanguage
    now = now or timezone.now()
    # The limits are counted and kept under one lock: two calls at once cannot both take the last place.
    _lock_registrations()
    if registration_refusal(phone_number=line, now=now):
        raise RegistrationLimitReached
    if home_number and (is_shared_line(home_number) or Account.objects.filter(home_number=home_number).exists()):
        home_number = None
    new = {"member_id": member_id, "pin_hash": pin_hash, "language": language, "created": now}
    account = _insert_account(Account(home_number=home_number, **new))
    if account is None and home_number:
        # Another call took the number (or the member ID) a moment ago.
        account = _insert_account(Account(home_number=None, **new))
    if account is None:
        raise MemberIdTaken
    Registration.objects.create(created=now, line=registration_line(line))
    code = confirmation_code_issue(account=account, purpose=ConfirmationCode.Purpose.REGISTRATION, now=now)
    logger.info("account registered: account=%s home_number=%s", account.pk, "yes" if account.home_number else "no")
    return account, code


def _lock_registrations() -> None:
    """Serialise registrations (PostgreSQL: a transaction-scoped advisory lock; SQLite writes one at a time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REGISTRATION_LOCK])


# The advisory lock's key: any number no other lock of ours uses ("MyiBot registration" as digits).
REGISTRATION_LOCK = 6942_0001


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
    # Its number, before deleting the row takes it away. INFO: an operator's act, which their command summarises.
    removed = account.pk
    _remove(account)
    logger.info("registration rejected by operator: account=%s", removed)
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


@dataclass(frozen=True)
class PinAttempt:
    """A PIN attempt, counted before the PIN is checked (pin_attempt_count)."""

    account_id: int | None  # None: no such account (the check runs on a dummy hash all the same)
    route: str
    locked_until: datetime | None = None  # the route was locked: the PIN is not checked
    # The hash to check against, read with the count: no second read before Argon2. Never shown.
    pin_hash: str | None = field(default=None, repr=False)


def pin_attempt_count(
    *,
    member_id: str | None = None,
    account_id: int | None = None,
    trusted_number: str = "",
    now: datetime | None = None,
) -> PinAttempt:
    """Count a PIN attempt on its account and route, in a transaction of its own that commits before any check.

    Call it outside any transaction (the machine does, before the step's own):
    a count inside another transaction would be undone with it, and a guess
    made while the row was busy would be free. If the count cannot be written
    (a lock held too long), the database error goes up and no PIN is checked.
    trusted_number is the caller's number when its caller ID is trusted, else "".
    """
    now = now or timezone.now()
    with transaction.atomic():
        # Whether its home number was made a shared line since, in the same round trip.
        query = Account.objects.select_for_update(of=("self",)).annotate(
            shared=Exists(SharedLine.objects.filter(phone_number=OuterRef("home_number")))
        )
        account = query.filter(pk=account_id).first() if account_id else query.filter(member_id=member_id or "").first()
        if account is None:
            return PinAttempt(account_id=None, route=SignInRoute.ELSEWHERE)
        # The owner's home route: their home number, with a trusted caller ID, not a shared line.
        at_home = bool(trusted_number) and account.home_number == trusted_number and not account.shared
        route = SignInRoute.HOME if at_home else SignInRoute.ELSEWHERE
        if account.is_locked(now, route):
            return PinAttempt(account_id=account.pk, route=route, locked_until=account.locked_until_on(route))
        if account.register_failed_pin(route, now):
            # Five attempts counted and never taken back by a right PIN: locked now, even if the
            # checks that found them wrong could not write their outcome (a busy table, a timeout).
            account.save(update_fields=list(ROUTE_FIELDS[route]))
            _locked(account, route, now)
            return PinAttempt(account_id=account.pk, route=route, locked_until=account.locked_until_on(route))
        account.count_pin_attempt(route)
        account.save(update_fields=[ROUTE_FIELDS[route][0]])
    return PinAttempt(account_id=account.pk, route=route, pin_hash=account.pin_hash)


def account_sign_in(*, pin: str, attempt: PinAttempt, now: datetime | None = None) -> Account:
    """The account of a counted attempt if its PIN is right; the attempt is taken back then.

    WrongPin when the PIN is wrong or there is no such account, AccountLocked
    while the attempt's route is locked (then the PIN is not checked at all).
    """
    now = now or timezone.now()
    if attempt.locked_until is not None:
        raise AccountLocked(until=attempt.locked_until)
    account = _check_pin(attempt, pin=pin, now=now)
    if isinstance(account, datetime):
        raise AccountLocked(until=account)
    if account is None:
        raise WrongPin
    return account


def account_check_pin(*, account: Account, pin: str, attempt: PinAttempt, now: datetime | None = None) -> None:
    """Check a signed-in caller's current PIN (to change it), counted and locked as at sign-in."""
    if attempt.account_id != account.pk:
        raise WrongPin
    account_sign_in(pin=pin, attempt=attempt, now=now)


def _check_pin(attempt: PinAttempt, *, pin: str, now: datetime) -> Account | datetime | None:
    """Argon2, then the attempt's outcome written: taken back when right, the route locked at the fifth wrong.

    The account when the PIN is right, when its route is now locked until when wrong at the fifth, else None.
    """
    if attempt.account_id is None:
        pins.pin_matches(pin, None)  # the same work as a real check: no enumeration by timing
        with transaction.atomic():
            _count_service_failure(now)
        return None
    new_hash: list[str] = []
    right = pins.pin_matches(pin, attempt.pin_hash, rehash=new_hash.append)
    route = attempt.route
    count_field, until_field, locks_field = ROUTE_FIELDS[route]
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=attempt.account_id)
        if right:
            account.register_right_pin(route)
            # Stored hashes are upgraded on the next right PIN, as Django's own hashers do.
            account.pin_hash = new_hash[0] if new_hash else account.pin_hash
            account.save(update_fields=[count_field, locks_field, *(["pin_hash"] if new_hash else [])])
            return account
        locks = account.register_failed_pin(route, now)
        account.save(update_fields=[count_field, until_field, locks_field])
        _count_service_failure(now)
    if locks:
        _locked(account, route, now)
        return getattr(account, until_field)
    logger.info("sign-in refused: account=%s route=%s failures=%s", account.pk, route, getattr(account, count_field))
    return None


def _locked(account: Account, route: str, now: datetime) -> None:
    _until, until_field, locks_field = ROUTE_FIELDS[route]
    activity.account_locked(now)
    logger.warning(
        "account locked: account=%s route=%s lock=%s until=%s",
        account.pk,
        route,
        getattr(account, locks_field),
        getattr(account, until_field).isoformat(),
    )


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
    if not languages.is_registered(language):
        raise UnknownLanguage
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
        "sign-in spray: failures=%s in the last minute; PIN-only entry suspended until %s",
        failures,
        spray.until.isoformat(),
    )


def sign_in_failures_forget(*, older_than: timedelta = timedelta(days=1), now: datetime | None = None) -> int:
    """Delete old failure marks: only the last minute matters, a day is kept for operators."""
    deleted, _ = SignInFailure.objects.filter(created__lt=(now or timezone.now()) - older_than).delete()
    return deleted


@transaction.atomic
def account_unlock(*, account: Account) -> bool:
    """Lift a lock and reset its escalation; False when there was nothing to lift."""
    locked = Account.objects.select_for_update().get(pk=account.pk)
    fields = [field for route_fields in ROUTE_FIELDS.values() for field in route_fields]
    had_anything = locked.is_locked() or any(getattr(locked, field) for field in fields)
    locked.unlock()
    locked.save(update_fields=fields)
    logger.info("account unlocked by operator: account=%s was_locked=%s", locked.pk, had_anything)
    return had_anything
