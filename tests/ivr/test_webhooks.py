"""The webhook contract: signatures, methods, caller ID, status callback, fallback, failures."""

from __future__ import annotations

import dataclasses
import logging
import re

import pytest
from django.db import OperationalError

from accounts.models import Account
from ivr import machine
from ivr.models import CallSession

pytestmark = pytest.mark.django_db

STANDALONE_PIN = re.compile(r"(?<![0-9A-Za-z])3971(?![0-9A-Za-z])")
WEBHOOKS = ["/twilio/voice", "/twilio/step/entry?n=1", "/twilio/status", "/twilio/fallback"]


@pytest.mark.parametrize("url", WEBHOOKS)
def test_it_refuses_unsigned_requests_and_writes_nothing(phone, url):
    response = phone.post(url, {"Digits": "1234"}, signed=False)
    assert response.status_code == 403
    assert not CallSession.objects.exists()


@pytest.mark.parametrize("url", WEBHOOKS)
def test_it_refuses_wrongly_signed_requests_and_writes_nothing(phone, url):
    response = phone.post(
        url, {"Digits": "1234"}, signed=False, extra={"HTTP_X_TWILIO_SIGNATURE": "bm90IGEgc2lnbmF0dXJl"}
    )
    assert response.status_code == 403
    assert not CallSession.objects.exists()


