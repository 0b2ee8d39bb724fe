"""The call's state lives in the database: retries, stale URLs, other workers, purging."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts.models import Account
from ivr.models import CallSession

pytestmark = pytest.mark.django_db


def test_a_retried_answer_is_answered_again_without_counting_twice(phone, account):
    phone.dial()
    action = phone.last.gather.get("action")
    first = phone.twiml(phone.post(action, {"Digits": "1357"}))

    retry = phone.twiml(phone.post(action, {"Digits": "1357"}))
    assert retry.gather.get("action") == first.gather.get("action"), "the same prompt as the first answer"
    assert "enter your 4-digit PIN" in retry.text
    account.refresh_from_db()
    assert account.home_failed_pin_count == 1
    assert CallSession.objects.get(call_sid=phone.call_sid).pin_failures == 1


def test_a_retried_silence_is_not_a_second_silence(phone):
    phone.dial()
    redirect = phone.last.redirect
    phone.twiml(phone.post(redirect))
    phone.twiml(phone.post(redirect))
    assert CallSession.objects.get(call_sid=phone.call_sid).timeouts == 1


def test_a_retried_goodbye_says_goodbye_again(phone):
    phone.dial()
    phone.silence()
    phone.silence()
    redirect = phone.last.redirect
    first = phone.twiml(phone.post(redirect))
    again = phone.twiml(phone.post(redirect))
    assert first.hangs_up and again.hangs_up
    assert again.text == first.text


def test_a_stale_url_starts_over_at_the_entry(signed_in):
    old_menu = signed_in.last.gather.get("action")
    signed_in.press("1")  # now at the balance prompt

    answer = signed_in.twiml(signed_in.post(old_menu, {"Digits": "2"}))
    assert "Let's start again" in answer.text
    assert "enter your 4-digit PIN" in answer.text
    call = CallSession.objects.get(call_sid=signed_in.call_sid)
    assert call.step == "entry"
    assert call.account is None, "starting over signs the call out"


def test_an_unknown_call_at_a_step_url_starts_over(phone, account):
    answer = phone.twiml(phone.post("/twilio/step/menu?n=7", {"Digits": "1"}))
    assert "enter your 4-digit PIN" in answer.text
    assert "balance" not in answer.text


@pytest.mark.parametrize(
    "url", ["/twilio/step/menu", "/twilio/step/menu?n=abc", "/twilio/step/nowhere?n=1", "/twilio/step/entry?n=-1"]
)
def test_a_forged_or_garbled_step_url_starts_over(phone, account, url):
    phone.dial()
    answer = phone.twiml(phone.post(url, {"Digits": "1"}))
    assert "enter your 4-digit PIN" in answer.text


def test_a_step_that_needs_sign_in_cannot_be_reached_signed_out(phone, account):
    phone.dial()
    CallSession.objects.filter(call_sid=phone.call_sid).update(step="balance")
    call = CallSession.objects.get(call_sid=phone.call_sid)
    answer = phone.twiml(phone.post(f"/twilio/step/balance?n={call.prompt_number}", {"Digits": "1"}))
    assert "Your balance" not in answer.text
    assert "enter your 4-digit PIN" in answer.text


@pytest.mark.django_db(transaction=True)
def test_a_call_survives_a_new_worker_for_every_step(client):
    """Each webhook on a fresh client and a fresh database connection, as on another machine."""
    from tests.conftest import Phone

    phone = Phone(client, caller="+12027770000")
    steps = [
        phone.dial,
        lambda: phone.press("#"),
        lambda: phone.press("1"),
        lambda: phone.press("654321"),
        lambda: phone.press("3971"),
        lambda: phone.press("3971"),
        lambda: phone.press("2"),
        lambda: phone.press("1"),
    ]
    for take_step in steps:
        connections.close_all()
        phone.client = Client()
        answer = take_step()
    assert "Your balance is 0 dollars" in answer.text
    assert Account.objects.filter(home_number="+12027770000").exists()


def test_purge_deletes_ended_and_idle_calls_only(make_phone, capsys):
    ended, idle, live = make_phone("+12025000001"), make_phone("+12025000002"), make_phone("+12025000003")
    for phone in (ended, idle, live):
        phone.dial()
    ended.silence(), ended.silence(), ended.silence()
    CallSession.objects.filter(call_sid=idle.call_sid).update(updated=timezone.now() - timedelta(hours=3))

    call_command("purge_call_sessions")
    assert list(CallSession.objects.values_list("call_sid", flat=True)) == [live.call_sid]
    assert "Deleted the state of 2 ended or idle call(s);" in capsys.readouterr().out


def test_purge_takes_an_idle_limit_and_refuses_a_silly_one(make_phone, capsys):
    phone = make_phone()
    phone.dial()
    CallSession.objects.update(updated=timezone.now() - timedelta(minutes=30))
    call_command("purge_call_sessions", "--idle-minutes", "60")
    assert CallSession.objects.count() == 1
    call_command("purge_call_sessions", "--idle-minutes", "20")
    assert CallSession.objects.count() == 0
    with pytest.raises(CommandError, match="at least 1"):
        call_command("purge_call_sessions", "--idle-minutes", "0")


def test_a_retry_that_read_the_call_before_its_first_attempt_wrote_it_answers_the_same(signed_in, monkeypatch):
    """The optimistic write-back: the request that writes second finds the call moved, looks again, and replays."""
    from ivr.steps.menu import Menu
    from tests.conftest import Phone

    action = signed_in.last.gather.get("action")
    real_answer, first = Menu.answer, {}

    def racing(self, call, keys):
        if not first:
            # Twilio's other copy of this request runs to the end while this one is between read and write.
            first["response"] = Phone(signed_in.client, caller=signed_in.caller, call_sid=signed_in.call_sid).post(
                action, {"Digits": "1", "FinishedOnKey": ""}
            )
        return real_answer(self, call, keys)

    monkeypatch.setattr(Menu, "answer", racing)
    before = CallSession.objects.get(call_sid=signed_in.call_sid).prompt_number
    second = signed_in.press("1")
    assert second.raw == first["response"].content.decode(), "exactly the prompt the first attempt answered"
    assert "Your balance is" in second.text
    assert CallSession.objects.get(call_sid=signed_in.call_sid).prompt_number == before + 1, "moved once"
