"""The call under each way Twilio may treat a lone "#" (its docs disagree), in the app and through the simulator.

(a) posted at once as Digits="" with FinishedOnKey="#"; (b) posted at once as Digits="" with no
FinishedOnKey; (c) ignored until the timeout, then Digits=""; (d) the <Gather> ends with no request
and the next verb (our <Redirect>) runs. A new caller reaches registration, and a home-number caller
reaches member-ID sign-in ("other options"), under every one of them.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from accounts.models import Account
from phone.call import SimulatedCall, scripted
from phone.transport import InProcess

pytestmark = pytest.mark.django_db

BEHAVIOURS = "abcd"
NEW_CALLER = "+12027770000"
# Waited after the lone "#", by behaviour: only (c) makes the caller wait for Twilio's timeout.
WAIT_AFTER_POUND = {"a": 0, "b": 0, "c": None, "d": 0}


class Recorded(InProcess):
    """In process, keeping every request's parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, str]] = []

    def post(self, signed_url, params, headers):
        self.sent.append(dict(params))
        return super().post(signed_url, params, headers)


def simulated(caller: str, pound: str, **kwargs) -> SimulatedCall:
    return SimulatedCall(
        base_url=settings.BASE_URL,
        auth_token=settings.TWILIO_AUTH_TOKEN,
        transport=Recorded(),
        caller=caller,
        pound=pound,
        **kwargs,
    )


def heard(call: SimulatedCall) -> str:
    return " ".join(event.text for event in call.transcript if event.kind == "say")


def finished_on_key_sent(call: SimulatedCall) -> bool:
    return any("FinishedOnKey" in params for params in call.transport.sent)


@pytest.mark.parametrize("pound", BEHAVIOURS)
def test_a_new_caller_registers_under_every_lone_pound_behaviour(pound):
    call = simulated(NEW_CALLER, pound)
    call.place(scripted(["#", "1", "654321", "4682", "4682", "2", "1"]))

    assert "Your registration code is:" in heard(call)
    assert "Your balance is 0 dollars." in heard(call)
    account = Account.objects.get(member_id="654321")
    assert (account.status, account.home_number) == ("pending", NEW_CALLER)
    wait = call.totals_before("To create a new account, press 1").wait_seconds
    assert wait == (WAIT_AFTER_POUND[pound] if WAIT_AFTER_POUND[pound] is not None else settings.IVR_GATHER_TIMEOUT)
    assert finished_on_key_sent(call) == (pound == "a"), "only (a) ever sends FinishedOnKey"


@pytest.mark.parametrize("pound", BEHAVIOURS)
def test_a_home_number_caller_reaches_member_id_sign_in_under_every_lone_pound_behaviour(pound, account):
    other = Account.objects.create(
        member_id="222222", pin_hash=account.pin_hash, status="active", verified_at=account.verified_at
    )
    call = simulated(account.home_number, pound)
    call.place(scripted(["#", "2", other.member_id, "3971", "1"]))

    said = heard(call)
    assert "For other options, press pound." in said
    assert "To enter a member ID, press 2." in said
    assert "Your balance is 0 dollars." in said, "signed in as the other member, not the home number's"
    before = call.totals_before("To enter a member ID")
    assert before.wait_seconds == (settings.IVR_GATHER_TIMEOUT if pound == "c" else 0)


@pytest.mark.parametrize("pound", BEHAVIOURS)
def test_a_home_number_caller_registers_another_account_under_every_lone_pound_behaviour(pound, account):
    call = simulated(account.home_number, pound)
    call.place(scripted(["#", "3", "654321", "4682", "4682", "2"]))
    assert "Your account is created." in heard(call)
    assert Account.objects.get(member_id="654321").home_number is None, "the number is already someone's home"


@pytest.mark.parametrize("pound", BEHAVIOURS)
def test_a_lone_pound_at_the_amount_is_an_empty_entry_under_every_behaviour(pound, account, recipient):
    call = simulated(account.home_number, pound)
    call.place(scripted(["3971", "2", "#", "25#", recipient.code, "1", "2"]))
    said = heard(call)
    assert "You did not press a key." in said
    assert "Your transfer of 25 dollars to Jane Doe is submitted." in said


@pytest.mark.parametrize("pound", BEHAVIOURS)
def test_three_lone_pounds_end_a_silent_callers_call_like_three_silences(pound):
    call = simulated(NEW_CALLER, pound)
    call.place(scripted(["#", "#", "#", "1"]))
    assert call.ended_by == "server"
    assert "You did not press a key. Please call again when you are ready. Goodbye." in heard(call)
    assert not Account.objects.exists()


@pytest.mark.parametrize("pound", BEHAVIOURS)
def test_the_test_phone_plays_each_behaviour_too(make_phone, pound):
    phone = make_phone(NEW_CALLER)
    phone.pound = pound
    phone.dial()
    assert "To create a new account, press 1." in phone.press("#").text
    assert "To create an account, enter your 6-digit member ID." in phone.press("1").text
