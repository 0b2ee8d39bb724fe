"""Keys that mean the same at every prompt (docs/CALL_FLOW.md): 0 help, * back to the main menu, and the
strike rules: refusals with a reason are no mistake, and a signed-in caller is not hung up on."""

from __future__ import annotations

import pytest

from accounts.models import Account, Transfer
from ivr.machine import LANGUAGE_MENU, MAIN_MENU, STEPS
from ivr.models import CallSession
from ivr.steps.entry import Language
from tests.ivr.test_prompts import ABANDONED, PROMPTS, SIGNED_IN

pytestmark = pytest.mark.django_db

STAFF = "+12025550100"
SERVICE = "+12025550199"


def call_state(phone) -> CallSession:
    return CallSession.objects.get(call_sid=phone.call_sid)


def test_the_machine_knows_its_own_steps():
    import ivr.steps  # noqa: F401 - registers them

    assert MAIN_MENU in STEPS and LANGUAGE_MENU in STEPS
    # The language menus say every option in its own language: that is their help.
    assert all(str(type(step).help) or isinstance(step, Language) for step in STEPS.values()), "every prompt has help"


@pytest.mark.parametrize("step_name", PROMPTS)
def test_0_is_help_at_every_prompt_and_never_a_strike(at, step_name):
    phone = at(step_name)
    heard = PROMPTS[step_name][2]
    for _ in range(4):
        answer = phone.press("0")
        assert "If you need more help, please ask staff." in answer.text
        assert heard in answer.text, "then the prompt again"
        assert not answer.hangs_up
    call = call_state(phone)
    assert (call.step, call.invalid_entries, call.timeouts) == (step_name, 0, 0)
    assert str(type(STEPS[step_name]).help) in answer.text
    if step_name in SIGNED_IN and step_name != "menu":
        several = STEPS[step_name].num_digits != 1 and STEPS[step_name].finish_on_key == "#"
        back = "press star, then pound." if several else "press star."
        assert f"To go back to the main menu, {back}" in answer.text


def test_help_at_a_multi_digit_prompt_is_a_lone_0_posted_after_the_timeout_or_with_pound(at):
    phone = at("member_id")
    assert "Enter the 6 digits of your member ID." in phone.press("0#").text


@pytest.mark.parametrize("step_name", [name for name in SIGNED_IN if name != "menu"])
def test_star_at_a_signed_in_prompt_goes_back_to_the_main_menu_saying_what_did_not_happen(at, step_name):
    phone = at(step_name)
    answer = phone.press("*")
    assert "Main menu" in answer.text
    assert ABANDONED.get(step_name, "Main menu") in answer.text
    call = call_state(phone)
    assert (call.step, call.scratch, call.invalid_entries) == ("menu", {}, 0)
    assert Transfer.objects.count() == (step_name == "send_code"), "only a confirmed transfer was made"


def test_star_at_the_main_menu_says_the_menu_again_without_a_strike(at):
    phone = at("menu")
    answer = phone.press("*")
    assert "Main menu" in answer.text and call_state(phone).invalid_entries == 0


def test_star_before_sign_in_is_a_wrong_key(at):
    phone = at("member_id")
    phone.press("*")
    assert call_state(phone).invalid_entries == 1


def test_a_new_caller_gets_five_weak_pins_before_the_call_ends(at):
    phone = at("register_create_pin")
    for weak in ("1111", "1234", "2000", "1212"):
        answer = phone.press(weak)
        assert "too easy to guess" in answer.text and not answer.hangs_up
    assert call_state(phone).invalid_entries == 0
    answer = phone.press("2580")
    assert answer.hangs_up
    assert "too many tries" in answer.text
    assert not Account.objects.filter(member_id="654321").exists()


def test_a_taken_member_id_at_registration_is_a_refusal_not_a_strike(at, account):
    phone = at("register_member_id")
    for _ in range(4):
        assert not phone.press(account.member_id).hangs_up
    assert phone.press(account.member_id).hangs_up


def test_a_signed_in_caller_goes_back_to_the_menu_after_three_weak_new_pins(at, account):
    phone = at("change_pin_new")
    phone.press("1111")
    phone.press("1234")
    answer = phone.press("2000")
    assert not answer.hangs_up
    assert "Your PIN was not changed." in answer.text and "Main menu" in answer.text
    assert call_state(phone).signed_in


