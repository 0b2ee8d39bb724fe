"""The status callback forgets a finished call only for the caller the call was stored for."""

from __future__ import annotations

import logging

import pytest

from ivr.models import CallSession

pytestmark = pytest.mark.django_db


def test_it_deletes_nothing_for_another_callers_from(phone):
    phone.dial()
    response = phone.post("/twilio/status", {"CallStatus": "completed", "From": "+12029990000"})
    assert response.status_code == 200
    assert CallSession.objects.filter(call_sid=phone.call_sid).exists()


def test_it_deletes_the_call_for_its_own_caller(phone):
    phone.dial()
    response = phone.post("/twilio/status", {"CallStatus": "completed", "From": f"  {phone.caller} "})
    assert response.status_code == 200
    assert not CallSession.objects.filter(call_sid=phone.call_sid).exists()


def test_it_answers_200_for_an_unknown_call(phone):
    response = phone.post("/twilio/status", {"CallStatus": "completed"})
    assert response.status_code == 200
    assert response.content == b""


def test_it_logs_that_it_kept_a_call_for_another_caller(phone, caplog):
    phone.dial()
    with caplog.at_level(logging.INFO, logger="ivr.decorators"):
        phone.post("/twilio/status", {"CallStatus": "completed", "From": "+12029990000"})
    assert "outcome=another caller: kept" in caplog.text


@pytest.mark.parametrize("withheld", ["", "anonymous", "Anonymous", " restricted ", "+266696687", None])
def test_a_withheld_from_matches_a_call_stored_without_a_caller(phone, withheld):
    CallSession.objects.create(call_sid=phone.call_sid, caller="")
    phone.post("/twilio/status", {"CallStatus": "completed", "From": withheld})
    assert not CallSession.objects.exists()


def test_a_withheld_from_deletes_nothing_of_a_known_caller(phone):
    phone.dial()
    phone.post("/twilio/status", {"CallStatus": "completed", "From": "anonymous"})
    assert CallSession.objects.exists()


def test_a_number_deletes_nothing_of_a_call_stored_without_a_caller(phone):
    CallSession.objects.create(call_sid=phone.call_sid, caller="")
    phone.post("/twilio/status", {"CallStatus": "completed"})
    assert CallSession.objects.exists()
