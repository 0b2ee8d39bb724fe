"""<Pay>'s action request in the log: enough to confirm on a first real deposit what Twilio posts, never card data."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]

FAMILY = "+12025550177"


def pay_request_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith("pay request:")]


def to_pay(phone) -> None:
    phone.dial_deposit_line()
    phone.press("123456")
    phone.press("1")
    phone.press("25#")
    phone.press("1")


def test_it_logs_the_shape_of_a_success_and_which_fields_came(make_phone, account, caplog):
    caplog.set_level("INFO")
    phone = make_phone(caller=FAMILY)
    to_pay(phone)
    phone.pay(PaymentCardPostalCode="20001", ProfileId="cus_secret_profile", PaymentMethod="credit-card")
    [line] = pay_request_lines(caplog)
    assert "result=success token=pm_ reference=none card_type=visa masked=xxxxxxxxxxxx#### pay_error=-" in line
    assert line.endswith(
        "fields=PaymentCardType,PaymentCardNumber,ExpirationDate,"
        "PaymentCardPostalCode,PaymentToken,ProfileId,PaymentMethod"
    )


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        (
            {"PaymentToken": "pm_card_visa", "PaymentCardNumber": "************4242"},
            "token=pm_ reference=none card_type=visa masked=************####",
        ),
        ({"PaymentCardNumber": "xxxx-xxxxxx-x4001", "PaymentCardType": None}, "card_type=- masked=xxxx-xxxxxx-x####"),
        ({"PaymentToken": None, "PaymentCardNumber": None}, "token=none reference=none card_type=visa masked=-"),
    ],
)
def test_it_logs_each_unsettled_variant_by_its_shape(make_phone, account, caplog, fields, shown):
    caplog.set_level("INFO")
    phone = make_phone(caller=FAMILY)
    to_pay(phone)
    phone.pay(**fields)
    [line] = pay_request_lines(caplog)
    assert shown in line


def test_it_logs_a_decline_by_twilios_code_only(make_phone, account, caplog):
    caplog.set_level("INFO")
    phone = make_phone(caller=FAMILY)
    to_pay(phone)
    phone.pay("payment-connector-error", PayErrorCode="64012", PaymentError="Your card was declined.")
    [line] = pay_request_lines(caplog)
    assert "result=payment-connector-error token=none reference=none" in line and "pay_error=64012" in line
    assert "declined" not in line and line.endswith("fields=PaymentError,PayErrorCode")


def test_the_log_never_holds_card_data_even_when_twilio_sends_it_unmasked(make_phone, account, caplog):
    caplog.set_level("DEBUG")
    phone = make_phone(caller=FAMILY)
    to_pay(phone)
    phone.pay(
        PaymentCardNumber="4242424242424242",
        ExpirationDate="0931",
        PaymentCardPostalCode="97211",
        SecurityCode="987",
        PaymentToken="tok_1SecretToken",
        ProfileId="cus_SecretProfile",
        PaymentCardType="visa\ncard deposit credited: forged",
    )
    [line] = pay_request_lines(caplog)
    assert "masked=################" in line and "card_type=visacarddeposit" in line
    for secret in ("4242424242424242", "0931", "97211", "987", "tok_1SecretToken", "cus_SecretProfile", "\n"):
        assert secret not in line
    for secret in ("4242424242424242", "0931", "97211", "tok_1SecretToken", "cus_SecretProfile"):
        assert secret not in caplog.text
