"""Self-service by phone (docs/CALL_FLOW.md): recent transactions, change PIN, the daily limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone, translation

from accounts import ledger, pins, selectors
from accounts.models import Account, LedgerEntry, Transfer
from ivr.models import CallSession
from ivr.steps.menu import describe_entry
from tests.conftest import Phone

pytestmark = pytest.mark.django_db


def history(signed_in) -> str:
    return signed_in.press("4").text


def test_the_menu_offers_each_option_in_one_short_sentence(signed_in):
    says = ["".join(say.itertext()) for say in signed_in.last.gather.iter("Say")]
    assert says[-7:] == [
        "Main menu.",
        "For your balance, press 1.",
        "To send money, press 2.",
        "For your recent transactions, press 4.",
        "To change your PIN, press 5.",
        "To hear these options again, press 3.",
        "Para español, oprima 9.",
    ]


# Recent transactions ---------------------------------------------------------------


def test_no_transactions_yet(client, account):
    fresh = Account.objects.create(
        member_id="654321", pin_hash=pins.hash_pin("4682"), status="active", verified_at=timezone.now()
    )
    other = Phone(client, caller="+12025009999")
    other.dial()
    other.press(fresh.member_id)
    other.press("4682")
    answer = other.press("4")
    assert "You have no transactions yet." in answer.text
    assert "To hear them again, press 1. For the main menu, press 2." in answer.text


def test_one_entry(signed_in, account):
    assert "100 dollars was added to your account." in history(signed_in)


@pytest.mark.parametrize("count", [5, 20])
def test_only_the_last_five_newest_first(signed_in, account, count, django_assert_max_num_queries):
    LedgerEntry.objects.all().delete()
    Account.objects.filter(pk=account.pk).update(balance_cents=0)
    for n in range(count):
        ledger.deposit(account=account, amount_cents=(n + 1) * 100, now=timezone.now() - timedelta(hours=count - n))
    # Two savepoints; the call, locked; the last five entries with their
    # transfers and recipients, one query however long the history; the call.
    with django_assert_max_num_queries(5):
        heard = history(signed_in)
    amounts = [f", {n} dollar" for n in range(count, count - 5, -1)]
    positions = [heard.index(amount) for amount in amounts]
    assert positions == sorted(positions), "newest first"
    assert heard.count("was added to your account") == 5
    assert f", {count - 5} dollar" not in heard


def test_each_kind_of_entry_is_worded_right(account, recipient):
    today = timezone.localdate()  # the service's date (TIME_ZONE), which the caller hears
    deposit = LedgerEntry.objects.get(kind="deposit")
    date = f"{today:%B} {today.day}" + ("st" if today.day == 1 else "")
    assert describe_entry(deposit) == f"On {date}, 100 dollars was added to your account."

    submitted = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="k1"
    ).transfer
    entry = LedgerEntry.objects.get(transfer=submitted, kind="transfer")
    assert describe_entry(entry) == f"On {date}, you sent 25 dollars to Jane Doe. It is submitted."
    ledger.transfer_settle(transfer=submitted)
    entry = LedgerEntry.objects.select_related("transfer__recipient").get(pk=entry.pk)
    assert describe_entry(entry).endswith("It was paid out.")

    rejected = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=1000, idempotency_key="k2"
    ).transfer
    ledger.transfer_reject(transfer=rejected)
    sent = LedgerEntry.objects.select_related("transfer__recipient").get(transfer=rejected, kind="transfer")
    assert (
        describe_entry(sent) == f"On {date}, you sent 10 dollars to Jane Doe. It was rejected, and the money came back."
    )
    back = LedgerEntry.objects.select_related("transfer__recipient").get(transfer=rejected, kind="reversal")
    assert (
        describe_entry(back) == f"On {date}, 10 dollars came back to you because a transfer to Jane Doe was rejected."
    )

    extra = ledger.deposit(account=account, amount_cents=5050)
    correction = ledger.deposit_reverse(entry=extra)
    assert describe_entry(correction) == f"On {date}, a deposit was corrected: 50 dollars and 50 cents was taken back."


def test_entries_are_worded_in_spanish_with_spanish_dates(account, recipient):
    entry = LedgerEntry.objects.get(kind="deposit")
    # Midday on the service's clock, so the date is the same in every zone.
    LedgerEntry.objects.filter(pk=entry.pk).update(created=timezone.localtime().replace(month=11, day=24, hour=12))
    entry.refresh_from_db()
    with translation.override("es"):
        assert describe_entry(entry) == "El 24 de noviembre, recibió un depósito de 100 dólares."
    old = timezone.localtime().replace(year=timezone.localdate().year - 1, month=3, day=2, hour=12)
    LedgerEntry.objects.filter(pk=entry.pk).update(created=old)
    entry.refresh_from_db()
    with translation.override("es"):
        assert describe_entry(entry) == f"El 2 de marzo de {old.year}, recibió un depósito de 100 dólares."
    assert describe_entry(entry) == f"On March 2, {old.year}, 100 dollars was added to your account."


def test_history_repeats_on_1_and_returns_on_2(signed_in, account):
    history(signed_in)
    assert "was added to your account" in signed_in.press("1").text
    assert "Main menu" in signed_in.press("2").text


# Change PIN --------------------------------------------------------------------------


def change_pin(phone, current="3971", new="4682", again=None):
    phone.press("5")
    phone.press(current)
    phone.press(new)
    return phone.press(again or new)


def test_a_caller_changes_their_pin_and_the_old_one_is_refused_afterwards(signed_in, account, make_phone, caplog):
    answer = change_pin(signed_in)
    assert "Your PIN is changed." in answer.text and "Main menu" in answer.text
    account.refresh_from_db()
    assert pins.pin_matches("4682", account.pin_hash)
    assert f"caller changed the account secret: account={account.pk}" in caplog.text
    assert "4682" not in caplog.text and "3971" not in caplog.text

    phone = make_phone(account.home_number)
    phone.dial()
    assert "That PIN is not correct" in phone.press("3971").text
    assert "Main menu" in phone.press("4682").text


def test_only_hashes_cross_between_requests(signed_in):
    signed_in.press("5")
    signed_in.press("3971")
    signed_in.press("4682")
    from ivr.models import CallSession

    call = CallSession.objects.get(call_sid=signed_in.call_sid)
    assert "4682" not in str(call.scratch) and "3971" not in str(call.scratch)
    assert call.scratch["pin_hash"].startswith("argon2id$")


def test_a_wrong_current_pin_counts_toward_the_accounts_lock(signed_in, account):
    signed_in.press("5")
    assert "That PIN is not correct" in signed_in.press("1357").text
    account.refresh_from_db()
    assert account.home_failed_pin_count == 1
    signed_in.press("1357")
    answer = signed_in.press("1357")
    assert answer.hangs_up, "the third wrong PIN in one call ends it"
    account.refresh_from_db()
    assert account.home_failed_pin_count == 3


def test_a_wrong_current_pin_can_lock_the_account(signed_in, account):
    Account.objects.filter(pk=account.pk).update(home_failed_pin_count=4)
    signed_in.press("5")
    answer = signed_in.press("1357")
    assert "This account is locked for 15 minutes." in answer.text
    assert "/step/locked?" in answer.gather.get("action")
    assert not CallSession.objects.get(call_sid=signed_in.call_sid).signed_in, "the lock signs the caller out"
    assert signed_in.press("1").hangs_up


@pytest.mark.parametrize("weak, reason", [("1111", "one digit"), ("2468", "equal steps"), ("1984", "a year")])
def test_a_weak_new_pin_is_refused_with_the_reason(signed_in, weak, reason):
    signed_in.press("5")
    signed_in.press("3971")
    answer = signed_in.press(weak)
    assert "too easy to guess" in answer.text and reason in answer.text
    assert "enter your new 4-digit PIN" in answer.text


def test_the_same_pin_is_refused(signed_in):
    signed_in.press("5")
    signed_in.press("3971")
    answer = signed_in.press("3971")
    assert "That is your current PIN. Please choose a different one." in answer.text


def test_a_mismatch_goes_back_to_the_new_pin(signed_in, account):
    answer = change_pin(signed_in, again="4683")
    assert "did not match" in answer.text and "enter your new 4-digit PIN" in answer.text
    account.refresh_from_db()
    assert pins.pin_matches("3971", account.pin_hash), "nothing changed"
    signed_in.press("5927")
    assert "Your PIN is changed." in signed_in.press("5927").text


def test_a_pending_account_can_change_its_pin(signed_in, account):
    Account.objects.filter(pk=account.pk).update(status="pending", verified_at=None)
    assert "Your PIN is changed." in change_pin(signed_in).text


# Daily limit ---------------------------------------------------------------------------


def test_the_amount_prompt_says_what_is_left_today(signed_in, account, recipient, settings):
    settings.DAILY_TRANSFER_LIMIT_DOLLARS = 100
    ledger.deposit(account=account, amount_cents=500_00)
    ledger.transfer_submit(account=account, recipient_code=recipient.code, amount_cents=70_00, idempotency_key="a")
    signed_in.press("2")
    answer = signed_in.press("50#")
    assert "The most you can still send today is 30 dollars." in answer.text
    assert "How many dollars" in answer.text
    signed_in.press("30#")
    assert "You are sending 30 dollars" in signed_in.press(recipient.code).text


def test_a_rejected_transfer_gives_its_room_back_and_yesterdays_do_not_count(account, recipient, settings):
    settings.DAILY_TRANSFER_LIMIT_DOLLARS = 100
    ledger.deposit(account=account, amount_cents=500_00)
    first = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=60_00, idempotency_key="a"
    ).transfer
    yesterday = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=40_00, idempotency_key="b"
    ).transfer
    Transfer.objects.filter(pk=yesterday.pk).update(created=timezone.now() - timedelta(days=1))
    assert selectors.daily_room_cents(account=account) == 40_00
    ledger.transfer_reject(transfer=first)
    assert selectors.daily_room_cents(account=account) == 100_00


def test_the_limit_reached_sends_the_caller_back_to_the_menu(signed_in, account, recipient, settings):
    settings.DAILY_TRANSFER_LIMIT_DOLLARS = 50
    ledger.transfer_submit(account=account, recipient_code=recipient.code, amount_cents=50_00, idempotency_key="a")
    signed_in.press("2")
    answer = signed_in.press("1#")
    assert "You have reached today's limit of 50 dollars. You can send money again tomorrow." in answer.text
    assert "Main menu" in answer.text


def test_the_limit_is_checked_again_when_the_transfer_is_written(signed_in, account, recipient, settings):
    settings.DAILY_TRANSFER_LIMIT_DOLLARS = 100
    signed_in.press("2")
    signed_in.press("60#")
    signed_in.press(recipient.code)
    # Another call sends 50 dollars meanwhile.
    ledger.transfer_submit(account=account, recipient_code=recipient.code, amount_cents=50_00, idempotency_key="x")
    answer = signed_in.press("1")
    assert "That is more than you can still send today. No money was sent." in answer.text
    assert Transfer.objects.count() == 1
