"""No entered digits, PINs or codes in any log line, at any level."""

from __future__ import annotations

import logging
import re

import pytest
from django.core.management import call_command

from tests.conftest import spoken_code

pytestmark = pytest.mark.django_db

SECRET_PIN, WRONG_PIN, MEMBER_ID = "4682", "1357", "654321"


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG on"])
def test_whole_calls_log_none_of_the_digits_entered(make_phone, recipient, caplog, settings, debug):
    # With DEBUG on and Django's own loggers turned up, Django would log every
    # SQL statement with its parameters.
    settings.DEBUG = debug
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="django"):
        phone = make_phone("+12027770000")
        phone.dial()
        for keys in ["#", "1", MEMBER_ID, SECRET_PIN, SECRET_PIN]:
            answer = phone.press(keys)
        registration_code = spoken_code(answer.text)
        phone.press("2")
        call_command("deposit", phone.caller, "100")
        call_command("verify_code", registration_code)
        phone.hang_up()

        # From another phone: the member ID, then the PIN.
        other = make_phone("+12028880000")
        other.dial()
        other.press(MEMBER_ID)
        other.press(SECRET_PIN)
        other.hang_up()

        phone = make_phone("+12027770000")
        phone.dial()
        phone.press(WRONG_PIN)
        phone.press(SECRET_PIN)
        phone.press("2")
        phone.press("25")
        phone.press(recipient.code)
        transfer_code = spoken_code(phone.press("1").text)
        call_command("verify_code", transfer_code)

    logged = "\n".join(
        record.getMessage() + str(record.args) + str(record.__dict__.get("exc_text")) for record in caplog.records
    )
    assert "webhook call=" in logged
    for secret in (SECRET_PIN, WRONG_PIN, MEMBER_ID, registration_code, transfer_code):
        assert not re.search(rf"(?<![0-9A-Za-z]){secret}(?![0-9A-Za-z])", logged), secret
    assert "Digits" not in logged


def test_a_failure_inside_logs_a_traceback_without_the_digits(phone, account, monkeypatch, caplog):
    from accounts import identity

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(identity, "account_sign_in", broken)
    phone.dial()
    with caplog.at_level(logging.DEBUG):
        answer = phone.press("3971")
    assert "temporarily unavailable" in answer.text
    assert "3971" not in caplog.text
    assert "RuntimeError: boom" in caplog.text
