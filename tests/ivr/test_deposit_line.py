"""The deposit line, call by call: a family puts money on a member's account by card through <Pay>."""

from __future__ import annotations

import pytest
from django.test import override_settings

from accounts.models import Account, LedgerEntry
from ivr.models import CallSession
from payments.models import CardDeposit

pytestmark = pytest.mark.django_db

FAMILY = "+12025550177"


@pytest.fixture
def family(make_phone):
    return make_phone(caller=FAMILY)


def to_pay(phone, member_id: str = "123456", dollars: str = "25") -> None:
    answer = phone.dial_deposit_line()
    assert "To put money on an account, enter the 6-digit member ID." in answer.text
    answer = phone.press(member_id)
    assert "You entered the member ID 1, 2, 3, 4, 5, 6." in answer.text.replace("  ", " ")
    assert "If that is right, press 1. To enter it again, press 2." in answer.text
    answer = phone.press("1")
    assert "Enter the amount in whole dollars, then press pound." in answer.text
    answer = phone.press(f"{dollars}#")
    assert f"Your card will be charged exactly {dollars} dollars. There is no fee." in answer.text
    assert "To pay by card, press 1. To cancel, press 2." in answer.text
    phone.press("1")


def test_a_family_pays_by_card_and_the_member_is_credited_once(family, account):
    to_pay(family)
    verb = family.pay_verb
    deposit = CardDeposit.objects.get()
    assert deposit.status == "pending" and deposit.amount_cents == 25_00 and deposit.account == account
    assert verb.get("chargeAmount") == "25.00" and verb.get("currency") == "usd"
    assert verb.get("paymentMethod") == "credit-card" and verb.get("input") == "dtmf"
    assert verb.get("paymentConnector") == "Default" and verb.get("language") == "en-US"
    assert verb.get("description") == f"MyiBot deposit {deposit.pk}" and verb.get("maxAttempts") == "2"
    assert {prompt.get("for") for prompt in verb.findall("Prompt")} >= {
        "payment-card-number",
        "expiration-date",
        "security-code",
        "postal-code",
    }
    answer = family.pay()
    assert "Thank you. 25 dollars are on the account." in answer.text
    assert "Your card ending in 4, 2, 4, 2 was charged." in answer.text
    assert "Your confirmation code is:" in answer.text
    assert "To hear the code again, press 1. For another deposit, press 2." in answer.text
    account.refresh_from_db()
    assert account.balance_cents == 125_00
    assert LedgerEntry.objects.filter(kind="card").count() == 1


def test_twilio_retrying_the_action_request_hears_the_same_and_credits_nothing_more(family, account):
    to_pay(family)
    action = family.pay_verb.get("action")
    first = family.pay()
    again = family.twiml(family.post(action, _success()))
    assert again.text == first.text
    account.refresh_from_db()
    assert account.balance_cents == 125_00


def test_a_request_for_another_call_with_the_same_reference_credits_nothing(family, account, make_phone):
    to_pay(family)
    family.pay()
    other = make_phone(caller="+12025550178")
    to_pay(other)
    answer = other.pay()  # the same PaymentConfirmationCode as the first call's charge
    assert "Thank you. 25 dollars are on the account." in answer.text
    account.refresh_from_db()
    assert account.balance_cents == 125_00
    assert "the same charge as card deposit" in CardDeposit.objects.get(call_sid=other.call_sid).needs_look


def _success() -> dict[str, str]:
    return {
        "Result": "success",
        "PaymentConfirmationCode": "ch_3PqTest0000000001",
        "PaymentCardType": "visa",
        "PaymentCardNumber": "xxxxxxxxxxxx4242",
    }


@pytest.mark.parametrize(
    "result, fields, heard",
    [
        (
            "payment-connector-error",
            {"PayErrorCode": "64012", "PaymentError": "Your card was declined."},
            "The card was declined.",
        ),
        ("payment-connector-error", {}, "We could not reach the card processor."),
        ("too-many-failed-attempts", {}, "The card details were not accepted."),
        ("caller-interrupted-with-star", {}, "You pressed star, so the payment stopped."),
        ("validation-error", {}, "Something went wrong with the payment."),
        ("internal-error", {}, "Something went wrong with the payment."),
        ("a-result-twilio-adds-later", {}, "Something went wrong with the payment."),
    ],
)
def test_any_other_result_charges_nothing_and_says_why_in_plain_words(family, account, result, fields, heard):
    to_pay(family)
    answer = family.pay(result, **fields)
    assert f"Your card was not charged. {heard}" in answer.text
    assert "To try again, press 1. To end the call, press 2." in answer.text
    account.refresh_from_db()
    assert account.balance_cents == 100_00
    assert CardDeposit.objects.get().status == "failed"
    # 1 tries again: the same charge is offered, and a new <Pay> follows.
    answer = family.press("1")
    assert "Your card will be charged exactly 25 dollars" in answer.text
    family.press("1")
    assert family.pay().text.startswith("Thank you. 25 dollars are on the account.")
    assert CardDeposit.objects.filter(status="paid").count() == 1


