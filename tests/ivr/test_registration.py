from __future__ import annotations

import pytest

from accounts import codes
from accounts.models import Account, ConfirmationCode
from ivr.models import CallSession
from tests.conftest import spoken_code

pytestmark = pytest.mark.django_db


def register(phone, member_id="654321", pin="3971"):
    phone.dial()
    assert "enter your 6-digit member ID" in phone.to_registration().text
    assert "create a 4-digit PIN" in phone.press(member_id).text
    assert "same PIN again" in phone.press(pin).text
    return phone.press(pin)


def test_it_registers_a_new_caller_and_reads_the_code_slowly(phone):
    answer = register(phone)

    account = Account.objects.get(home_number=phone.caller)
    assert account.member_id == "654321"
    assert account.balance_cents == 0
    assert (account.status, account.verified_at) == ("pending", None)
    assert "Your account is created" in answer.text
    assert "give them this registration code" in answer.text
    code = spoken_code(answer.text)
    stored = ConfirmationCode.objects.get(account=account)
    assert stored.purpose == "registration"
    assert stored.code_hash == codes.code_digest(code)
    assert answer.text.count(", ".join(code)) == 2, "the code is read twice"
    assert answer.root.find("Gather/Pause") is not None, "with pauses between readings"


def test_it_repeats_the_same_code_and_continues_signed_in(phone):
    code = spoken_code(register(phone).text)

    again = phone.press("1")
    assert spoken_code(again.text) == code
    menu = phone.press("2")
    assert "Main menu" in menu.text
    assert "Your balance is 0 dollars" in phone.press("1").text


def test_it_holds_only_a_hash_of_the_pin_between_create_and_confirm(phone):
    phone.dial()
    phone.to_registration()
    phone.press("654321")
    phone.press("3971")

    call = CallSession.objects.get(call_sid=phone.call_sid)
    assert "3971" not in str(call.scratch)
    assert call.scratch["pin_hash"].startswith("argon2id$")


def test_it_goes_back_to_create_on_a_pin_mismatch(phone):
    phone.dial()
    phone.to_registration()
    phone.press("654321")
    phone.press("3971")

    answer = phone.press("3972")
    assert "did not match" in answer.text
    assert "create a 4-digit PIN" in answer.text
    assert not Account.objects.exists()
    phone.press("4682")
    assert "Your account is created" in phone.press("4682").text


def test_it_ends_the_call_after_three_mismatches(phone):
    phone.dial()
    phone.to_registration()
    phone.press("654321")
    for _attempt in range(3):
        phone.press("3971")
        answer = phone.press("3972")
    assert answer.hangs_up
    assert not Account.objects.exists()


@pytest.mark.parametrize(
    "weak, reason",
    [
        ("0000", "one digit"),
        ("7777", "one digit"),
        ("1234", "in order"),
        ("6789", "in order"),
        ("0123", "in order"),
        ("4321", "in order"),
        ("3210", "in order"),
        ("9876", "in order"),
        ("1212", "pair"),
        ("2580", "most common"),
        ("6969", "pair"),
        ("1004", "most common"),
        ("2000", "a year"),
        ("1987", "a year"),
        ("2468", "equal steps"),
        ("1357", "equal steps"),
        ("0007", "three times"),
        ("1122", "pair"),
        ("1313", "pair"),
    ],
)
def test_it_refuses_weak_pins_with_a_reason(phone, weak, reason):
    phone.dial()
    phone.to_registration()
    phone.press("654321")

    answer = phone.press(weak)
    assert "too easy to guess" in answer.text
    assert reason in answer.text
    assert "create a 4-digit PIN" in answer.text


def test_a_home_number_can_register_another_account_which_gets_no_home_number(phone, account):
    phone.dial()
    assert "For other options, press pound" in phone.last.text
    register_from_home_prompt(phone, member_id="654321")
    created = Account.objects.get(member_id="654321")
    assert created.home_number is None
    assert Account.objects.get(home_number=phone.caller) == account


def register_from_home_prompt(phone, member_id="654321", pin="4682"):
    assert "To create a new account, press 3" in phone.press("#").text
    assert "To create an account" in phone.press("3").text
    phone.press(member_id)
    phone.press(pin)
    return phone.press(pin)


def test_it_refuses_a_member_id_in_use(phone, account):
    phone.caller = "+12029990000"
    phone.dial()
    phone.to_registration()
    answer = phone.press(account.member_id)
    assert "already has an account" in answer.text
    assert "member ID" in answer.text
    assert Account.objects.count() == 1


def test_it_refuses_a_member_id_taken_during_the_call(phone):
    phone.dial()
    phone.to_registration()
    phone.press("654321")
    phone.press("3971")
    Account.objects.create(home_number="+12029990000", member_id="654321", pin_hash="x")

    answer = phone.press("3971")
    assert "already has an account" in answer.text
    assert "member ID" in answer.text
    assert Account.objects.count() == 1


@pytest.mark.parametrize("keys", ["12345", "1234567", "12a456", "١٢٣٤٥٦", "*", "123456" * 2000, "12 456"])
def test_it_refuses_a_member_id_of_the_wrong_shape(phone, keys):
    phone.dial()
    phone.to_registration()
    answer = phone.press(keys)
    assert "A member ID has 6 digits" in answer.text
    assert "member ID" in answer.text
    assert not answer.hangs_up


def test_a_new_caller_registers_hangs_up_then_signs_in_and_hears_the_balance(make_phone):
    first = make_phone("+12027770000")
    register(first, pin="4682")
    first.press("2")
    first.hang_up()
    assert not CallSession.objects.exists()

    second = make_phone("+12027770000")
    assert "For other options, press pound" in second.dial().text, "the registering number became the home number"
    assert "Main menu" in second.press("4682").text
    assert "Your balance is 0 dollars." in second.press("1").text
