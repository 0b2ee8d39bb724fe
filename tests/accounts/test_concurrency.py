"""Money under real concurrency: real threads, real transactions, real row locks (PostgreSQL)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, connections
from django.test import Client
from django.utils import timezone

from accounts import errors, identity, ledger, pins, selectors
from accounts.models import Account, LedgerEntry, Recipient, Transfer
from tests.conftest import Phone, postgres_only

pytestmark = [
    postgres_only("real concurrent transactions and the row locks that order them: SQLite has no row locks"),
    pytest.mark.django_db(transaction=True),
]


def all_at_once(work: list[Callable[[], object]]) -> list[object]:
    """Run each callable in its own thread, released together; returns results or exceptions."""
    barrier = threading.Barrier(len(work))
    results: list[object] = [None] * len(work)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work[index]()
        except Exception as error:  # collected and asserted on by the test
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def make_account(phone_number: str, member_id: str, cents: int) -> Account:
    account = Account.objects.create(
        home_number=phone_number,
        member_id=member_id,
        pin_hash=pins.hash_pin("3971"),
        status=Account.Status.ACTIVE,
        verified_at=timezone.now(),
    )
    if cents:
        ledger.deposit(account=account, amount_cents=cents)
    return account


def test_ten_simultaneous_transfers_spend_only_what_is_there():
    assert connection.vendor == "postgresql"
    account = make_account("+12025000001", "100001", 75_00)
    Recipient.objects.create(code="246810", name="Jane Doe")

    def send(number: int) -> Callable[[], object]:
        return lambda: ledger.transfer_submit(
            account=Account.objects.get(pk=account.pk),
            recipient_code="246810",
            amount_cents=25_00,
            idempotency_key=f"race:{number}",
        )

    results = all_at_once([send(n) for n in range(10)])
    receipts = [r for r in results if isinstance(r, ledger.TransferReceipt)]
    refusals = [r for r in results if isinstance(r, errors.InsufficientFunds)]
    assert (len(receipts), len(refusals)) == (3, 7), results
    account.refresh_from_db()
    assert account.balance_cents == 0 == selectors.ledger_balance_cents(account=account)
    assert Transfer.objects.count() == 3


def test_ten_callers_confirming_at_once_on_one_account_through_the_webhooks():
    account = make_account("+12025000001", "100001", 80_00)
    Recipient.objects.create(code="246810", name="Jane Doe")
    phones = []
    for _ in range(10):
        phone = Phone(Client(), caller=account.home_number)
        phone.dial()
        for keys in ["3971", "2", "25", "246810"]:
            phone.press(keys)
        phones.append(phone)

    results = all_at_once([lambda phone=phone: phone.press("1") for phone in phones])
    heard = [r.text for r in results]
    assert sum("is submitted" in text for text in heard) == 3, heard
    assert sum("You do not have enough money. No money was sent." in text for text in heard) == 7
    account.refresh_from_db()
    assert account.balance_cents == 5_00 == selectors.ledger_balance_cents(account=account)


def test_a_retry_racing_its_first_attempt_makes_one_transfer():
    account = make_account("+12025000001", "100001", 100_00)
    Recipient.objects.create(code="246810", name="Jane Doe")
    phone = Phone(Client(), caller=account.home_number)
    phone.dial()
    for keys in ["3971", "2", "25", "246810"]:
        phone.press(keys)
    action = phone.last.gather.get("action")

    results = all_at_once(
        [lambda: Phone(Client(), caller=phone.caller, call_sid=phone.call_sid).post(action, {"Digits": "1"})] * 2
    )
    assert [r.status_code for r in results] == [200, 200]
    assert Transfer.objects.count() == 1
    assert all("confirmation code is" in r.content.decode() for r in results)


def test_two_accounts_paying_one_recipient_at_once_both_succeed():
    first = make_account("+12025000001", "100001", 50_00)
    second = make_account("+12025000002", "100002", 50_00)
    Recipient.objects.create(code="246810", name="Jane Doe")

    results = all_at_once(
        [
            lambda: ledger.transfer_submit(
                account=first, recipient_code="246810", amount_cents=30_00, idempotency_key="a:1"
            ),
            lambda: ledger.transfer_submit(
                account=second, recipient_code="246810", amount_cents=30_00, idempotency_key="b:1"
            ),
        ]
    )
    assert all(isinstance(r, ledger.TransferReceipt) for r in results), results
    for account in (first, second):
        account.refresh_from_db()
        assert account.balance_cents == 20_00


def test_a_failure_between_the_ledger_and_the_balance_leaves_nothing_committed(monkeypatch):
    account = make_account("+12025000001", "100001", 50_00)
    Recipient.objects.create(code="246810", name="Jane Doe")
    real_create = LedgerEntry.objects.create

    def create_then_fail(**kwargs):
        real_create(**kwargs)
        raise RuntimeError("the machine was stopped")

    monkeypatch.setattr(LedgerEntry.objects, "create", create_then_fail)
    with pytest.raises(RuntimeError):
        ledger.transfer_submit(account=account, recipient_code="246810", amount_cents=30_00, idempotency_key="x:1")
    monkeypatch.undo()

    assert not Transfer.objects.exists()
    assert LedgerEntry.objects.filter(kind="transfer").count() == 0
    account.refresh_from_db()
    assert account.balance_cents == 50_00


def sign_in(member_id: str, pin: str, trusted_number: str = "") -> Account:
    attempt = identity.pin_attempt_count(member_id=member_id, trusted_number=trusted_number)
    return identity.account_sign_in(pin=pin, attempt=attempt)


def test_concurrent_wrong_pins_are_all_counted():
    account = make_account("+12025000001", "100001", 0)
    results = all_at_once([lambda: sign_in(account.member_id, "1357")] * 4)
    assert all(isinstance(r, errors.WrongPin) for r in results)
    account.refresh_from_db()
    assert account.failed_pin_count == 4


def _postgres_log() -> Path | None:
    """The local server's log, where Debian keeps it, if this user may read it."""
    logs = sorted(Path("/var/log/postgresql").glob("postgresql-*-main.log"))
    return logs[-1] if logs and os.access(logs[-1], os.R_OK) else None