def test_three_mismatched_new_pins_go_back_to_the_menu_signed_in(at, account):
    phone = at("change_pin_new")
    for _ in range(3):
        phone.press("4682")
        answer = phone.press("4683")
    assert not answer.hangs_up
    assert "Your PIN was not changed." in answer.text and "Main menu" in answer.text
    account.refresh_from_db()
    assert account.pin_hash == Account.objects.get(pk=account.pk).pin_hash


def test_refused_at_the_main_menu_is_never_a_goodbye(make_phone, account):
    Account.objects.filter(pk=account.pk).update(status="pending", verified_at=None)
    phone = make_phone(account.home_number)
    phone.dial()
    phone.press("3971")
    for _ in range(6):
        answer = phone.press("2")
        assert "not verified yet" in answer.text and not answer.hangs_up


# Staff ------------------------------------------------------------------------------


@pytest.fixture
def staff_line(settings):
    settings.STAFF_PHONE_NUMBER = STAFF
    settings.STAFF_CALL_MINUTES = 10


def dial_staff(phone):
    offer = phone.press("0")
    assert "To talk to staff, press 0 again." in offer.text
    return phone.twiml(phone.post(phone.last.gather.get("action"), {"Digits": "0", "To": SERVICE}))


@pytest.mark.parametrize("step_name", ["menu", "member_id", "send_amount"])
def test_a_second_0_dials_the_staff_line_with_the_services_number_and_a_time_limit(at, staff_line, step_name):
    phone = at(step_name)
    answer = dial_staff(phone)
    dial = answer.root.find("Dial")
    assert dial is not None and answer.verbs == ["Say", "Dial"]
    assert "Connecting you to staff." in answer.text
    assert (dial.text, dial.get("callerId"), dial.get("timeLimit"), dial.get("method")) == (
        STAFF,
        SERVICE,
        "600",
        "POST",
    )
    assert dial.get("action").startswith("https://testserver/twilio/staff-call?n=")


def test_a_0_long_after_the_help_is_help_again_not_a_call(at, staff_line):
    phone = at("menu")
    phone.press("0")
    phone.press("1")  # the balance
    assert phone.press("0").root.find("Dial") is None


def test_without_a_staff_line_a_second_0_is_help_again(at):
    phone = at("menu")
    phone.press("0")
    answer = phone.press("0")
    assert answer.root.find("Dial") is None and "please ask staff" in answer.text


@pytest.mark.parametrize(
    "status, heard",
    [
        ("completed", "Your call with staff has ended."),
        ("busy", "Staff are busy right now."),
        ("no-answer", "Nobody from staff could answer right now."),
        ("canceled", "Nobody from staff could answer right now."),
        ("failed", "We could not reach staff right now."),
        ("something-new", "We could not reach staff right now."),
        ("", "We could not reach staff right now."),
    ],
)
def test_every_dial_call_status_is_answered_calmly_and_the_caller_is_back_at_their_prompt(
    at, staff_line, status, heard
):
    phone = at("menu")
    action = dial_staff(phone).root.find("Dial").get("action")
    answer = phone.twiml(phone.post(action, {"DialCallStatus": status}))
    assert heard in answer.text and "Main menu" in answer.text
    assert not answer.hangs_up
    retry = phone.twiml(phone.post(action, {"DialCallStatus": status}))
    assert retry.gather.get("action") == answer.gather.get("action"), "Twilio's retry hears the same, nothing new"


def test_a_retried_second_0_dials_once_more_the_same_way(at, staff_line):
    phone = at("menu")
    phone.press("0")
    action = phone.last.gather.get("action")
    first = phone.twiml(phone.post(action, {"Digits": "0", "To": SERVICE}))
    retry = phone.twiml(phone.post(action, {"Digits": "0", "To": SERVICE}))
    assert first.raw == retry.raw


def test_a_forged_or_stale_staff_call_result_starts_over(at, staff_line):
    phone = at("menu")
    answer = phone.twiml(phone.post("/twilio/staff-call?n=99", {"DialCallStatus": "completed"}))
    assert "Let's start again." in answer.text
    assert not call_state(phone).signed_in


def test_the_lock_offers_staff_too(make_phone, account, staff_line):
    from datetime import timedelta

    from django.utils import timezone

    Account.objects.filter(pk=account.pk).update(home_locked_until=timezone.now() + timedelta(minutes=15))
    phone = make_phone(account.home_number)
    phone.dial()
    assert "For help, press 0." in phone.press("3971").text
    help_ = phone.press("0")
    assert "staff can open it" in help_.text and "locked for 15 minutes" in help_.text
    assert (
        phone.twiml(phone.post(phone.last.gather.get("action"), {"Digits": "0", "To": SERVICE})).root.find("Dial")
        is not None
    )
