from __future__ import annotations

import pytest

from accounts import codes
from accounts.ledger import deposit
from accounts.models import Account, ConfirmationCode, LedgerEntry, Recipient, Transfer
from accounts.selectors import ledger_balance_cents
from tests.conftest import spoken_code

pytestmark = pytest.mark.django_db


def to_confirm(phone, amount="25", code="246810"):
    assert "whole dollars" in phone.press("2").text
    assert "6-digit code" in phone.press(amount).text
    return phone.press(code)


def test_it_sends_money_and_reads_a_confirmation_code(signed_in, account, recipient):
    confirm = to_confirm(signed_in)
    assert "You are sending 25 dollars to Jane Doe, recipient code 2, 4, 6, 8, 1, 0." in confirm.text
    assert "To confirm, press 1. To cancel, press 2." in confirm.text

    sent = signed_in.press("1")
    assert "Your transfer of 25 dollars to Jane Doe is submitted." in sent.text
    code = spoken_code(sent.text)
    transfer = Transfer.objects.get()
    assert (transfer.account, transfer.recipient, transfer.amount_cents, transfer.status) == (
        account,
        recipient,
        2500,
        "submitted",
    )
    assert transfer.idempotency_key.startswith(signed_in.call_sid + ":")
    assert ConfirmationCode.objects.get(transfer=transfer).code_hash == codes.code_digest(code)
    assert list(LedgerEntry.objects.filter(transfer=transfer).values_list("amount_cents", "kind")) == [
        (-2500, "transfer")
    ]

    assert spoken_code(signed_in.press("1").text) == code, "the same code again"
    assert "Main menu" in signed_in.press("2").text
    assert "Your balance is 75 dollars." in signed_in.press("1").text
    account.refresh_from_db()
    assert account.balance_cents == ledger_balance_cents(account=account) == 7500


def test_an_operator_credit_then_a_transfer_then_the_balance(phone, account, recipient, django_user_model):
    """The issue's acceptance story, from a new caller's first call."""
    from django.core.management import call_command

    phone.caller = "+12027770000"
    phone.dial()
    for keys in ["#", "1", "654321", "4682"]:
        phone.press(keys)
    registration_code = spoken_code(phone.press("4682").text)
    phone.press("2")
    call_command("deposit", "+12027770000", "100")

    # Pending: signed in, the balance, but no money leaves and nothing is written.
    refused = phone.press("2")
    assert "Your account is not verified yet. Please give your registration code to staff." in refused.text
    assert "Main menu" in refused.text
    assert not Transfer.objects.exists()
    assert "Your balance is 100 dollars." in phone.press("1").text
    phone.press("2")

    # Staff verify the code the caller read them; the same call may now send.
    call_command("verify_code", registration_code)
    phone.press("2")
    phone.press("25")
    phone.press("246810")
    assert "is submitted" in phone.press("1").text
    phone.press("2")
    assert "Your balance is 75 dollars." in phone.press("1").text


def test_cancel_writes_nothing(signed_in, account, recipient):
    to_confirm(signed_in)
    answer = signed_in.press("2")
    assert "Cancelled. No money was sent." in answer.text
    assert "Main menu" in answer.text
    assert not Transfer.objects.exists()
    assert LedgerEntry.objects.count() == 1  # the deposit
    assert not ConfirmationCode.objects.filter(purpose="transfer").exists()


def test_a_cancel_after_the_confirmation_was_sent_sends_nothing_more(signed_in, account, recipient):
    """Only the key that sends holds the call locked; a cancel posted for the same prompt (a replay, or a
    crossed request) after it finds the call moved on: the transfer stands once, and nothing is cancelled."""
    to_confirm(signed_in)
    action = signed_in.last.gather.get("action")
    sent = signed_in.twiml(signed_in.post(action, {"Digits": "1"}))
    assert "is submitted" in sent.text

    crossed = signed_in.twiml(signed_in.post(action, {"Digits": "2"}))
    assert "Cancelled" not in crossed.text
    assert Transfer.objects.count() == 1
    account.refresh_from_db()
    assert account.balance_cents == 7500


def test_only_the_key_that_sends_locks_the_confirmation():
    from ivr.machine import STEPS

    confirm = STEPS["send_confirm"]
    assert confirm.locks_for("1")
    assert not any(confirm.locks_for(entry) for entry in ("2", "0", "*", None, "12"))


