from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Account
from ivr.models import CallSession

pytestmark = pytest.mark.django_db


def without_prompt_numbers(raw: str) -> str:
    import re

    return re.sub(r"n=\d+", "n=N", raw)


def test_it_signs_in_with_the_right_pin(phone, account):
    phone.dial()
    answer = phone.press("3971")
    assert "You are signed in" in answer.text
    assert "Main menu" in answer.text
    assert CallSession.objects.get(call_sid=phone.call_sid).account == account


def test_it_reads_the_balance(signed_in):
    answer = signed_in.press("1")
    assert "Your balance is 100 dollars." in answer.text
    assert "Your balance is 100 dollars." in signed_in.press("1").text
    assert "Main menu" in signed_in.press("2").text


def test_the_menu_repeats_on_3(signed_in):
    assert "Main menu" in signed_in.press("3").text


def test_a_wrong_pin_asks_again(phone, account):
    phone.dial()
    answer = phone.press("1357")
    assert "That PIN is not correct" in answer.text
    assert "enter your 4-digit PIN" in answer.text
    assert not answer.hangs_up


def test_an_unknown_member_id_hears_exactly_what_a_wrong_pin_hears(make_phone, account):
    known, unknown = make_phone("+12025008888"), make_phone("+12025009999")
    for phone in (known, unknown):
        phone.dial()
    assert without_prompt_numbers(known.last.raw) == without_prompt_numbers(unknown.last.raw)
    for _attempt in range(3):
        heard = [
            without_prompt_numbers(phone.press(member_id).raw)
            for phone, member_id in ((known, "123456"), (unknown, "999999"))
        ]
        assert heard[0] == heard[1], "the PIN prompt comes whether the member ID exists or not"
        heard = [without_prompt_numbers(phone.press("1357").raw) for phone in (known, unknown)]
        assert heard[0] == heard[1]


def test_an_unknown_member_id_costs_a_hash_as_a_known_one_does(phone, monkeypatch):
    from accounts import pins

    hashed = []
    real = pins.make_password
    monkeypatch.setattr(pins, "make_password", lambda *a, **k: hashed.append(a) or real(*a, **k))
    phone.caller = "+12025009999"
    phone.dial()
    phone.press("999999")
    phone.press("1357")
    assert len(hashed) == 1, "a dummy hash runs for an unknown member ID"


def test_the_third_wrong_pin_ends_the_call(phone, account):
    phone.dial()
    phone.press("1357")
    phone.press("1358")
    answer = phone.press("1359")
    assert answer.hangs_up
    assert "this call will now end" in answer.text


def test_the_third_wrong_pin_ends_the_call_even_after_going_to_registration(phone, account):
    phone.dial()
    phone.press("1357")
    phone.press("1358")
    assert "To enter a member ID, press 2" in phone.press("#").text  # other options
    assert "Please enter your 6-digit member ID" in phone.press("2").text
    phone.press(account.member_id)
    assert phone.press("1359").hangs_up


def test_it_locks_after_five_failed_pins_across_calls(make_phone, account, caplog):
    with caplog.at_level(logging.INFO):
        for _call in range(3):
            phone = make_phone(account.home_number)
            phone.dial()
            for _attempt in range(2):
                answer = phone.press("1357")
                if "locked" in answer.text:
                    break
    assert "locked for 15 minutes" in answer.text
    assert "Staff can help" in answer.text
    assert not answer.hangs_up and "/step/locked?" in answer.gather.get("action")
    account.refresh_from_db()
    assert account.is_locked()
    assert timedelta(minutes=14) < account.home_locked_until - timezone.now() <= timedelta(minutes=15)
    assert f"account locked: account={account.pk}" in caplog.text
    assert "1357" not in caplog.text

    phone = make_phone(account.home_number)
    phone.dial()
    answer = phone.press("3971")
    assert "locked for 15 minutes" in answer.text, "the right PIN does not open a locked account"
    assert not CallSession.objects.get(call_sid=phone.call_sid).signed_in


def test_six_wrong_pins_over_three_calls_keep_the_right_one_out_until_unlocked(make_phone, account):
    tries = 0
    for _call in range(3):
        phone = make_phone(account.home_number)
        phone.dial()
        while tries < 6 and not phone.last.hangs_up:
            phone.press("1357")
            tries += 1
    assert tries == 6
    phone = make_phone(account.home_number)
    phone.dial()
    assert "locked for 15 minutes" in phone.press("3971").text

    call_command("unlock", account.home_number)
    phone = make_phone(account.home_number)
    phone.dial()
    assert "Main menu" in phone.press("3971").text


def test_the_lock_lifts_when_it_expires(phone, account):
    Account.objects.filter(pk=account.pk).update(
        home_locked_until=timezone.now() - timedelta(seconds=1), home_lock_count=1
    )
    phone.dial()
    assert "Main menu" in phone.press("3971").text


def test_a_right_pin_resets_the_failure_count(make_phone, account):
    phone = make_phone(account.home_number)
    phone.dial()
    phone.press("1357")
    phone.press("1357")
    phone.press("3971")
    account.refresh_from_db()
    assert account.home_failed_pin_count == 0
