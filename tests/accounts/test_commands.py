from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.errors import DepositTooLarge
from accounts.ledger import deposit
from accounts.models import Account, LedgerEntry, Recipient, SharedLine

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("amount, cents", [("100", 10000), ("12.50", 1250), ("12.5", 1250), ("$7", 700), ("0.01", 1)])
def test_deposit_credits_dollars(account, capsys, amount, cents):
    call_command("deposit", account.home_number, amount)
    account.refresh_from_db()
    assert account.balance_cents == 10000 + cents
    assert LedgerEntry.objects.filter(kind="deposit").count() == 2
    assert "balance now" in capsys.readouterr().out


@pytest.mark.parametrize(
    "amount, message",
    [
        ("0", "more than 0"),
        ("0.00", "more than 0"),
        ("-5", "must be more than 0, not -5"),
        ("-5.50", "must be more than 0"),
        ("12.505", "not an amount"),
        ("ten", "not an amount"),
        ("1e3", "not an amount"),
        ("", "not an amount"),
        ("١٠٠", "not an amount"),
        ("12,50", "not an amount"),
        ("1,0000", "not an amount"),
        ("1" * 101, "not an amount"),
    ],
)
def test_deposit_refuses_bad_amounts(account, amount, message):
    with pytest.raises(CommandError, match=message):
        call_command("deposit", account.home_number, amount)
    assert LedgerEntry.objects.count() == 1


@pytest.mark.parametrize("confirm", [[], ["--confirm"]])
@pytest.mark.parametrize(
    ("amount", "shown"), [("9999999999", "$9,999,999,999.00"), ("10000.01", "$10,000.01"), ("1" * 100, "$1,111,")]
)
def test_deposit_refuses_more_than_the_most_a_deposit_may_be_even_confirmed(account, amount, shown, confirm):
    with pytest.raises(CommandError) as refusal:
        call_command("deposit", account.member_id, amount, *confirm)
    assert str(refusal.value).startswith(shown)
    assert str(refusal.value).endswith(
        " is more than the most a deposit may be, $10,000.00 (DEPOSIT_MAX_DOLLARS): check the amount. "
        "Nothing was deposited."
    )
    assert "not an amount" not in str(refusal.value)
    assert LedgerEntry.objects.count() == 1


@pytest.mark.parametrize("amount", ["10000", "$10,000", "10,000.00"])
def test_deposit_takes_the_most_a_deposit_may_be_with_confirm(account, capsys, amount):
    call_command("deposit", account.member_id, amount, "--confirm")
    assert "Deposited $10,000.00 to Account 123456" in capsys.readouterr().out


def test_the_most_a_deposit_may_be_is_a_setting_and_the_service_holds_it_too(account, settings):
    settings.DEPOSIT_MAX_DOLLARS = 50
    with pytest.raises(CommandError, match=r"^\$50.01 is more than the most a deposit may be, \$50.00 "):
        call_command("deposit", account.member_id, "50.01")
    with pytest.raises(DepositTooLarge):
        deposit(account=account, amount_cents=50_01)
    assert LedgerEntry.objects.count() == 1
    deposit(account=account, amount_cents=50_00)


@pytest.mark.parametrize(
    "reference", ["123456", "+12026230001", "202-623-0001", "(202) 623-0001", "2026230001", " 123456 "]
)
def test_deposit_names_the_account_by_member_id_or_home_number_in_any_form(account, capsys, reference):
    call_command("deposit", reference, "10")
    account.refresh_from_db()
    assert account.balance_cents == 11000
    assert "Account 123456" in capsys.readouterr().out


def test_deposit_refuses_an_unknown_account(db):
    with pytest.raises(CommandError, match="no account has the member ID or home number"):
        call_command("deposit", "+12025009999", "10")
    with pytest.raises(CommandError, match="no account has the member ID or home number 654321"):
        call_command("deposit", "654321", "10")


@pytest.mark.parametrize("reference", ["12", "1234567", "abc", "+1555abc0001", "555-1234"])
def test_deposit_says_when_a_name_is_not_a_phone_number(account, reference):
    with pytest.raises(CommandError, match=r"not a 6-digit member ID, nor a phone number in E\.164 or national form"):
        call_command("deposit", reference, "10")
    assert LedgerEntry.objects.count() == 1


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
    with pytest.raises(CommandError, match=r"1 to 60 characters.*this one has 61"):
        call_command("create_recipient", "246810", "x" * 61)
    assert not Recipient.objects.exists()


