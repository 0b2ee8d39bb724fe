"""The deposit line, call by call: a family puts money on a member's account by card through <Pay>."""

from __future__ import annotations

import pytest
from django.test import override_settings

from accounts.models import Account, LedgerEntry
from ivr import machine
from ivr.models import CallSession
from payments.models import CardDeposit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]

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
    # <Pay> only tokenizes: no chargeAmount, a PaymentMethod for the action request to charge.
    assert verb.get("chargeAmount") is None and verb.get("tokenType") == "payment-method"
    assert "discover" in verb.get("validCardTypes").split()
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
    assert not any("4, 2, 4, 2" in repr(key) for key in machine._prompts), "a card's digits kept in memory"
    assert "Your confirmation code is:" in answer.text
    assert "To hear the code again, press 1. For another deposit, press 2." in answer.text
    account.refresh_from_db()
    assert account.balance_cents == 125_00
    assert LedgerEntry.objects.filter(kind="card").count() == 1
    deposit.refresh_from_db()
    assert deposit.status == "paid" and deposit.payment_intent.startswith("pi_") and deposit.card_fingerprint


def test_twilio_retrying_the_action_request_hears_the_same_and_credits_nothing_more(family, account):
    to_pay(family)
    action = family.pay_verb.get("action")
    first = family.pay()
    again = family.twiml(family.post(action, _success()))
    assert again.text == first.text
    account.refresh_from_db()
    assert account.balance_cents == 125_00


def test_a_version_3_result_for_a_call_begun_before_the_deploy_is_credited_once(family, account):
    """<Pay> charged through Twilio's connector before version 4: its PaymentConfirmationCode is the charge."""
    to_pay(family)
    CardDeposit.objects.update(charged_by="connector")
    action = family.pay_verb.get("action")
    answer = family.twiml(family.post(action, _connector_success()))
    assert "Thank you. 25 dollars are on the account." in answer.text
    family.twiml(family.post(action, _connector_success()))
    account.refresh_from_db()
    assert account.balance_cents == 125_00
    assert CardDeposit.objects.get().reference == "ch_3PqTest0000000001"


@pytest.mark.parametrize("result", ["payment-connector-error", "internal-error"])
def test_a_version_3_connector_error_is_never_said_to_be_not_charged(family, account, result):
    """Twilio's connector may report an error after Stripe charged (its request timed out): not "not charged",
    and no other card offered; the deposit stays open for reconciliation to pair with its charge."""
    to_pay(family)
    CardDeposit.objects.update(charged_by="connector")
    answer = family.pay(result, PayErrorCode="64012")
    assert "not charged" not in answer.text and "another card" not in answer.text
    assert "We do not know yet if your card was charged. Please do not pay again" in answer.text
    deposit = CardDeposit.objects.get()
    assert deposit.status == "uncertain" and "connector may have charged" in deposit.needs_look
    account.refresh_from_db()
    assert account.balance_cents == 100_00


def _success() -> dict[str, str]:
    return {
        "Result": "success",
        "PaymentToken": "pm_card_visa",
        "PaymentCardType": "visa",
        "PaymentCardNumber": "xxxxxxxxxxxx4242",
    }


def _connector_success() -> dict[str, str]:
    return {
        "Result": "success",
        "PaymentConfirmationCode": "ch_3PqTest0000000001",
        "PaymentCardType": "visa",
        "PaymentCardNumber": "xxxxxxxxxxxx4242",
    }


@pytest.mark.parametrize(
    "result, fields, heard",
    [
        ("payment-connector-error", {"PayErrorCode": "64012"}, "We could not reach the card processor."),
        ("too-many-failed-attempts", {}, "The card details were not accepted."),
        ("caller-interrupted-with-star", {}, "You pressed star, so the payment stopped."),
        ("validation-error", {}, "Something went wrong with the payment."),
        ("internal-error", {}, "Something went wrong with the payment."),
        ("a-result-twilio-adds-later", {}, "Something went wrong with the payment."),
        ("success", {"PaymentToken": None}, "Something went wrong with the payment."),
        ("success", {"PaymentToken": "tok_not_a_payment_method"}, "Something went wrong with the payment."),
    ],
)
def test_every_other_pay_result_is_truthfully_not_charged(family, account, stripe_double, result, fields, heard):
    """<Pay> itself charges nothing in this mode: whatever it reports but a token, no card was charged."""
    to_pay(family)
    answer = family.pay(result, **fields)
    assert f"Your card was not charged. {heard}" in answer.text
    assert "To use another card, press 1. To end the call, press 2." in answer.text
    assert stripe_double.charge_requests == []
    account.refresh_from_db()
    assert account.balance_cents == 100_00
    assert CardDeposit.objects.get().status == "not_charged"
    # 1: another card, at once, through a new <Pay>.
    family.press("1")
    assert family.pay_verb is not None
    assert family.pay().text.startswith("Thank you. 25 dollars are on the account.")
    assert CardDeposit.objects.filter(status="paid").count() == 1