@pytest.mark.parametrize(
    "amount, heard",
    [
        ("00", "at least 1 dollar"),
        ("0000", "at least 1 dollar"),
        ("501", "The most you can send at one time is 500 dollars."),
        ("9999", "The most you can send at one time is 500 dollars."),
        ("101", "You do not have enough money. Your balance is 100 dollars"),
        ("12345", "For example, for 20 dollars, enter 2 and 0, then press pound."),
    ],
)
def test_it_refuses_amounts_with_a_reason(signed_in, account, recipient, amount, heard):
    signed_in.press("2")
    answer = signed_in.press(amount)
    assert heard in answer.text
    assert "whole dollars, then press pound" in answer.text
    assert not Transfer.objects.exists()


def test_the_limit_is_a_setting(signed_in, account, recipient, settings):
    settings.TRANSFER_LIMIT_DOLLARS = 20
    signed_in.press("2")
    assert "The most you can send at one time is 20 dollars." in signed_in.press("21").text


def test_it_accepts_the_amount_with_the_pound_key_sent_along(signed_in, account, recipient):
    signed_in.press("2")
    assert "6-digit code" in signed_in.press("25#").text


def test_it_refuses_an_unknown_or_inactive_recipient(signed_in, account, recipient):
    Recipient.objects.create(code="135790", name="Gone Away", active=False)
    signed_in.press("2")
    signed_in.press("25")
    assert "could not find that recipient code" in signed_in.press("999999").text
    assert "could not find that recipient code" in signed_in.press("135790").text


def test_a_retried_confirmation_writes_nothing_and_speaks_the_same_code(signed_in, account, recipient):
    to_confirm(signed_in)
    action = signed_in.last.gather.get("action")
    first = signed_in.twiml(signed_in.post(action, {"Digits": "1"}))

    retry = signed_in.twiml(signed_in.post(action, {"Digits": "1"}))
    assert spoken_code(retry.text) == spoken_code(first.text)
    assert "is submitted" in retry.text
    assert Transfer.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="transfer").count() == 1
    assert ConfirmationCode.objects.filter(purpose="transfer").count() == 1
    account.refresh_from_db()
    assert account.balance_cents == 7500


def test_two_transfers_in_one_call_are_two_transfers(signed_in, account, recipient):
    to_confirm(signed_in, amount="10")
    signed_in.press("1")
    signed_in.press("2")
    to_confirm(signed_in, amount="20")
    signed_in.press("1")
    assert Transfer.objects.count() == 2
    account.refresh_from_db()
    assert account.balance_cents == 7000


def test_funds_spent_elsewhere_meanwhile_are_refused_at_confirm(signed_in, account, recipient):
    to_confirm(signed_in, amount="80")
    from accounts.ledger import transfer_submit

    transfer_submit(account=account, recipient_code="246810", amount_cents=5000, idempotency_key="other-call:1")
    answer = signed_in.press("1")
    assert "You do not have enough money. No money was sent." in answer.text
    assert "Main menu" in answer.text
    assert Transfer.objects.count() == 1


def test_a_recipient_deactivated_meanwhile_is_refused_at_confirm(signed_in, account, recipient):
    to_confirm(signed_in)
    Recipient.objects.filter(pk=recipient.pk).update(active=False)
    answer = signed_in.press("1")
    assert "can no longer receive money" in answer.text
    assert not Transfer.objects.exists()


def test_a_deposit_during_the_call_is_in_the_next_balance(signed_in, account):
    deposit(account=account, amount_cents=1050)
    assert "Your balance is 110 dollars and 50 cents." in signed_in.press("1").text


@pytest.mark.parametrize("second_amount", ["25", "30"], ids=["same amount", "another amount"])
def test_a_second_transfer_after_the_calls_state_was_lost_is_made_not_an_apology(
    phone, account, recipient, second_amount
):
    from ivr.models import CallSession

    phone.dial()
    for keys in ["3971", "2", "25#", recipient.code]:
        phone.press(keys)
    first = phone.press("1")
    assert "is submitted" in first.text
    phone.press("2")
    # The call's state goes (a purge, a status callback), and the same call goes on.
    CallSession.objects.filter(call_sid=phone.call_sid).delete()
    assert "start again" in phone.press("3").text
    for keys in ["3971", "2", f"{second_amount}#", recipient.code]:
        phone.press(keys)
    second = phone.press("1")
    assert "is submitted" in second.text, second.text
    assert "already submitted" not in second.text
    assert Transfer.objects.count() == 2
    assert spoken_code(first.text) != spoken_code(second.text)


