"""Every prompt against silence, wrong keys, hostile Digits and the third strike."""

from __future__ import annotations

import pytest

from accounts.models import Account, LedgerEntry, Transfer
from ivr.models import CallSession

pytestmark = pytest.mark.django_db

NEW_CALLER = "+12027770000"
REGISTER = ["#", "1"]  # "#" alone (however Twilio delivers it), then "create a new account"

# How to reach each prompt, what it says, and wrong entries of the right kind.
PROMPTS = {
    "entry": (None, [], "enter your 4-digit PIN", ["123", "12345", "*", "1#", "00"]),
    "home_options": (None, ["#"], "To enter your PIN, press 1", ["4", "*", "12"]),
    "member_id": (NEW_CALLER, [], "enter your 6-digit member ID", ["12345", "1234567", "*", "12#"]),
    "new_or_member_id": (NEW_CALLER, ["#"], "To create a new account, press 1", ["3", "*", "12"]),
    "pin": (NEW_CALLER, ["123456"], "Please enter your 4-digit PIN.", ["123", "12345", "*"]),
    "register_member_id": (NEW_CALLER, REGISTER, "enter your 6-digit member ID", ["12345", "1234567", "*"]),
    "register_create_pin": (NEW_CALLER, [*REGISTER, "654321"], "create a 4-digit PIN", ["123", "12345", "*12"]),
    "register_confirm_pin": (NEW_CALLER, [*REGISTER, "654321", "3971"], "same PIN again", ["397", "39711", "*"]),
    "registration_code": (NEW_CALLER, [*REGISTER, "654321", "3971", "3971"], "To hear the code again", ["3", "12"]),
    "menu": (None, ["3971"], "Main menu", ["6", "8", "12"]),
    "balance": (None, ["3971", "1"], "Your balance is", ["3", "11"]),
    "send_amount": (None, ["3971", "2"], "whole dollars, then press pound", ["12345", "1*2"]),
    "send_recipient": (None, ["3971", "2", "25"], "6-digit code of the person", ["12345", "1234567"]),
    "send_confirm": (None, ["3971", "2", "25", "246810"], "To confirm, press 1", ["3", "12"]),
    "send_code": (None, ["3971", "2", "25", "246810", "1"], "To hear the code again", ["3", "12"]),
    "history": (None, ["3971", "4"], "added to your account", ["3", "12"]),
    "change_pin": (None, ["3971", "5"], "enter your current PIN", ["123", "12345"]),
    "change_pin_new": (None, ["3971", "5", "3971"], "enter your new 4-digit PIN", ["123", "12345"]),
    "change_pin_confirm": (None, ["3971", "5", "3971", "4682"], "new PIN again", ["123", "12345"]),
}
HOSTILE = ["9" * 10_000, "١٢٣٤", "１２３４５６", "abcd", "12a4", "\x00\x01", "DROP TABLE", "\u202e1234"]
# Where an empty entry (silence, or a lone "#") leads at once, to a one-key choice.
LEADS_ON = {"entry": "To enter your PIN, press 1", "member_id": "To create a new account, press 1"}
SIGNED_IN = [
    name
    for name in PROMPTS
    if name
    not in (
        "entry",
        "home_options",
        "member_id",
        "new_or_member_id",
        "pin",
        "register_member_id",
        "register_create_pin",
        "register_confirm_pin",
    )
]
# Signed in, leaving these for the main menu says what did not happen.
ABANDONED = {
    "send_amount": "No money was sent.",
    "send_recipient": "No money was sent.",
    "send_confirm": "No money was sent.",
    "change_pin": "Your PIN was not changed.",
    "change_pin_new": "Your PIN was not changed.",
    "change_pin_confirm": "Your PIN was not changed.",
}
ASKS_AGAIN = [name for name in PROMPTS if name not in LEADS_ON]
# Reached by an empty entry, which counts toward the three silences there too.
CHOICES = ("home_options", "new_or_member_id")


def wrong_entries():
    for name, (_, _, _, wrong) in PROMPTS.items():
        for keys in wrong:
            yield pytest.param(name, keys, id=f"{name}-{keys}")


