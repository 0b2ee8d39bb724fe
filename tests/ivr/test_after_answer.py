"""A step that moves no money answers first and writes the call back after its answer is sent.

myibot.after_answer runs the write-back (and the hour's counts) from response.close(), which the WSGI server
calls once the body is on its way; ivr.machine waits briefly for a write-back that a quick answer overtakes.
"""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import ActivityKind, HourlyActivity
from ivr import machine
from ivr.models import CallSession
from myibot import after_answer
from tests.conftest import sent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]


def _stored(phone) -> CallSession:
    return CallSession.objects.get(call_sid=phone.call_sid)


def test_it_answers_before_writing_the_call_back(signed_in):
    before = _stored(signed_in)
    unsent = signed_in.unsent("1")
    assert "Your balance is" in unsent.content.decode()
    assert (_stored(signed_in).step, _stored(signed_in).prompt_number) == ("menu", before.prompt_number), "not yet"
    sent(unsent)  # what the WSGI server does once the body is sent
    assert (_stored(signed_in).step, _stored(signed_in).prompt_number) == ("balance", before.prompt_number + 1)


def test_the_caller_waits_for_one_round_trip_to_send_money(signed_in, recipient):
    """The call read with what the answer asks (the amount's checks, the recipient), the write-back after."""
    for keys, before_answer in [("2", 1), ("25", 1), ("246810", 1), ("2", 1)]:
        with CaptureQueriesContext(connection) as answering:
            unsent = signed_in.unsent(keys)
        with CaptureQueriesContext(connection) as after:
            sent(unsent)
        assert len(answering) == before_answer, [query["sql"][:60] for query in answering]
        assert [query["sql"].split()[0] for query in after] == ["UPDATE"]
        signed_in.twiml(unsent)


def test_the_balance_is_one_round_trip_before_the_answer_with_its_card_money(signed_in):
    """The call, its account and what card money holds in one statement (CallSession.find_with)."""
    for keys in ["1", "1", "2"]:  # the balance, again, the main menu
        with CaptureQueriesContext(connection) as answering:
            unsent = signed_in.unsent(keys)
        assert len(answering) == 1, [query["sql"][:60] for query in answering]
        sent(unsent)
        signed_in.twiml(unsent)
    assert "Main menu" in signed_in.last.text


def test_an_answer_quicker_than_the_write_back_waits_for_it(signed_in, monkeypatch):
    unsent = signed_in.unsent("1")
    signed_in.twiml(unsent)  # the caller hears the balance, and answers it before its write-back lands
    pauses = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        sent(unsent)  # the write-back lands while the quick answer waits

    monkeypatch.setattr(machine.time, "sleep", pause)
    answer = signed_in.press("2")
    assert "Main menu" in answer.text and "start again" not in answer.text
    assert pauses == [machine.WRITE_BACK_PAUSES[0]]
    assert _stored(signed_in).step == "menu"
    assert f"n={_stored(signed_in).prompt_number}" in answer.gather.get("action")


def test_a_pin_typed_before_its_prompts_write_back_lands_is_counted_and_checked(signed_in, monkeypatch):
    """The PIN is counted before its step runs: that count waits for the write-back too, never skips it."""
    unsent = signed_in.unsent("5")  # change the PIN: the current PIN's prompt, written back after
    signed_in.twiml(unsent)
    real_find = CallSession.find

    def find_then_land(call_sid, *, locked):
        found = real_find(call_sid, locked=locked)
        sent(unsent)  # the write-back lands just after the count looked (and before the step's own look)
        return found

    monkeypatch.setattr(CallSession, "find", find_then_land)
    monkeypatch.setattr(machine.time, "sleep", lambda seconds: None)
    answer = signed_in.press("1111")  # a wrong current PIN, before the write-back has landed
    # Counted, then checked: not the prompt again with no word (a PIN never checked uncounted is re-asked).
    assert "That PIN is not correct." in answer.text, answer.text


def test_a_write_back_that_never_lands_starts_the_call_again(signed_in, monkeypatch):
    """Lost (a database error, a crash), the caller's next answer is one prompt ahead: waited for, then stale."""
    signed_in.twiml(signed_in.unsent("1"))  # never closed: the write-back never runs
    pauses = []
    monkeypatch.setattr(machine.time, "sleep", pauses.append)
    answer = signed_in.press("2")
    assert "Let's start again." in answer.text
    assert pauses == list(machine.WRITE_BACK_PAUSES), "about half a second in all, then no more"
    assert not _stored(signed_in).signed_in


def test_a_retry_after_the_write_back_hears_the_same_answer(signed_in):
    action = signed_in.last.gather.get("action")
    first = signed_in.unsent("1")
    sent(first)
    again = signed_in.post(action, {"Digits": "1"})
    assert again.content == first.content, "Twilio's retry is replayed from what was written"


def test_a_write_back_that_finds_the_call_moved_is_logged_after_the_answer(signed_in, caplog):
    unsent = signed_in.unsent("1")
    signed_in.hang_up()  # the status callback forgets the call before the write-back runs
    with caplog.at_level(logging.WARNING, logger="myibot.after_answer"):
        sent(unsent)
    assert "after the answer, the call's write-back failed" in caplog.text
    assert "error=CallMoved" in caplog.text
    assert not CallSession.objects.filter(call_sid=signed_in.call_sid).exists()


@pytest.mark.django_db(transaction=True)  # counted when the insert commits: a test's transaction never does
def test_the_hours_call_count_comes_after_the_answer(phone, account):
    unsent = phone.unsent(url="/twilio/voice")
    assert b"<Gather" in unsent.content
    assert not HourlyActivity.objects.filter(kind=ActivityKind.CALL).exists()
    sent(unsent)
    assert HourlyActivity.objects.get(kind=ActivityKind.CALL).count == 1


def test_outside_a_webhook_the_work_runs_where_it_is_asked_for():
    done = []
    after_answer.after_answer(lambda: done.append("counted"), what="a count")
    assert done == ["counted"]


def test_a_failure_after_the_answer_is_logged_by_kind_and_the_rest_still_runs(caplog):
    from django.http import HttpResponse

    done = []

    def fails() -> None:
        raise ValueError("secret 3971 never logged")

    response = HttpResponse("")
    with after_answer.collected() as later:
        after_answer.after_answer(fails, what="a write-back")
        after_answer.after_answer(lambda: done.append("counted"), what="a count")
    assert done == []
    after_answer.run_after_sending(response, later, call="…abc123")
    with caplog.at_level(logging.WARNING, logger="myibot.after_answer"):
        response.close()
    assert done == ["counted"]
    assert "after the answer, a write-back failed: call=…abc123 error=ValueError" in caplog.text
    assert "3971" not in caplog.text