def test_an_unknown_or_pending_member_id_cannot_receive_deposits_and_three_tries_end_the_call(family, account):
    Account.objects.create(member_id="654321", pin_hash="x")  # pending: staff have not verified it
    family.dial_deposit_line()
    answer = family.press("999999")
    assert "That member ID cannot receive deposits." in answer.text
    answer = family.press("654321")
    assert "That member ID cannot receive deposits." in answer.text
    answer = family.press("111111")
    assert answer.hangs_up and not CardDeposit.objects.exists()


def test_a_locked_account_still_receives_deposits(family, account):
    from datetime import timedelta

    from django.utils import timezone

    Account.objects.filter(pk=account.pk).update(locked_until=timezone.now() + timedelta(hours=1))
    to_pay(family)
    assert "Thank you." in family.pay().text


@override_settings(DEPOSIT_CARD_MAX_DOLLARS=200, DAILY_DEPOSIT_LIMIT_DOLLARS=500)
def test_refused_amounts_say_the_limit(family, account):
    family.dial_deposit_line()
    family.press("123456")
    family.press("1")
    answer = family.press("250#")
    assert "The most you can pay at one time is 200 dollars." in answer.text
    answer = family.press("00#")
    assert "The least you can pay is 1 dollar." in answer.text
    answer = family.press("0#")  # a lone 0 is help, never an amount
    assert "for example 2 5 for 25 dollars" in answer.text
    CardDeposit.objects.create(account=account, amount_cents=400_00, call_sid="CAx", line="x", status="failed")
    answer = family.press("200#")
    assert "Your card will be charged exactly 200 dollars" in answer.text


@override_settings(DEPOSIT_CARD_MAX_DOLLARS=200, DAILY_DEPOSIT_LIMIT_DOLLARS=250)
def test_the_daily_limit_is_said_without_what_was_received_today(family, account, make_phone):
    to_pay(family, dollars="200")
    family.pay()
    other = make_phone(caller="+12025550178")
    other.dial_deposit_line()
    other.press("123456")
    other.press("1")
    answer = other.press("100#")
    # The limit, not what is left: that would tell any caller what the member received today.
    assert "That is more than this account can receive by card today." in answer.text
    assert "The most it can receive in a day is 250 dollars." in answer.text
    assert " 50 dollars" not in answer.text


def test_star_starts_the_deposit_over_and_two_cancels_without_charging(family, account):
    family.dial_deposit_line()
    family.press("123456")
    family.press("1")
    answer = family.press("*")
    assert "To put money on an account, enter the 6-digit member ID." in answer.text
    family.press("123456")
    family.press("1")
    family.press("25#")
    answer = family.press("2")
    assert "Your card was not charged." in answer.text and "enter the 6-digit member ID" in answer.text
    assert not CardDeposit.objects.exists()


def test_zero_is_help_on_the_deposit_line(family, account):
    family.dial_deposit_line()
    answer = family.press("0")
    assert "Enter the 6-digit member ID of the person you are putting money on. There is no fee." in answer.text


@override_settings(DEPOSIT_ATTEMPTS_PER_LINE_PER_DAY=2)
def test_one_line_gets_a_few_lookups_a_day(family, account):
    family.dial_deposit_line()
    family.press("999999")
    family.press("999998")
    answer = family.press("123456")
    assert "too many tries from this phone today" in answer.text and answer.hangs_up


def test_the_whole_call_in_spanish(make_phone, account):
    phone = make_phone(caller=FAMILY)
    answer = phone.dial_deposit_line(language="es")
    assert "Para poner dinero en una cuenta" in answer.text, answer.text
    phone.press("123456")
    answer = phone.press("1")
    answer = phone.press("25#")
    assert "Le vamos a cobrar exactamente 25 dólares a su tarjeta. No cobramos comisión." in answer.text, answer.text
    phone.press("1")
    assert phone.pay_verb.get("language") == "es-MX"
    answer = phone.pay()
    assert "Gracias. Su depósito de 25 dólares ya está en la cuenta." in answer.text, answer.text