@pytest.mark.parametrize("step_name", ASKS_AGAIN)
def test_it_asks_again_after_silence(at, step_name):
    phone = at(step_name)
    heard = PROMPTS[step_name][2]

    answer = phone.silence()
    assert "You did not press a key." in answer.text
    assert heard in answer.text
    assert not answer.hangs_up


@pytest.mark.parametrize("step_name", LEADS_ON)
@pytest.mark.parametrize("pound", "abcd")
def test_an_empty_entry_at_an_entry_prompt_leads_at_once_to_a_one_key_choice(at, step_name, pound):
    phone = at(step_name)
    phone.pound = pound

    for answer in (phone.press("#"),):
        assert LEADS_ON[step_name] in answer.text
        assert answer.gather.get("numDigits") == "1"
        assert "did not press" not in answer.text


@pytest.mark.parametrize("step_name", CHOICES)
def test_a_key_at_the_choice_resets_the_silences_that_led_there(at, step_name):
    phone = at(step_name)
    phone.press(PROMPTS[step_name][3][0])
    phone.silence()
    assert not phone.silence().hangs_up
    assert phone.silence().hangs_up


@pytest.mark.parametrize("step_name", LEADS_ON)
def test_silence_at_an_entry_prompt_leads_to_the_choice_and_still_counts(at, step_name):
    phone = at(step_name)
    assert LEADS_ON[step_name] in phone.silence().text
    assert "You did not press a key." in phone.silence().text

    answer = phone.silence()
    assert answer.hangs_up, "three silences in a row, across the prompt and its choice"
    assert "Goodbye" in answer.text


@pytest.mark.parametrize("step_name", [name for name in ASKS_AGAIN if name not in (*SIGNED_IN, *CHOICES)] + ["menu"])
def test_it_says_goodbye_after_three_silences_before_sign_in_and_at_the_main_menu(at, step_name):
    phone = at(step_name)
    phone.silence()
    phone.silence()

    answer = phone.silence()
    assert answer.hangs_up
    assert "Goodbye" in answer.text
    assert answer.gather is None


@pytest.mark.parametrize("step_name", [name for name in SIGNED_IN if name != "menu"])
def test_a_signed_in_caller_goes_back_to_the_main_menu_after_three_silences(at, step_name):
    phone = at(step_name)
    phone.silence()
    phone.silence()

    answer = phone.silence()
    assert not answer.hangs_up
    assert "Main menu" in answer.text
    assert ABANDONED.get(step_name, "Main menu") in answer.text
    assert CallSession.objects.get(call_sid=phone.call_sid).step == "menu"


@pytest.mark.parametrize("step_name", [name for name in ASKS_AGAIN if name not in CHOICES])
def test_it_counts_silences_in_a_row_only(at, step_name):
    phone = at(step_name)
    phone.silence()
    phone.silence()
    phone.press(PROMPTS[step_name][3][0])  # a key resets the silence count

    answer = phone.silence()
    assert not answer.hangs_up
    assert PROMPTS[step_name][2] in answer.text


@pytest.mark.parametrize("step_name, keys", list(wrong_entries()))
def test_it_refuses_wrong_keys(at, step_name, keys):
    phone = at(step_name)

    answer = phone.press(keys)
    assert PROMPTS[step_name][2] in answer.text
    assert not answer.hangs_up
    assert CallSession.objects.get(call_sid=phone.call_sid).invalid_entries == 1


@pytest.mark.parametrize("step_name", PROMPTS)
@pytest.mark.parametrize(
    "keys", HOSTILE, ids=["10k", "arabic", "fullwidth", "letters", "mixed", "control", "sql", "bidi"]
)
def test_it_survives_hostile_digits(at, step_name, keys):
    phone = at(step_name)
    before = (Account.objects.count(), Transfer.objects.count(), LedgerEntry.objects.count())

    answer = phone.press(keys)
    assert PROMPTS[step_name][2] in answer.text
    assert not answer.hangs_up
    assert (Account.objects.count(), Transfer.objects.count(), LedgerEntry.objects.count()) == before


@pytest.mark.parametrize("step_name", PROMPTS)
def test_it_treats_missing_digits_as_an_empty_entry(at, step_name):
    phone = at(step_name)

    answer = phone.twiml(phone.post(phone.last.gather.get("action")))
    assert LEADS_ON.get(step_name, "You did not press a key.") in answer.text