def test_it_refuses_a_signature_for_other_parameters(phone, settings):
    from tests.conftest import sign

    body = {"CallSid": phone.call_sid, "From": phone.caller}
    signature = sign(settings.BASE_URL + "/twilio/voice", {**body, "From": "+12025000001"})
    response = phone.client.post("/twilio/voice", body, secure=True, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 403


def test_it_refuses_a_signature_for_another_url(phone, settings):
    from tests.conftest import sign

    body = {"CallSid": phone.call_sid, "From": phone.caller}
    signature = sign(settings.BASE_URL + "/twilio/fallback", body)
    response = phone.client.post("/twilio/voice", body, secure=True, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 403


def test_it_checks_signatures_with_debug_on_too(phone, settings):
    settings.DEBUG = True
    assert phone.post("/twilio/voice", signed=False).status_code == 403


def test_it_accepts_the_url_signed_with_the_port(phone, settings):
    from tests.conftest import sign

    body = {"CallSid": phone.call_sid, "From": phone.caller}
    signature = sign("https://testserver:443/twilio/voice", body)
    response = phone.client.post("/twilio/voice", body, secure=True, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 200


@pytest.mark.parametrize("url", WEBHOOKS)
def test_it_refuses_get(client, url):
    response = client.get(url, secure=True)
    assert response.status_code == 405


def test_it_is_csrf_exempt(phone):
    phone.client = phone.client.__class__(enforce_csrf_checks=True)
    assert phone.post("/twilio/voice").status_code == 200


@pytest.mark.parametrize(
    "caller_id",
    [
        "",
        "anonymous",
        "Anonymous",
        "restricted",
        "unknown",
        "private",
        "+266696687",
        "+7378742833",
        "+86282452253",
        "5551230001",
        "+0123",
        "+1555abc",
        "+1" + "5" * 20,
        "x" * 5000,
        None,
    ],
)
def test_it_serves_withheld_caller_ids_by_member_id_and_never_stores_them(phone, caller_id):
    phone.caller = caller_id
    answer = phone.dial()
    assert "Please enter your 6-digit member ID" in answer.text
    assert not answer.hangs_up
    call = CallSession.objects.get(call_sid=phone.call_sid)
    assert (call.caller, call.caller_trusted) == ("", False)
    # A forged or stale step URL on such a call starts over at the member-ID prompt.
    again = phone.twiml(phone.post("/twilio/step/entry?n=1", {"Digits": "1234"}))
    assert "start again" in again.text and "member ID" in again.text


def test_it_says_goodbye_without_a_call_sid(phone):
    phone.call_sid = None
    answer = phone.twiml(phone.post("/twilio/voice"))
    assert answer.hangs_up
    assert not CallSession.objects.exists()


def test_it_greets_a_home_number_and_asks_for_the_pin(phone, account):
    answer = phone.dial()
    assert "For other options, press pound" in answer.text
    assert answer.verbs == ["Gather", "Redirect"], "the greeting is inside the <Gather>: keys pressed during it count"
    assert "Welcome" in answer.text
    gather = answer.gather
    assert gather.get("numDigits") == "4"
    assert gather.get("finishOnKey") == "#", "# alone must arrive at once"
    assert gather.get("actionOnEmptyResult") == "true"
    assert gather.get("action").startswith("https://testserver/twilio/step/entry?n=")
    assert answer.redirect.startswith("https://testserver/twilio/step/entry?n=")
    assert "no_input=1" in answer.redirect


def test_it_speaks_with_the_configured_voice(phone, settings):
    english = dataclasses.replace(settings.CALLER_LANGUAGES["en"], voice="Polly.Matthew")
    settings.CALLER_LANGUAGES = {**settings.CALLER_LANGUAGES, "en": english}
    answer = phone.dial()
    assert {say.get("voice") for say in answer.root.iter("Say")} == {"Polly.Matthew"}


def test_the_status_callback_forgets_a_finished_call(phone):
    phone.dial()
    assert CallSession.objects.filter(call_sid=phone.call_sid).exists()

    response = phone.hang_up("completed")
    assert response.status_code == 200
    assert not CallSession.objects.filter(call_sid=phone.call_sid).exists()


@pytest.mark.parametrize("status", ["busy", "failed", "no-answer", "canceled"])
def test_the_status_callback_forgets_calls_over_for_any_reason(phone, status):
    phone.dial()
    phone.hang_up(status)
    assert not CallSession.objects.exists()


def test_the_status_callback_keeps_a_call_in_progress(phone):
    phone.dial()
    phone.hang_up("in-progress")
    assert CallSession.objects.exists()


def test_the_status_callback_answers_200_for_unknown_calls(phone):
    assert phone.hang_up("completed").status_code == 200


def test_the_fallback_apologises_without_the_database(phone, django_assert_num_queries):
    with django_assert_num_queries(0):
        answer = phone.twiml(phone.post("/twilio/fallback"))
    assert "temporarily unavailable" in answer.text
    assert answer.hangs_up


def test_it_apologises_calmly_when_something_fails_inside(phone, monkeypatch, caplog):
    def broken(**kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(machine, "start_call", broken)
    with caplog.at_level(logging.ERROR):
        answer = phone.dial()
    assert "temporarily unavailable" in answer.text
    assert answer.hangs_up
    assert "webhook failed" in caplog.text
    assert "Traceback" in caplog.text or caplog.records[-1].exc_info


def test_it_logs_one_line_per_webhook_without_digits(phone, account, caplog):
    with caplog.at_level(logging.INFO, logger="ivr.decorators"):
        phone.dial()
        phone.press("3971")
    lines = [r.getMessage() for r in caplog.records if r.name == "ivr.decorators"]
    assert len(lines) == 2
    assert lines[1].startswith(f"webhook call=…{phone.call_sid[-6:]} step=entry outcome=to menu ms=")
    assert "3971" not in caplog.text


def test_healthz_answers_over_plain_http_with_any_host(client):
    response = client.get("/healthz", HTTP_HOST="172.19.0.2:3001")
    assert response.status_code == 200


def test_healthz_answers_503_without_the_database(client, monkeypatch):
    from myibot import health

    monkeypatch.setattr(health.connection, "cursor", lambda: (_ for _ in ()).throw(OperationalError("down")))
    assert client.get("/healthz").status_code == 503


def test_other_pages_redirect_to_https(client):
    response = client.get("/admin/")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")


def test_a_retried_first_webhook_starts_the_same_call_once(phone):
    phone.dial()
    phone.dial()
    assert CallSession.objects.count() == 1


def test_a_pin_never_appears_in_twiml_or_any_table(phone, django_db_blocker):
    from django.db import connection

    phone.dial()
    phone.to_registration()
    phone.press("654321")
    phone.press("3971")
    phone.press("3971")
    phone.press("2")
    phone.press("1")
    assert Account.objects.count() == 1
    assert all("3971" not in r.content.decode() for r in phone.responses)

    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                # Standalone digits: a hash or a timestamp may hold 3971 by chance inside a longer run.
                assert not any(STANDALONE_PIN.search(str(value)) for value in row), (table, row)


def test_a_webhook_past_its_deadline_rolls_back_and_answers_the_apology(phone, account, settings, caplog):
    """No query starts after WEBHOOK_DEADLINE_SECONDS: the step rolls back, the caller hears the apology."""
    phone.dial()
    settings.WEBHOOK_DEADLINE_SECONDS = -1  # already past, at the first query
    answer = phone.press("1357")
    assert "temporarily unavailable" in answer.text and answer.hangs_up
    account.refresh_from_db()
    assert account.home_failed_pin_count == 0
    assert "webhook over its time budget" in caplog.text
    assert "Traceback" not in caplog.text
