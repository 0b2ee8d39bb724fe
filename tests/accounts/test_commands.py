from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import Account, LedgerEntry, Recipient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("amount, cents", [("100", 10000), ("12.50", 1250), ("12.5", 1250), ("$7", 700), ("0.01", 1)])
def test_deposit_credits_dollars(account, capsys, amount, cents):
    call_command("deposit", account.phone_number, amount)
    account.refresh_from_db()
    assert account.balance_cents == 10000 + cents
    assert LedgerEntry.objects.filter(kind="deposit").count() == 2
    assert "balance now" in capsys.readouterr().out


@pytest.mark.parametrize("amount, message", [
    ("0", "more than 0"), ("0.00", "more than 0"), ("-5", "not an amount"), ("12.505", "not an amount"),
    ("ten", "not an amount"), ("1e3", "not an amount"), ("", "not an amount"), ("١٠٠", "not an amount"),
])
def test_deposit_refuses_bad_amounts(account, amount, message):
    with pytest.raises(CommandError, match=message):
        call_command("deposit", account.phone_number, amount)
    assert LedgerEntry.objects.count() == 1


def test_deposit_refuses_an_unknown_phone(db):
    with pytest.raises(CommandError, match="no account has the phone number"):
        call_command("deposit", "+15550009999", "10")


def test_create_recipient(db, capsys):
    call_command("create_recipient", "246810", "Jane", "Doe")
    recipient = Recipient.objects.get()
    assert (recipient.code, recipient.name, recipient.active) == ("246810", "Jane Doe", True)
    assert "2, 4, 6, 8, 1, 0" in capsys.readouterr().out


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "١٢٣٤٥٦"])
def test_create_recipient_refuses_bad_codes(db, code):
    with pytest.raises(CommandError, match="exactly 6 digits"):
        call_command("create_recipient", code, "Jane")


def test_create_recipient_refuses_a_taken_code(recipient):
    with pytest.raises(CommandError, match="already belongs to Jane Doe"):
        call_command("create_recipient", recipient.code, "Someone Else")


def test_create_recipient_refuses_an_overlong_name(db):
    with pytest.raises(CommandError, match="1 to 100 characters"):
        call_command("create_recipient", "246810", "x" * 101)


def test_unlock(account, capsys):
    Account.objects.filter(pk=account.pk).update(locked_until=timezone.now() + timedelta(hours=1), failed_pin_count=4)
    call_command("unlock", account.phone_number)
    account.refresh_from_db()
    assert not account.is_locked()
    assert account.failed_pin_count == 0
    assert "Unlocked" in capsys.readouterr().out


def test_unlock_refuses_an_unknown_phone(db):
    with pytest.raises(CommandError, match="no account"):
        call_command("unlock", "+15550009999")