# Card money: held until its release, owed after a clawback -------------------------------------------


def card_deposit(account, cents: int, *, hours_ago: float = 1):
    """Card money that arrived hours_ago, as the deposit line credits it (payments.charges.credit)."""
    from datetime import timedelta

    from django.utils import timezone

    from payments import charges
    from payments.models import CardDeposit

    when = timezone.now() - timedelta(hours=hours_ago)
    made = CardDeposit.objects.create(
        account=account,
        amount_cents=cents,
        call_sid="CA" + "e" * 32,
        line="x",
        status="charging",
        charging_started=when,
        created=when,
    )
    return charges.credit(deposit_id=made.pk, payment_intent="pi_3QHeld" + str(made.pk), amount_cents=cents, now=when)


def test_card_money_from_an_hour_ago_cannot_be_sent_until_its_release(signed_in, account, recipient, monkeypatch):
    from django.utils import timezone
    from django.utils.translation import override

    from accounts.spoken import spoken_date

    deposit = card_deposit(account, 40_00)
    with override("en"):
        starting = spoken_date(timezone.localtime(deposit.release_at).date())
    held_words = f"The rest is from a card deposit: you can send it starting {starting}."
    balance = signed_in.press("1").text
    assert f"Your balance is 140 dollars. You can send 100 dollars now. {held_words}" in balance
    assert "Main menu" in signed_in.press("2").text
    refused = to_confirm_amount(signed_in, "120")
    assert f"You can send only 100 dollars now. {held_words}" in refused.text
    assert "whole dollars" in refused.text, "asked for another amount"
    assert not Transfer.objects.exists()

    moved = deposit.release_at + timedelta_minutes(1)
    monkeypatch.setattr(timezone, "now", lambda: moved)
    phone = signed_in.__class__(signed_in.client)
    phone.dial()
    assert "Main menu" in phone.press("3971").text
    assert "Your balance is 140 dollars." in phone.press("1").text
    assert "You can send" not in phone.press("1").text
    phone.press("2")
    confirm = to_confirm(phone, amount="120")
    assert "You are sending 120 dollars" in confirm.text
    assert "is submitted" in phone.press("1").text


def test_when_nothing_can_be_sent_yet_the_caller_hears_it_and_goes_back_to_the_menu(phone, account, recipient):
    from accounts.models import Account

    Account.objects.filter(pk=account.pk).update(balance_cents=0)
    LedgerEntry.objects.filter(account=account).delete()
    card_deposit(account, 30_00)
    phone.dial()
    assert "Main menu" in phone.press("3971").text
    balance = phone.press("1").text
    assert "Your balance is 30 dollars. It is from a card deposit: you can send it starting" in balance
    phone.press("2")
    refused = to_confirm_amount(phone, "5")
    assert "You cannot send money yet. It is from a card deposit: you can send it starting" in refused.text
    assert "Main menu" in refused.text


def test_a_member_who_owes_hears_it_instead_of_a_balance_and_cannot_send(signed_in, account, recipient):
    from accounts.models import Account

    Account.objects.filter(pk=account.pk).update(balance_cents=-10_00, lowest_balance_cents=-10_00)
    owed = signed_in.press("1").text
    assert "You owe 10 dollars because a card deposit was taken back. Your next deposits will pay it first." in owed
    assert "Your balance is" not in owed
    signed_in.press("2")
    refused = to_confirm_amount(signed_in, "5")
    assert "You owe 10 dollars, so you cannot send money now. Your next deposits will pay it first." in refused.text
    assert "Main menu" in refused.text and not Transfer.objects.exists()


def test_a_member_who_owes_hears_it_in_spanish(phone, account, recipient):
    from accounts.models import Account

    Account.objects.filter(pk=account.pk).update(balance_cents=-10_00, lowest_balance_cents=-10_00, language="es")
    phone.dial(language=None)
    assert "Menú principal" in phone.press("3971").text
    owed = phone.press("1").text
    assert "Usted debe 10 dólares porque se canceló un depósito con tarjeta." in owed
    assert "Sus próximos depósitos van a pagar primero esa deuda." in owed


def to_confirm_amount(phone, amount: str):
    assert "whole dollars" in phone.press("2").text
    return phone.press(amount)


def timedelta_minutes(minutes: int):
    from datetime import timedelta

    return timedelta(minutes=minutes)