def test_two_callers_registering_one_member_id_at_once_make_one_account():
    log = _postgres_log()
    log_start = log.stat().st_size if log else 0
    first, second = pins.hash_pin("4682"), pins.hash_pin("4682")
    results = all_at_once(
        [
            lambda: identity.account_register(home_number="+12025000001", member_id="100001", pin_hash=first),
            lambda: identity.account_register(home_number="+12025000002", member_id="100001", pin_hash=second),
        ]
    )
    assert Account.objects.count() == 1
    assert sum(isinstance(r, errors.MemberIdTaken) for r in results) == 1, results
    assert not any(isinstance(r, IntegrityError) for r in results)
    if log:
        with log.open(errors="replace") as server_log:
            server_log.seek(log_start)
            written = server_log.read()
        for value in ("100001", "+12025000001", "+12025000002", "argon2id"):
            assert value not in written, f"PostgreSQL logged {value}: {written[-2000:]}"


def test_two_callers_registering_one_home_number_at_once_make_two_accounts_one_with_the_number():
    first, second = pins.hash_pin("4682"), pins.hash_pin("4682")
    results = all_at_once(
        [
            lambda: identity.account_register(home_number="+12025000001", member_id="100001", pin_hash=first),
            lambda: identity.account_register(home_number="+12025000001", member_id="100002", pin_hash=second),
        ]
    )
    assert all(isinstance(r, tuple) for r in results), results
    assert sorted(Account.objects.values_list("home_number", flat=True), key=str) == ["+12025000001", None]


def test_ten_calls_at_once_on_one_account_send_only_the_daily_room(settings):
    """A large balance, a daily room of three transfers: exactly three are submitted, through the webhooks."""
    settings.DAILY_TRANSFER_LIMIT_DOLLARS = 75
    account = make_account("+12025000001", "100001", 10_000_00)
    Recipient.objects.create(code="246810", name="Jane Doe")
    phones = []
    for _ in range(10):
        phone = Phone(Client(), caller=account.home_number)
        phone.dial()
        for keys in ["3971", "2", "25#", "246810"]:
            phone.press(keys)
        phones.append(phone)

    results = all_at_once([lambda phone=phone: phone.press("1") for phone in phones])
    heard = [r.text for r in results]
    assert sum("is submitted" in text for text in heard) == 3, heard
    assert sum("more than you can still send today" in text for text in heard) == 7
    assert Transfer.objects.filter(status="submitted").count() == 3
    account.refresh_from_db()
    assert account.balance_cents == 10_000_00 - 75_00 == selectors.ledger_balance_cents(account=account)


def test_twilios_first_webhook_twice_at_once_makes_one_call_and_no_unique_violation():
    log = _postgres_log()
    log_start = log.stat().st_size if log else 0
    phone = Phone(Client(), caller="+12025000001")
    results = all_at_once(
        [lambda: Phone(Client(), caller=phone.caller, call_sid=phone.call_sid).post("/twilio/voice")] * 4
    )
    assert [r.status_code for r in results] == [200] * 4
    assert all("temporarily unavailable" not in r.content.decode() for r in results)
    from ivr.models import CallSession

    assert CallSession.objects.filter(call_sid=phone.call_sid).count() == 1
    if log:
        with log.open(errors="replace") as server_log:
            server_log.seek(log_start)
            assert "duplicate key" not in server_log.read()