@pytest.mark.parametrize(
    "token, heard, reason",
    [
        ("pm_card_visa_chargeDeclined", "The card was declined.", "issuer_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "There is not enough money on the card.", "issuer_decline"),
        (
            "pm_card_authenticationRequiredOnSetup",
            "Your bank asked for an extra step that cannot be done by phone. Please try another card.",
            "card_error",
        ),
        ("pm_card_visa_chargeDeclinedExpiredCard", "The card details were not accepted.", "card_error"),
    ],
)
def test_a_card_stripe_refuses_is_not_charged_with_the_reason(family, account, token, heard, reason):
    to_pay(family)
    answer = family.pay(PaymentToken=token)
    assert f"Your card was not charged. {heard}" in answer.text
    assert "To use another card, press 1." in answer.text
    deposit = CardDeposit.objects.get()
    assert deposit.status == "not_charged" and deposit.not_charged_reason == reason
    account.refresh_from_db()
    assert account.balance_cents == 100_00


def test_an_uncertain_charge_says_so_and_never_not_charged(family, account, stripe_double):
    to_pay(family)
    stripe_double.lose_next(2, "timeout")
    answer = family.pay()
    assert "We do not know yet if your card was charged. Please do not pay again" in answer.text
    assert "not charged" not in answer.text and answer.hangs_up
    assert len(stripe_double.charge_requests) == 2, "one retry, with the same key"
    keys = {request["metadata[public_id]"] for request in stripe_double.charge_requests}
    assert keys == {str(CardDeposit.objects.get().public_id)}
    assert CardDeposit.objects.get().status == "uncertain"


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
    CardDeposit.objects.create(
        account=account,
        amount_cents=400_00,
        call_sid="CAx",
        line="x",
        status="not_charged",
        not_charged_reason="pay_result",
    )
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


@override_settings(DAILY_DEPOSIT_LIMIT_DOLLARS=300)
def test_a_slow_pay_another_family_overtook_is_not_charged_and_says_why(family, account, make_phone, stripe_double):
    from datetime import timedelta

    from payments import limits

    to_pay(family, dollars="200")
    # This family types slowly; its slot ends, and another family pays first.
    CardDeposit.objects.update(created=CardDeposit.objects.get().created - limits.PAY_SLOT - timedelta(seconds=1))
    other = make_phone(caller="+12025550178")
    to_pay(other, dollars="200")
    assert "was charged" in other.pay().text
    answer = family.pay()
    assert "Your card was not charged. This account cannot receive that much by card today." in answer.text
    assert len(stripe_double.charge_requests) == 1
    # Another card would be refused the same: 1 offers a smaller amount instead.
    assert "To choose a smaller amount, press 1. To end the call, press 2." in answer.text
    assert "another card" not in answer.text
    assert "Enter the amount in whole dollars" in family.press("1").text
    family.press("100#")
    family.press("1")
    assert "was charged" in family.pay().text
    account.refresh_from_db()
    assert account.balance_cents == 100_00 + 300_00


@override_settings(DAILY_DEPOSIT_LIMIT_DOLLARS=200)
def test_after_a_slow_pay_overtaken_to_the_limit_one_asks_for_another_member(family, account, make_phone):
    from datetime import timedelta

    from payments import limits

    to_pay(family, dollars="100")
    CardDeposit.objects.update(created=CardDeposit.objects.get().created - limits.PAY_SLOT - timedelta(seconds=1))
    other = make_phone(caller="+12025550178")
    to_pay(other, dollars="200")
    other.pay()
    answer = family.pay()
    assert "To choose a smaller amount, press 1." in answer.text
    answer = family.press("1")
    assert "That account cannot receive more card deposits today." in answer.text
    assert "enter the 6-digit member ID" in answer.text


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


def test_the_uncertain_words_in_spanish(make_phone, account, stripe_double):
    phone = make_phone(caller=FAMILY)
    phone.dial_deposit_line(language="es")
    phone.press("123456")
    phone.press("1")
    phone.press("25#")
    phone.press("1")
    stripe_double.lose_next(2, "500")
    answer = phone.pay()
    assert "Todavía no sabemos si se hizo el cobro a su tarjeta. Por favor, no pague otra vez" in answer.text


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
    for secret in ("xxxxxxxxxxxx4242", "pm_card_visa", "1230"):
        assert secret not in kept


def test_pay_progress_is_counted_and_logged_in_shape_only(family, account, caplog):
    from prometheus_client import REGISTRY

    caplog.set_level("DEBUG")
    to_pay(family)
    deposit = CardDeposit.objects.get()
    progress = family.pay_verb.get("statusCallback")
    assert progress.endswith(f"/twilio/deposit/pay-progress?d={deposit.pk}")
    labels = {"field": "payment-card-number", "error": "invalid-card-number"}
    before = REGISTRY.get_sample_value("myibot_deposit_pay_progress_total", labels) or 0
    # Whatever card data or token Twilio might send here too: only the names of the fields are logged.
    card = {"PaymentCardNumber": "xxxxxxxxxxxx4242", "PaymentToken": "pm_card_visa", "SecurityCode": "xxx"}
    answer = family.post(
        progress, {"For": "payment-card-number", "Attempt": "1", "ErrorType": "invalid-card-number", **card}
    )
    assert answer.status_code == 200 and answer.content == b""
    assert REGISTRY.get_sample_value("myibot_deposit_pay_progress_total", labels) == before + 1
    line = next(record.getMessage() for record in caplog.records if record.getMessage().startswith("pay progress"))
    assert f"deposit={deposit.pk} for=payment-card-number attempt=1 error=invalid-card-number" in line
    assert "fields=For,Attempt,ErrorType,PaymentCardNumber,SecurityCode,PaymentToken" in line
    for secret in ("4242", "pm_card_visa"):
        assert secret not in caplog.text
    # It charges and changes nothing: the action request does, once.
    deposit.refresh_from_db()
    assert deposit.status == "pending" and not deposit.token_received
    assert "Thank you. 25 dollars are on the account." in family.pay().text


def test_pay_progress_is_the_deposit_lines_own(family, account, make_phone, settings):
    settings.TWILIO_DEPOSIT_AUTH_TOKEN = "a-pci-subaccounts-own-token"
    members = make_phone(caller="+12025550123")  # signs with the members' number's token
    answer = members.post("/twilio/deposit/pay-progress?d=1", {"For": "payment-card-number"})
    assert answer.status_code == 403


def test_the_member_hears_the_card_deposit_in_the_balance_and_the_history(family, account, signed_in):
    from accounts.spoken import spoken_date

    to_pay(family)
    family.pay()
    today = spoken_date(LedgerEntry.objects.get(kind="card").created)
    free_from = spoken_date(CardDeposit.objects.get().release_at)
    answer = signed_in.press("1")
    # Held card money is named by the balance itself, with the date it can be sent.
    assert (
        "Your balance is 125 dollars. You can send 100 dollars now. "
        f"The rest is from a card deposit: you can send it starting {free_from}."
    ) in answer.text
    assert "Your last card deposit" not in answer.text
    signed_in.press("2")
    answer = signed_in.press("4")
    assert f"On {today}, you received a card deposit of 25 dollars." in answer.text


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
    assert CardDeposit.objects.get().status == "pending" and CardDeposit.objects.get().token_received is None
    account.refresh_from_db()
    assert account.balance_cents == 100_00


def _signed_by(token: str, path: str, phone) -> int:
    from django.conf import settings
    from twilio.request_validator import RequestValidator

    body = {"CallSid": phone.call_sid, "From": phone.caller, "To": "+12025000000", "AccountSid": "AC" + "0" * 32}
    if path == "/twilio/status":
        body["CallStatus"] = "completed"
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
    # The members' token opens no deposit-line URL.
    assert _signed_by(settings.TWILIO_AUTH_TOKEN, "/twilio/deposit", family) == 403
    assert _signed_by(settings.TWILIO_AUTH_TOKEN, "/twilio/step/deposit_member_id?n=1", family) == 403


def test_while_the_subaccounts_token_is_rotated_both_open_the_deposit_line_only(family, account, settings):
    """docs/TWILIO.md: the subaccount's next token is accepted beside its own, for the deposit line's URLs only."""
    settings.TWILIO_DEPOSIT_AUTH_TOKEN = "the-pci-subaccounts-token"
    assert _signed_by("the-subaccounts-next-token", "/twilio/deposit", family) == 403
    settings.TWILIO_DEPOSIT_SECONDARY_AUTH_TOKEN = "the-subaccounts-next-token"
    assert _signed_by("the-subaccounts-next-token", "/twilio/deposit", family) == 200
    assert _signed_by("the-subaccounts-next-token", "/twilio/step/deposit_member_id?n=1", family) == 200
    assert _signed_by("the-pci-subaccounts-token", "/twilio/step/deposit_member_id?n=1", family) == 200
    assert _signed_by("the-subaccounts-next-token", "/twilio/voice", family) == 403
    assert _signed_by("the-subaccounts-next-token", "/twilio/step/pin?n=1", family) == 403


def test_neither_token_opens_a_call_of_the_other_line(make_phone, account, settings):
    """A deposit-line URL posted with a members' CallSid neither restarts nor ends the members' call."""
    settings.TWILIO_DEPOSIT_AUTH_TOKEN = "the-pci-subaccounts-token"
    member = make_phone(caller="+12025550123")
    member.dial()
    before = CallSession.objects.get(call_sid=member.call_sid)
    assert _signed_by("the-pci-subaccounts-token", "/twilio/step/deposit_member_id?n=1", member) == 403
    assert _signed_by("the-pci-subaccounts-token", "/twilio/deposit", member) == 403
    assert _signed_by("the-pci-subaccounts-token", "/twilio/status", member) == 200  # answered, nothing deleted
    after = CallSession.objects.get(call_sid=member.call_sid)
    assert (after.step, after.prompt_number) == (before.step, before.prompt_number)
    family = make_phone(caller=FAMILY)
    assert _signed_by("the-pci-subaccounts-token", "/twilio/deposit", family) == 200
    assert _signed_by(settings.TWILIO_AUTH_TOKEN, "/twilio/status", family) == 200
    assert CallSession.objects.filter(call_sid=family.call_sid).exists(), "the members' token ended a deposit call"


def test_the_deposit_lines_paths_are_the_ones_its_token_opens():
    from django.urls import reverse

    from ivr.decorators import _deposit_line_only
    from ivr.machine import STEPS, step_url

    assert _deposit_line_only(reverse("ivr:deposit")) and _deposit_line_only(reverse("ivr:deposit_paid"))
    for name, each in STEPS.items():
        path = step_url(name, 1).split("testserver", 1)[-1].split("?")[0]
        assert _deposit_line_only(path) == bool(getattr(each, "deposit_line", False)), name


def test_a_charge_the_database_cannot_record_now_says_we_do_not_know_yet(family, account, monkeypatch):
    from django.db import OperationalError

    from payments import charges

    to_pay(family)

    def too_slow(**kwargs):
        raise OperationalError("canceling statement due to lock timeout")

    monkeypatch.setattr(charges, "credit", too_slow)
    answer = family.pay()
    assert "We do not know yet if your card was charged. Please do not pay again" in answer.text
    assert answer.hangs_up
    assert CardDeposit.objects.get().status == "charging"


@pytest.mark.parametrize("where", ["issuing the code", "the words after"])
def test_an_unexpected_error_after_the_charge_says_we_do_not_know_yet(family, account, monkeypatch, where):
    """Never "call again later" once the card may be charged: that invites a second payment."""
    from ivr import machine
    from payments import charges

    to_pay(family)

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(
        *((charges, "confirmation_code_issue") if where == "issuing the code" else (machine, "payment_made")), broken
    )
    answer = family.pay()
    assert "We do not know yet if your card was charged. Please do not pay again" in answer.text
    assert "call again" not in answer.text and answer.hangs_up
    assert CardDeposit.objects.get().status == ("charging" if where == "issuing the code" else "paid")


def test_twilios_retry_while_the_first_request_charges_never_says_call_again(family, account, monkeypatch):
    """The token taken by the first request (charging in another worker): a failure here must not invite a
    second payment."""
    from django.utils import timezone

    from ivr import machine

    to_pay(family)
    CardDeposit.objects.update(token_received=timezone.now())  # the first request has the token

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(machine, "payment_made", broken)
    answer = family.pay()
    assert "We do not know yet if your card was charged. Please do not pay again" in answer.text
    assert "call again" not in answer.text


def test_without_stripe_the_deposit_line_says_so_before_anyone_types_a_card(family, account, settings):
    settings.STRIPE_SECRET_KEY = ""
    answer = family.dial_deposit_line()
    assert "Sorry, card deposits are not available right now. Please call again later. Goodbye." in answer.text
    assert answer.hangs_up and not CallSession.objects.exists()


def test_the_deposit_numbers_fallback_never_says_not_charged(family):
    answer = family.twiml(family.post("/twilio/deposit/fallback", {"ErrorCode": "11200"}))
    assert "If you were paying, please do not pay again" in answer.text and answer.hangs_up


def test_pay_ending_without_its_action_charges_nothing_and_says_so(family, account, stripe_double):
    to_pay(family)
    redirect = family.last.redirect
    assert "no_result=1" in redirect
    answer = family.twiml(family.post(redirect, {}))
    assert "Your card was not charged." in answer.text
    assert stripe_double.charge_requests == [] and CardDeposit.objects.get().status == "not_charged"