def test_a_withheld_number_can_pay(make_phone, account):
    phone = make_phone(caller="anonymous")
    to_pay(phone)
    assert "Thank you." in phone.pay().text
    assert CardDeposit.objects.get().line == "withheld"


def test_nothing_the_call_keeps_holds_card_data(family, account, caplog):
    caplog.set_level("DEBUG")
    to_pay(family)
    family.pay()
    call = CallSession.objects.get(call_sid=family.call_sid)
    kept = f"{call.scratch} {call.last_notices} {list(CardDeposit.objects.values())} {caplog.text}"
    for secret in ("xxxxxxxxxxxx4242", "tok_should_never_be_kept", "1230"):
        assert secret not in kept


def test_the_member_hears_the_card_deposit_in_the_balance_and_the_history(family, account, signed_in):
    from accounts.spoken import spoken_date

    to_pay(family)
    family.pay()
    today = spoken_date(LedgerEntry.objects.get(kind="card").created)
    answer = signed_in.press("1")
    assert "Your balance is 125 dollars." in answer.text
    assert f"Your last card deposit was 25 dollars, on {today}." in answer.text
    signed_in.press("2")
    answer = signed_in.press("4")
    assert f"On {today}, a card deposit of 25 dollars." in answer.text


def test_a_charge_reported_after_the_call_state_is_gone_is_still_credited(family, account):
    to_pay(family)
    action = family.pay_verb.get("action")
    family.hang_up()  # the status callback came first: the call's state is deleted
    assert not CallSession.objects.filter(call_sid=family.call_sid).exists()
    answer = family.twiml(family.post(action, _success()))
    assert answer.verbs == ["Hangup"]
    assert not CallSession.objects.filter(call_sid=family.call_sid).exists(), "no new state for an ended call"
    account.refresh_from_db()
    assert account.balance_cents == 125_00
    assert CardDeposit.objects.get().status == "paid"


def test_an_action_request_naming_another_calls_deposit_credits_nothing(family, account, make_phone):
    to_pay(family)
    action = family.pay_verb.get("action")
    thief = make_phone(caller="+12025550199")
    thief.dial_deposit_line()
    thief.twiml(thief.post(action, _success()))
    assert CardDeposit.objects.get().status == "pending"
    account.refresh_from_db()
    assert account.balance_cents == 100_00


def _signed_by(token: str, path: str, phone) -> int:
    from django.conf import settings
    from twilio.request_validator import RequestValidator

    body = {"CallSid": phone.call_sid, "From": phone.caller, "To": "+12025000000", "AccountSid": "AC" + "0" * 32}
    url = settings.BASE_URL + path
    signature = RequestValidator(token).compute_signature(url, body)
    return phone.client.post(path, body, secure=True, HTTP_X_TWILIO_SIGNATURE=signature).status_code


def test_the_deposit_lines_own_token_opens_the_deposit_line_only(family, account, settings):
    # A PCI subaccount signs the deposit line with its own token: a leak of it must not open sign-in.
    settings.TWILIO_DEPOSIT_AUTH_TOKEN = "the-pci-subaccounts-token"
    assert _signed_by("the-pci-subaccounts-token", "/twilio/deposit", family) == 200
    assert _signed_by("the-pci-subaccounts-token", "/twilio/step/deposit_member_id?n=1", family) == 200
    assert _signed_by("the-pci-subaccounts-token", "/twilio/voice", family) == 403
    assert _signed_by("the-pci-subaccounts-token", "/twilio/step/pin?n=1", family) == 403
    assert _signed_by(settings.TWILIO_AUTH_TOKEN, "/twilio/voice", family) == 200


def test_the_deposit_lines_paths_are_the_ones_its_token_opens():
    from django.urls import reverse

    from ivr.decorators import _on_the_deposit_line
    from ivr.machine import STEPS, step_url

    assert _on_the_deposit_line(reverse("ivr:deposit")) and _on_the_deposit_line(reverse("ivr:deposit_paid"))
    for name, each in STEPS.items():
        path = step_url(name, 1).split("testserver", 1)[-1].split("?")[0]
        assert _on_the_deposit_line(path) == bool(getattr(each, "deposit_line", False)), name


def test_a_payment_the_database_cannot_record_now_tells_the_family_not_to_pay_again(family, account, monkeypatch):
    from django.db import OperationalError

    from ivr import views

    to_pay(family)

    def too_slow(**kwargs):
        raise OperationalError("canceling statement due to lock timeout")

    monkeypatch.setattr(views, "record_payment", too_slow)
    answer = family.pay()
    assert "If your card was charged, the money will reach the account. Please do not pay again." in answer.text
    assert answer.hangs_up
