"""Locks by route, and every PIN attempt counted before it is checked (docs/CALL_FLOW.md).

A caller who knows only a member's number or member ID must not be able to lock the owner out
at home; and no guess is free because a table was busy.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts import errors, identity, pins
from accounts.models import Account, SignInFailure
from ivr.models import CallSession
from tests.conftest import Phone, postgres_only, second_connection

HOME = "+12026230001"
ELSEWHERE = ["+12025009999", "+12024440000", "+12027770000", "+12028880000", "+12029990000", "+12025001234"]


@pytest.fixture
def owner(db) -> Account:
    return Account.objects.create(
        home_number=HOME,
        member_id="123456",
        pin_hash=pins.hash_pin("3971"),
        status=Account.Status.ACTIVE,
        verified_at=timezone.now(),
    )


def guess_from_elsewhere(number: str, member_id: str, pin: str = "1357", client: Client | None = None) -> str:
    phone = Phone(client or Client(), caller=number)
    phone.dial()
    phone.press(member_id)
    return phone.press(pin).text


def sign_in_at_home(pin: str = "3971", client: Client | None = None) -> str:
    phone = Phone(client or Client(), caller=HOME)
    phone.dial()
    return phone.press(pin).text


@pytest.mark.django_db
def test_a_lock_earned_elsewhere_never_stops_the_owner_at_home(owner):
    for number in ELSEWHERE[:5]:
        heard = guess_from_elsewhere(number, owner.member_id)
    assert "This account is locked for 15 minutes." in heard
    owner.refresh_from_db()
    assert owner.is_locked(route="elsewhere") and not owner.is_locked(route="home")

    assert "Main menu" in sign_in_at_home()
    owner.refresh_from_db()
    assert owner.is_locked(route="elsewhere"), "a right PIN at home resets only its own route"
    assert (owner.home_failed_pin_count, owner.lock_count) == (0, 1)


@pytest.mark.django_db
def test_a_lock_earned_at_home_never_stops_the_owner_elsewhere(owner):
    for _ in range(2):
        phone = Phone(Client(), caller=HOME)
        phone.dial()
        for _ in range(3):
            if "locked" in phone.last.text or phone.last.hangs_up:
                break
            phone.press("1357")
    owner.refresh_from_db()
    assert owner.is_locked(route="home") and not owner.is_locked(route="elsewhere")
    assert "locked" in sign_in_at_home()
    assert "Main menu" in guess_from_elsewhere(ELSEWHERE[0], owner.member_id, "3971")


@pytest.mark.django_db
def test_an_untrusted_caller_id_on_the_home_number_counts_as_elsewhere(owner):
    for _ in range(5):
        phone = Phone(Client(), caller=HOME, stir="TN-Validation-Passed-C")
        phone.dial()
        phone.press(owner.member_id)
        phone.press("1357")
    owner.refresh_from_db()
    assert owner.is_locked(route="elsewhere") and not owner.is_locked(route="home")
    assert "Main menu" in sign_in_at_home()


@pytest.mark.django_db
def test_unlock_lifts_both_routes_and_their_escalation(owner):
    Account.objects.filter(pk=owner.pk).update(
        locked_until=timezone.now() + timedelta(hours=2),
        lock_count=4,
        failed_pin_count=2,
        home_locked_until=timezone.now() + timedelta(minutes=30),
        home_lock_count=2,
        home_failed_pin_count=1,
    )
    call_command("unlock", owner.member_id)
    owner.refresh_from_db()
    assert not owner.is_locked()
    assert (owner.failed_pin_count, owner.lock_count, owner.home_failed_pin_count, owner.home_lock_count) == (
        0,
        0,
        0,
        0,
    )


@pytest.mark.django_db
def test_an_attempt_is_counted_before_the_pin_is_checked(owner, monkeypatch):
    """The count is written first: an Argon2 check that never finishes leaves the guess counted."""

    def never_finishes(*args, **kwargs):
        raise RuntimeError("the worker died while checking")

    monkeypatch.setattr(pins, "pin_matches", never_finishes)
    with pytest.raises(RuntimeError):
        identity.account_sign_in(pin="1357", attempt=identity.pin_attempt_count(member_id=owner.member_id))
    owner.refresh_from_db()
    assert owner.failed_pin_count == 1


@pytest.mark.django_db
def test_a_right_pin_takes_its_counted_attempt_back(owner):
    identity.account_sign_in(pin="3971", attempt=identity.pin_attempt_count(member_id=owner.member_id))
    owner.refresh_from_db()
    assert owner.failed_pin_count == 0


@pytest.mark.django_db
def test_a_locked_route_checks_no_pin_at_all(owner, monkeypatch):
    Account.objects.filter(pk=owner.pk).update(locked_until=timezone.now() + timedelta(minutes=15))
    checked = []
    monkeypatch.setattr(pins, "pin_matches", lambda *args, **kwargs: checked.append(1) or True)
    with pytest.raises(errors.AccountLocked):
        identity.account_sign_in(pin="3971", attempt=identity.pin_attempt_count(member_id=owner.member_id))
    assert not checked


# PostgreSQL: real row locks, real lock timeouts -----------------------------------------------


@postgres_only("real concurrent transactions and the row locks that order them: SQLite has no row locks")
@pytest.mark.django_db(transaction=True)
def test_relocking_from_other_lines_while_the_owner_signs_in_at_home(owner):
    """Attackers relock the account from other lines, in threads, while the owner keeps signing in at home."""
    from django.db import connections

    stop = threading.Event()
    heard_at_home: list[str] = []

    def attacker(number: str) -> None:
        try:
            while not stop.is_set():
                guess_from_elsewhere(number, owner.member_id)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attacker, args=(number,)) for number in ELSEWHERE[:3]]
    for thread in threads:
        thread.start()
    try:
        for _ in range(6):
            heard_at_home.append(sign_in_at_home())
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert all("Main menu" in heard for heard in heard_at_home), heard_at_home
    owner.refresh_from_db()
    assert owner.is_locked(route="elsewhere")
    assert owner.home_failed_pin_count == 0 and not owner.is_locked(route="home")


def _held(sql: str):
    """A second connection holding a lock in an open transaction, until the with block ends."""

    class Held:
        def __enter__(self):
            self.other = second_connection()
            self.other.autocommit = False
            self.other.execute(sql)
            return self

        def __exit__(self, *exc):
            self.other.rollback()
            self.other.close()

    return Held()


@postgres_only("a table held by another connection (LOCK TABLE) and lock timeouts")
@pytest.mark.django_db(transaction=True)
def test_no_guess_is_free_while_the_failure_table_is_held(owner, settings):
    """Six wrong PINs while another connection holds the service-wide failure table: each is counted
    on the account before it is checked, the checks answer the apology, the sixth finds the account
    locked by the five before it, and the right PIN is then refused too."""
    with _held(f"LOCK TABLE {SignInFailure._meta.db_table} IN ACCESS EXCLUSIVE MODE"):
        heard = [guess_from_elsewhere(number, owner.member_id) for number in ELSEWHERE]
    assert all("temporarily unavailable" in said for said in heard[:5]), heard
    assert "This account is locked for 15 minutes." in heard[5]
    owner.refresh_from_db()
    assert (owner.lock_count, owner.failed_pin_count) == (1, 0), "five counted, then locked"
    heard = guess_from_elsewhere(ELSEWHERE[0], owner.member_id, "3971")
    assert "Main menu" not in heard and "locked" in heard


@postgres_only("an account row held by another connection (FOR UPDATE) and lock timeouts")
@pytest.mark.django_db(transaction=True)
def test_no_pin_is_checked_while_the_account_row_is_held(owner, monkeypatch):
    """The account row held by another connection: the count cannot be written, so the PIN is never
    checked (not even the right one), and the caller hears the apology."""
    checked = []
    real = pins.pin_matches
    monkeypatch.setattr(pins, "pin_matches", lambda *args, **kwargs: checked.append(1) or real(*args, **kwargs))
    with _held(f"SELECT 1 FROM {Account._meta.db_table} WHERE id = {owner.pk} FOR UPDATE"):
        heard = guess_from_elsewhere(ELSEWHERE[0], owner.member_id, "3971")
    assert "temporarily unavailable" in heard and "Main menu" not in heard
    assert not checked, "no Argon2 without a committed count"
    assert not CallSession.objects.filter(account__isnull=False).exists(), "nobody signed in"