def test_unlock(account, capsys):
    Account.objects.filter(pk=account.pk).update(
        locked_until=timezone.now() + timedelta(hours=1), failed_pin_count=4, lock_count=3
    )
    call_command("unlock", "(202) 623-0001")
    account.refresh_from_db()
    assert not account.is_locked()
    assert (account.failed_pin_count, account.lock_count) == (0, 0)
    assert "Unlocked" in capsys.readouterr().out


def test_unlock_says_when_there_was_nothing_to_unlock(account, capsys):
    call_command("unlock", account.member_id)
    assert "nothing to unlock" in capsys.readouterr().out


def test_unlock_refuses_an_unknown_phone(db):
    with pytest.raises(CommandError, match="no account"):
        call_command("unlock", "+12025009999")


def test_add_and_remove_a_shared_line(account, capsys):
    call_command("add_shared_line", "202-623-0001", "Unit", "B", "payphone")
    line = SharedLine.objects.get()
    assert (line.phone_number, line.name) == ("+12026230001", "Unit B payphone")
    out = capsys.readouterr().out
    assert "shared line" in out and "home number of Account 123456" in out
    with pytest.raises(CommandError, match="already a shared line"):
        call_command("add_shared_line", "+12026230001")
    call_command("remove_shared_line", "(202) 623-0001")
    assert not SharedLine.objects.exists()
    with pytest.raises(CommandError, match="is not a shared line"):
        call_command("remove_shared_line", "+12026230001")


@pytest.mark.parametrize("command", ["add_shared_line", "remove_shared_line"])
def test_shared_line_commands_refuse_what_is_not_a_phone_number(db, command):
    with pytest.raises(CommandError, match=r"not a phone number in E\.164 or national form"):
        call_command(command, "12")


def test_reject_registration_frees_the_member_id_and_number(db, capsys):
    Account.objects.create(member_id="654321", home_number="+12027770000", pin_hash="x")
    call_command("reject_registration", "654321")
    assert not Account.objects.exists()
    assert "+12027770000" in capsys.readouterr().out


@pytest.mark.parametrize(
    "member_id, message", [("12345", "exactly 6 digits"), ("999999", "no account"), ("123456", "verified")]
)
def test_reject_registration_refusals(account, member_id, message):
    with pytest.raises(CommandError, match=message):
        call_command("reject_registration", member_id)
    assert Account.objects.filter(pk=account.pk).exists()


def test_reject_registration_keeps_a_pending_account_with_money(db):
    pending = Account.objects.create(member_id="654321", pin_hash="x")
    deposit(account=pending, amount_cents=500)
    with pytest.raises(CommandError, match="has money or history"):
        call_command("reject_registration", "654321")


def test_each_operator_command_prints_its_summary_and_nothing_else(tmp_path):
    """On a terminal, as operators run them (DEBUG off): one line on stdout, not a log line besides."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))},
        "DEBUG": "false",
        "SECRET_KEY": "commands-" + "k" * 40,
        "TWILIO_AUTH_TOKEN": "commands-token",
        "BASE_URL": "https://myibot.example",
        "PIN_PEPPER": "commands-pepper",
        "DATABASE_URL": f"sqlite:///{tmp_path}/commands.sqlite3",
    }
    env.pop("LOG_LEVEL", None)

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    manage("migrate", "--noinput")
    for member_id, caller in (("123456", "+12026230001"), ("654321", "+12026230002")):
        registered = manage("call", "--from", caller, "--keys", f"#,1,{member_id},3971,3971,2")
        assert registered.returncode == 0, registered.stderr
    for command, summary in [
        (["deposit", "123456", "10"], "Deposited $10.00 to Account 123456 as ledger entry 1;"),
        (["reverse_deposit", "1"], "Reversed the deposit of $10.00 in ledger entry 1 with entry 2;"),
        (["reject_registration", "654321"], "Rejected the registration of 654321:"),
        (["unlock", "123456"], "Account 123456"),
        (["create_recipient", "246810", "Jane", "Doe"], "Created recipient Jane Doe (246810);"),
        (["add_shared_line", "202-444-0000", "Unit B"], "Unit B (+12024440000) is a shared line:"),
        (["remove_shared_line", "202-444-0000"], "+12024440000 is no longer a shared line."),
        (["purge_call_sessions"], "Deleted the state of "),
    ]:
        result = manage(*command)
        assert (result.returncode, result.stderr) == (0, ""), command
        assert len(result.stdout.splitlines()) == 1 and result.stdout.startswith(summary), result.stdout