@pytest.mark.parametrize("step_name", [name for name in PROMPTS if name not in SIGNED_IN and name != "pin"] + ["menu"])
def test_it_says_goodbye_on_the_third_wrong_entry_before_sign_in_and_at_the_main_menu(at, step_name):
    phone = at(step_name)
    wrong = PROMPTS[step_name][3][0]
    phone.press(wrong)
    phone.press(wrong)

    answer = phone.press(wrong)
    assert answer.hangs_up
    assert "Goodbye" in answer.text


@pytest.mark.parametrize("step_name", [name for name in SIGNED_IN if name != "menu"])
def test_a_signed_in_caller_goes_back_to_the_main_menu_after_three_wrong_entries(at, step_name):
    phone = at(step_name)
    wrong = PROMPTS[step_name][3][0]
    phone.press(wrong)
    phone.press(wrong)

    answer = phone.press(wrong)
    assert not answer.hangs_up
    assert "Main menu" in answer.text
    assert ABANDONED.get(step_name, "Main menu") in answer.text


def test_it_asks_the_member_id_again_after_three_wrong_pin_entries(at):
    phone = at("pin")
    phone.press("12")
    phone.press("12")
    answer = phone.press("12")
    assert "A PIN has 4 digits" in answer.text
    assert "Please enter your 6-digit member ID" in answer.text
    assert not answer.hangs_up


def test_it_goes_back_to_the_menu_after_three_refused_amounts(at):
    phone = at("send_amount")
    phone.press("9999#")
    phone.press("9999#")
    answer = phone.press("9999#")
    assert "The most you can send at one time is 500 dollars." in answer.text
    assert "No money was sent." in answer.text
    assert "Main menu" in answer.text and not answer.hangs_up


def test_it_goes_back_to_the_menu_after_three_unknown_recipients(at):
    phone = at("send_recipient")
    phone.press("999999")
    phone.press("999998")

    answer = phone.press("999997")
    assert "could not find that recipient" in answer.text
    assert "No money was sent." in answer.text
    assert "Main menu" in answer.text
    assert not Transfer.objects.exists()


def test_double_zero_at_the_amount_is_an_amount_of_zero_refused_with_a_reason_not_help(at):
    phone = at("send_amount")
    answer = phone.press("00#")
    assert "at least 1 dollar" in answer.text
    assert "Enter the amount in whole dollars, then press pound. For example" not in answer.text
    call = CallSession.objects.get(call_sid=phone.call_sid)
    assert (call.refusals, call.invalid_entries) == (1, 0)


@pytest.mark.parametrize("step_name", PROMPTS)
def test_every_prompt_asks_for_exactly_its_keys(at, step_name):
    gather = at(step_name).last.gather
    assert gather.get("input") == "dtmf"
    assert gather.get("method") == "POST"
    assert gather.get("actionOnEmptyResult") == "true"
    assert gather.get("finishOnKey") == "#"
    assert gather.get("action").startswith(f"https://testserver/twilio/step/{step_name}?n=")


@pytest.mark.parametrize("step_name", PROMPTS)
def test_a_notice_is_inside_the_gather_on_every_re_prompt(at, step_name):
    phone = at(step_name)
    answers = [phone.press(PROMPTS[step_name][3][0])]
    if step_name not in LEADS_ON:
        answers.append(phone.silence())
    for answer in answers:
        gather = answer.gather
        heard_inside = " ".join("".join(say.itertext()) for say in gather.iter("Say"))
        assert heard_inside.split(".")[0] == answer.text.split(".")[0]
        assert answer.verbs[0] == "Gather", "nothing is said outside the <Gather>, where keys would be lost"
        assert gather[0].tag == "Say" and gather[1].tag == "Pause", "the notice, then a breath, inside"


@pytest.mark.parametrize("step_name", PROMPTS)
@pytest.mark.parametrize("pound", "abcd")
def test_a_pound_alone_is_an_empty_entry_however_twilio_delivers_it(at, step_name, pound):
    phone = at(step_name)
    phone.pound = pound
    answer = phone.press("#")
    assert LEADS_ON.get(step_name, "You did not press a key.") in answer.text
    assert not answer.hangs_up