# What a member hears when card money is held (a review) ------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "dollars", "said"),
    [
        ("DAILY_TRANSFER_LIMIT_DOLLARS", 50, "The most you can still send today is 50 dollars."),
        ("TRANSFER_LIMIT_DOLLARS", 60, "The most you can send at one time is 60 dollars."),
    ],
)
def test_you_can_send_only_names_no_more_than_a_limit_allows(
    signed_in, account, recipient, settings, limit, dollars, said
):
    # 100 dollars free, 40 held; a limit allows less than 100: the limit is what stops 120, and is said.
    setattr(settings, limit, dollars)
    card_deposit(account, 40_00)
    refused = to_confirm_amount(signed_in, "120")
    assert "You can send only 100 dollars now." not in refused.text, refused.text
    assert said in refused.text


def test_todays_limit_reached_is_not_said_as_money_you_can_send_now(signed_in, account, recipient, settings):
    from accounts import ledger

    settings.DAILY_TRANSFER_LIMIT_DOLLARS = 20
    ledger.transfer_submit(account=account, recipient_code="246810", amount_cents=20_00, idempotency_key="k1")
    card_deposit(account, 40_00)  # balance 120: 80 free, 40 held; nothing more today
    refused = to_confirm_amount(signed_in, "100")
    assert "You can send only 80 dollars now." not in refused.text, refused.text
    assert "You have reached today's limit of 20 dollars." in refused.text
    assert not Transfer.objects.exclude(idempotency_key="k1").exists()


def test_a_zero_balance_is_not_promised_as_card_money_sendable_on_a_date(phone, account, recipient):
    # The member owed 30; a family's 30-dollar card deposit paid the debt: the balance is 0.
    Account.objects.filter(pk=account.pk).update(balance_cents=-30_00, lowest_balance_cents=-30_00)
    account.refresh_from_db()
    card_deposit(account, 30_00)
    account.refresh_from_db()
    assert account.balance_cents == 0
    phone.dial()
    assert "Main menu" in phone.press("3971").text
    assert "Your balance is 0 dollars." in phone.press("1").text
    phone.press("2")
    refused = to_confirm_amount(phone, "5")
    # The held card money paid the debt: there is nothing to wait for, and no date is promised.
    assert "you can send it starting" not in refused.text, refused.text
    assert "You do not have enough money. Your balance is 0 dollars." in refused.text


def test_the_last_card_deposit_named_is_the_last_one_whose_failed_refund_gave_the_money_back(signed_in, account):
    from accounts import ledger

    card_deposit(account, 50_00, hours_ago=6 * 24)
    later = card_deposit(account, 25_00, hours_ago=5 * 24)  # both released by now
    ledger.card_money_take_back(entry=later.entry, amount_cents=25_00, kind=LedgerEntry.Kind.REFUND)
    ledger.card_money_give_back(entry=later.entry, amount_cents=25_00, kind=LedgerEntry.Kind.REFUND_RETURNED)
    balance = signed_in.press("1").text
    assert "Your balance is 175 dollars." in balance
    # The 25 dollars of five days ago are on the balance (the refund failed): they are the last card deposit.
    assert "Your last card deposit was 25 dollars" in balance, balance


@pytest.mark.parametrize("hours_ago", [1, 5 * 24], ids=["held", "released, named as the last card deposit"])
def test_the_balance_says_the_same_whether_read_with_the_call_or_asked_on_its_own(signed_in, account, hours_ago):
    """From the main menu the balance's card money is read with the call, in one statement
    (CallSession.find_with); after help at the balance it is asked on its own: the same words."""
    card_deposit(account, 40_00, hours_ago=hours_ago)
    read_with_the_call = signed_in.press("1").text
    asked_after_help = signed_in.press("0").text
    said = read_with_the_call.split(" To hear it again")[0]
    assert "Your balance is 140 dollars." in said
    assert ("40 dollars" in said) and ("Your last card deposit was" in said) == (hours_ago > 24), said
    assert said in asked_after_help, asked_after_help


def test_the_balance_asks_every_source_of_held_money():
    """The balance and the amount's first check ask card money directly, read with the call
    (payments.holds.CARD_MONEY and AMOUNT_CHECK), transfers ask accounts.holds' registry: while card money is
    the only source they agree. A new source of held money must be asked by those two questions too, or the
    member hears money as sendable that a transfer then refuses."""
    from accounts import holds
    from payments.holds import card_money_held

    assert holds._sources == [card_money_held]
