"""The phone simulator follows Twilio's documented behaviour, not our server's habits.

A fake transport answers canned TwiML, so these tests hold whatever the
server's prompts say today; they check what the simulator posts, what it
records and what it counts on its virtual clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import CommandError, call_command
from twilio.request_validator import RequestValidator

from phone.call import APPLICATION_ERROR, POUND_BEHAVIOURS, Press, Prompt, SimulatedCall, scripted
from phone.management.commands import call as call_command_module
from phone.transport import Answer, InProcess, Transport
from phone.twiml import Audio, CallFailed

BASE = "https://ivr.example"
TOKEN = "simulator-test-token"


def twiml(inner: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'


GOODBYE = twiml("<Say>Goodbye.</Say><Hangup/>")
APOLOGY = twiml("<Say>We are sorry. Please call again later.</Say><Hangup/>")


@dataclass
class Posted:
    url: str
    params: dict[str, str]
    headers: dict[str, str]

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")


class Fake(Transport):
    """Canned answers by path (query included): TwiML, an Answer, an exception to raise, or a list of them in turn."""

    def __init__(self, pages: dict[str, object]) -> None:
        self.pages = {path: list(reply) if isinstance(reply, list) else [reply] for path, reply in pages.items()}
        self.requests: list[Posted] = []

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        posted = Posted(signed_url, params, headers)
        self.requests.append(posted)
        if posted.path == "/twilio/status":
            return Answer(200, "", 1.0)
        replies = self.pages.get(posted.path, [twiml("<Say>Not found.</Say><Hangup/>")])
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, BaseException):
            raise reply
        return reply if isinstance(reply, Answer) else Answer(200, str(reply), 1.0)

    def to(self, path: str) -> list[dict[str, str]]:
        return [posted.params for posted in self.requests if posted.path == path]


def place(pages: dict[str, object], keys, **options) -> tuple[SimulatedCall, Fake]:
    fake = Fake(pages)
    call = SimulatedCall(BASE, TOKEN, fake, **options)
    call.place(keys if callable(keys) else scripted(keys))
    return call, fake


def entry(attributes: str, inside: str = "<Say>Enter your PIN.</Say>") -> dict[str, object]:
    """A voice URL with one <Gather>, its action, and the <Redirect> after it."""
    return {
        "/twilio/voice": twiml(f'<Gather action="/step?n=1" {attributes}>{inside}</Gather><Redirect>/again</Redirect>'),
        "/step?n=1": GOODBYE,
        "/again": GOODBYE,
    }


def waits(call: SimulatedCall) -> list[float]:
    return [event.seconds for event in call.transcript if event.kind == "wait"]


def said(call: SimulatedCall) -> list[str]:
    return [event.text for event in call.transcript if event.kind == "say"]


# <Gather>: what is posted, and when ------------------------------------------------


def keys_note(call: SimulatedCall) -> str:
    [event] = [event for event in call.transcript if event.kind == "keys"]
    return event.note


def gathered(fake: Fake) -> list[dict[str, str]]:
    """The entries posted to <Gather> actions, in order."""
    return [posted.params for posted in fake.requests if "Digits" in posted.params]


PIN_ENTRY = 'numDigits="4" finishOnKey="#" timeout="8"'
EMPTY_RESULT = ' actionOnEmptyResult="true"'


@pytest.mark.parametrize("pound", ["a", "b", "c", "d"])
def test_it_posts_silence_after_the_timeout_only_with_action_on_empty_result(pound):
    call, fake = place(entry(PIN_ENTRY + EMPTY_RESULT), [""], pound=pound)
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == ""
    # The timeout ended it: (a) says so with an empty FinishedOnKey, the others send none.
    assert posted.get("FinishedOnKey") == ("" if pound == "a" else None)
    assert waits(call) == [8] and fake.to("/again") == []
    assert call.totals.entries == 0 and call.totals.silence_seconds == 8 and call.totals.wait_seconds == 0

    call, fake = place(entry(PIN_ENTRY), [""], pound=pound)
    assert fake.to("/step?n=1") == [] and len(fake.to("/again")) == 1
    assert waits(call) == [8]


# A finishOnKey pressed before any digit: the four ways Twilio may treat it (docs/TWILIO.md).


@pytest.mark.parametrize("empty_result", [True, False], ids=["actionOnEmptyResult", "without"])
def test_it_posts_a_lone_pound_at_once_with_finished_on_key_under_a(empty_result):
    call, fake = place(entry(PIN_ENTRY + (EMPTY_RESULT if empty_result else "")), ["#"], pound="a")
    if empty_result:
        [posted] = fake.to("/step?n=1")
        assert posted["Digits"] == "" and posted["FinishedOnKey"] == "#" and posted["msg"] == "Gather End"
        assert fake.to("/again") == []
        assert keys_note(call) == "(a) posts Digits='' FinishedOnKey='#' at once"
    else:
        # The older <Gather> page: no request, the next verb runs.
        assert fake.to("/step?n=1") == [] and len(fake.to("/again")) == 1
        assert keys_note(call) == "(a) no request without actionOnEmptyResult: the next verb runs"
    assert waits(call) == [0]
    assert call.totals.entries == 1 and call.totals.wait_seconds == 0 and call.totals.silence_seconds == 0


@pytest.mark.parametrize("empty_result", [True, False], ids=["actionOnEmptyResult", "without"])
def test_it_posts_a_lone_pound_at_once_without_finished_on_key_under_b(empty_result):
    call, fake = place(entry(PIN_ENTRY + (EMPTY_RESULT if empty_result else "")), ["#"], pound="b")
    if empty_result:
        [posted] = fake.to("/step?n=1")
        assert posted["Digits"] == "" and "FinishedOnKey" not in posted
        assert fake.to("/again") == []
        assert keys_note(call) == "(b) posts Digits='' at once, no FinishedOnKey"
    else:
        assert fake.to("/step?n=1") == [] and len(fake.to("/again")) == 1
        assert keys_note(call) == "(b) no request without actionOnEmptyResult: the next verb runs"
    assert waits(call) == [0]
    assert call.totals.entries == 1 and call.totals.wait_seconds == 0


def test_it_plays_b_by_default():
    call, fake = place(entry(PIN_ENTRY + EMPTY_RESULT), ["#"])
    assert call.pound == "b"
    assert "FinishedOnKey" not in fake.to("/step?n=1")[0]


@pytest.mark.parametrize("empty_result", [True, False], ids=["actionOnEmptyResult", "without"])
def test_it_ignores_a_lone_pound_and_makes_the_caller_wait_for_the_timeout_under_c(empty_result):
    call, fake = place(entry(PIN_ENTRY + (EMPTY_RESULT if empty_result else "")), ["#"], pound="c")
    if empty_result:
        # As silence would: Digits="" once the timeout runs out.
        [posted] = fake.to("/step?n=1")
        assert posted["Digits"] == "" and "FinishedOnKey" not in posted
        assert fake.to("/again") == []
        assert keys_note(call) == "(c) # ignored: Twilio waits for the timeout, then posts Digits=''"
    else:
        assert fake.to("/step?n=1") == [] and len(fake.to("/again")) == 1
        assert keys_note(call) == "(c) # ignored: Twilio waits for the timeout, then the next verb runs"
    [wait] = [event for event in call.transcript if event.kind == "wait"]
    assert wait.seconds == 8 and wait.flagged
    assert wait.note == "'#' pressed first is ignored (c): the caller waits 8 s for the timeout"
    # The caller pressed a key: an entry, and the seconds after it are a wait, not silence.
    assert call.totals.entries == 1 and call.totals.wait_seconds == 8 and call.totals.silence_seconds == 0
    assert call.totals.seconds == pytest.approx(8 + 3 * 0.4 + 0.4)  # the wait, "Enter your PIN." and "Goodbye."


@pytest.mark.parametrize("empty_result", [True, False], ids=["actionOnEmptyResult", "without"])
def test_it_ends_the_gather_with_no_request_and_runs_the_next_verb_under_d(empty_result):
    call, fake = place(entry(PIN_ENTRY + (EMPTY_RESULT if empty_result else "")), ["#"], pound="d")
    assert fake.to("/step?n=1") == []
    [redirected] = fake.to("/again")
    assert "Digits" not in redirected and "FinishedOnKey" not in redirected
    assert waits(call) == [0]
    even = ", even with actionOnEmptyResult" if empty_result else ""
    assert keys_note(call) == f"(d) no request: the next verb runs{even}"
    assert call.totals.entries == 1 and call.totals.wait_seconds == 0


@pytest.mark.parametrize("pound", ["a", "b", "c", "d"])
@pytest.mark.parametrize("empty_result", [True, False], ids=["actionOnEmptyResult", "without"])
def test_it_treats_a_lone_star_finish_on_key_as_it_treats_a_lone_pound(pound, empty_result):
    attributes = PIN_ENTRY + (EMPTY_RESULT if empty_result else "")
    star, star_fake = place(entry(attributes.replace('"#"', '"*"')), ["*"], pound=pound)
    pound_call, pound_fake = place(entry(attributes), ["#"], pound=pound)
    assert [posted.path for posted in star_fake.requests] == [posted.path for posted in pound_fake.requests]
    # The same entries, the call's own CallSid aside, with "*" wherever the other said "#" (FinishedOnKey).
    assert [{**params, "CallSid": ""} for params in gathered(star_fake)] == [
        {**params, "CallSid": "", **({"FinishedOnKey": "*"} if "FinishedOnKey" in params else {})}
        for params in gathered(pound_fake)
    ]
    assert waits(star) == waits(pound_call)
    assert keys_note(star) == keys_note(pound_call).replace("#", "*")
    assert star.totals == pound_call.totals


@pytest.mark.parametrize("pound", ["a", "b", "c", "d"])
def test_it_posts_at_once_on_finish_on_key_after_digits_and_leaves_the_key_out_of_digits(pound):
    call, fake = place(entry('finishOnKey="#" timeout="8"'), ["123#45"], pound=pound)
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "123"
    assert posted.get("FinishedOnKey") == ("#" if pound == "a" else None)
    assert waits(call) == [0]
    assert "'45' came after the entry ended: lost" in keys_note(call)


@pytest.mark.parametrize("pound", ["a", "b", "d"])
def test_it_loses_the_keys_typed_after_a_lone_pound_that_ended_the_gather(pound):
    call, fake = place(entry(PIN_ENTRY + EMPTY_RESULT), ["#12"], pound=pound)
    assert [params["Digits"] for params in gathered(fake)] == ([] if pound == "d" else [""])
    assert "'12' came after the entry ended: lost" in keys_note(call)


def test_it_keeps_listening_after_a_lone_pound_it_ignores_under_c():
    # Twilio ignores the first # and still hears the keys after it; the second # ends the entry.
    call, fake = place(entry('finishOnKey="#" timeout="8"'), ["#12#"], pound="c")
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "12" and "FinishedOnKey" not in posted
    assert waits(call) == [0]
    assert keys_note(call) == "(c) # ignored: Twilio keeps listening; posts Digits='12'"


@pytest.mark.parametrize("pound", ["a", "b", "c", "d"])
def test_it_sends_finished_on_key_only_under_a(pound):
    pages = {
        "/twilio/voice": twiml(f'<Gather action="/a" {PIN_ENTRY}><Say>PIN?</Say></Gather>'),  # numDigits reached
        "/a": twiml('<Gather action="/b" timeout="6"><Say>Amount?</Say></Gather>'),  # ended by #
        "/b": twiml('<Gather action="/c" timeout="6"><Say>Note?</Say></Gather>'),  # partial, after the timeout
        "/c": twiml(f'<Gather action="/d" {PIN_ENTRY}{EMPTY_RESULT}><Say>Again?</Say></Gather>'),  # silence
        "/d": twiml(
            f'<Gather action="/e" {PIN_ENTRY}{EMPTY_RESULT}><Say>Last?</Say></Gather><Redirect>/e</Redirect>'
        ),  # a lone #
        "/e": GOODBYE,
    }
    _call, fake = place(pages, ["3971", "25#", "7", "", "#"], pound=pound)
    lone_pound = [] if pound == "d" else [""]  # (d) posts nothing for it
    assert [params["Digits"] for params in gathered(fake)] == ["3971", "25", "7", "", *lone_pound]
    if pound == "a":
        assert [params["FinishedOnKey"] for params in gathered(fake)] == ["", "#", "", "", "#"]
    else:
        assert all("FinishedOnKey" not in posted.params for posted in fake.requests)


def test_it_refuses_an_unknown_pound_behaviour():
    with pytest.raises(ValueError, match="pound='e'"):
        SimulatedCall(BASE, TOKEN, Fake({}), pound="e")


@pytest.mark.parametrize("attributes", ['numDigits="4" timeout="8"', 'finishOnKey="" timeout="8"', 'timeout="8"'])
def test_it_posts_a_partial_entry_only_after_the_timeout(attributes):
    call, fake = place(entry(attributes), ["39"])
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "39" and "FinishedOnKey" not in posted
    assert waits(call) == [8]
    assert call.totals.wait_seconds == 8 and call.totals.entries == 1


def test_it_posts_at_once_when_num_digits_is_reached():
    call, fake = place(entry('numDigits="4" timeout="8"'), ["39715"])
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "3971"
    assert waits(call) == [0]
    assert "'5' came after the entry ended" in keys_note(call)


def test_it_takes_pound_as_a_key_when_finish_on_key_is_empty_and_flags_the_wait_after_an_offered_key():
    call, fake = place(
        entry(
            'numDigits="4" finishOnKey="" timeout="8"', "<Say>Enter your PIN. To create an account, press pound.</Say>"
        ),
        ["#"],
    )
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "#" and "FinishedOnKey" not in posted
    [wait] = [event for event in call.transcript if event.kind == "wait"]
    assert wait.seconds == 8 and wait.flagged
    assert "'#' is offered" in wait.note
    assert call.prompts[0].offered == ["#"]


def test_it_uses_twilios_defaults_for_a_bare_gather():
    call, fake = place({"/twilio/voice": [twiml("<Gather><Say>Enter.</Say></Gather>"), GOODBYE]}, ["12"])
    prompt = call.prompts[0]
    assert (prompt.num_digits, prompt.finish_on_key, prompt.timeout) == (None, "#", 5)
    assert prompt.action == BASE + "/twilio/voice" and not prompt.action_on_empty_result
    # The action is the document's own URL; an entry without # waits the default 5 s.
    assert fake.to("/twilio/voice")[1]["Digits"] == "12"
    assert waits(call) == [5]


def test_it_resolves_a_relative_action_against_the_document_url():
    pages = {
        "/twilio/voice": twiml("<Redirect>/twilio/step/menu?n=1</Redirect>"),
        "/twilio/step/menu?n=1": twiml('<Gather action="pick?n=2" numDigits="1"><Say>Menu.</Say></Gather>'),
        "/twilio/step/pick?n=2": GOODBYE,
    }
    _call, fake = place(pages, ["1"])
    assert fake.to("/twilio/step/pick?n=2")[0]["Digits"] == "1"


def test_it_signs_every_request_as_twilio_does():
    _call, fake = place(entry('numDigits="4"'), ["3971"], stir="TN-Validation-Passed-A")
    validator = RequestValidator(TOKEN)
    assert len(fake.requests) == 3  # voice, action, status callback
    for posted in fake.requests:
        assert validator.validate(posted.url, posted.params, posted.headers["X-Twilio-Signature"])


# What the caller hears, and the virtual clock ----------------------------------------------


def test_it_renders_ssml_children_and_their_tails_and_times_the_breaks():
    say = (
        '<Say voice="Polly.Joanna" language="en-US">Your code is<break time="700ms"/>'
        '<say-as interpret-as="digits">4 7</say-as><break strength="strong"/>then '
        '<prosody rate="50%">slow words</prosody> and <sub alias="M Y">MY</sub> done.</Say>'
    )
    call, _fake = place({"/twilio/voice": twiml(say + "<Hangup/>")}, [])
    [event] = [event for event in call.transcript if event.kind == "say"]
    assert event.text == "Your code is 4 7 then slow words and M Y done."
    assert event.shown == "Your code is [700 ms] 4 7 [750 ms] then slow words and M Y done."
    assert (event.language, event.voice) == ("en-US", "Polly.Joanna")
    # 12 words at 0.4 s, two of them at half speed (+0.8 s), and 1.45 s of breaks.
    assert event.seconds == pytest.approx(12 * 0.4 + 0.8 + 0.7 + 0.75)
    assert call.totals.words == 12


def test_it_counts_pauses_and_loops():
    call, _fake = place(
        {"/twilio/voice": twiml('<Pause/><Pause length="3"/><Say loop="2">One two.</Say><Hangup/>')}, []
    )
    assert [event.seconds for event in call.transcript if event.kind == "pause"] == [1, 3]
    assert call.totals.words == 4
    assert call.totals.seconds == pytest.approx(1 + 3 + 4 * 0.4)


def test_it_records_each_wait_and_totals_the_call():
    pages = {
        "/twilio/voice": twiml(
            '<Gather action="/a" numDigits="4" timeout="8"><Say>PIN?</Say></Gather><Redirect>/x</Redirect>'
        ),
        "/a": twiml(
            '<Gather action="/b" finishOnKey="#" timeout="6"><Say>Amount?</Say></Gather><Redirect>/x</Redirect>'
        ),
        "/b": twiml(
            '<Gather action="/c" numDigits="1" timeout="7"><Say>Confirm?</Say></Gather><Redirect>/d</Redirect>'
        ),
        "/d": twiml("<Say>Your balance is 5 dollars.</Say><Hangup/>"),
    }
    call, _fake = place(pages, ["3971", "25", ""])
    assert [event.text for event in call.transcript if event.kind == "wait"] == ["0 s", "6 s", "7 s"]
    assert call.totals.entries == 2
    assert call.totals.wait_seconds == 6 and call.totals.silence_seconds == 7
    before = call.totals_before("balance|saldo")
    assert before is not None
    assert (before.entries, before.words, before.wait_seconds) == (2, 3, 6)
    assert before.seconds == pytest.approx(3 * 0.4 + 6 + 7)
    assert call.totals.words == 8
    assert call.totals_before("nothing like this") is None


# Keys during audio: barge-in inside a <Gather>, lost outside it -------------------------


NOTICE = "<Say>That PIN is not correct.</Say>"
PROMPT = "<Pause/><Say>Please enter your PIN.</Say>"


def test_it_stops_the_gathers_audio_at_the_first_key():
    pages = entry('numDigits="4" timeout="8"', NOTICE + PROMPT)
    call, fake = place(pages, [Press.at_once("3971")])
    assert fake.to("/step?n=1")[0]["Digits"] == "3971"
    assert said(call) == ["Goodbye."]
    [interrupted] = [event for event in call.transcript if event.kind == "interrupted"]
    assert "That PIN is not correct." in interrupted.text and "Please enter your PIN." in interrupted.text
    assert waits(call)[0] == 0
    assert call.totals_before("Goodbye").words == 0


def test_it_lets_the_caller_type_after_some_of_the_gathers_audio():
    call, fake = place(entry('numDigits="4" timeout="8"', NOTICE + PROMPT), [Press("3971", after_says=1)])
    assert said(call)[0] == "That PIN is not correct."
    assert "Please enter your PIN." not in said(call)
    assert fake.to("/step?n=1")[0]["Digits"] == "3971"


def test_it_loses_keys_typed_during_a_say_outside_the_gather():
    pages = entry('numDigits="4" timeout="8"', PROMPT)
    pages["/twilio/voice"] = pages["/twilio/voice"].replace("<Response>", "<Response>" + NOTICE)
    call, fake = place(pages, [Press.at_once("3971")])
    assert fake.to("/step?n=1") == []
    assert len(fake.to("/again")) == 1
    [lost] = [event for event in call.transcript if event.kind == "lost"]
    assert lost.text == "3971" and "That PIN is not correct." in lost.note
    # The caller believes they answered: the <Gather> hears silence, its audio plays in full.
    assert "Please enter your PIN." in said(call)
    assert call.totals.keys_lost == 4 and call.totals.entries == 0 and call.totals.silence_seconds == 8


def test_it_loses_keys_typed_during_a_pause_outside_the_gather():
    pages = entry('numDigits="4" timeout="8"')
    pages["/twilio/voice"] = pages["/twilio/voice"].replace("<Response>", "<Response>" + NOTICE + "<Pause/>")
    call, fake = place(pages, [Press("3971", after_says=1)])
    assert fake.to("/step?n=1") == [] and call.totals.keys_lost == 4


def test_it_collects_keys_typed_once_the_notices_outside_the_gather_are_over():
    pages = entry('numDigits="4" timeout="8"', PROMPT)
    pages["/twilio/voice"] = pages["/twilio/voice"].replace("<Response>", "<Response>" + NOTICE)
    call, fake = place(pages, [Press("3971", after_says=1)])
    assert fake.to("/step?n=1")[0]["Digits"] == "3971"
    assert call.prompts[0].before[0].text == "That PIN is not correct."


# Twilio's fallback URL --------------------------------------------------------------


def test_it_requests_the_fallback_url_with_error_code_and_error_url_after_a_500():
    pages = {"/twilio/voice": Answer(500, "Server Error", 3.0), "/twilio/fallback": APOLOGY}
    call, fake = place(pages, [])
    [fallback] = fake.to("/twilio/fallback")
    assert fallback["ErrorCode"] == "11200" and fallback["ErrorUrl"] == BASE + "/twilio/voice"
    assert fallback["CallSid"] == call.call_sid and fallback["From"] == call.caller
    assert said(call) == ["We are sorry. Please call again later."]
    assert call.ended_by == "server"
    assert [(failure.error_code, failure.status) for failure in call.failures] == [("11200", 500)]


@pytest.mark.parametrize(
    "no_answer", [TimeoutError("timed out"), ConnectionRefusedError("refused"), Answer(200, GOODBYE, 16_000.0)]
)
def test_it_requests_the_fallback_url_when_no_answer_comes_within_15_seconds(no_answer):
    call, fake = place({"/twilio/voice": no_answer, "/twilio/fallback": APOLOGY}, [])
    [fallback] = fake.to("/twilio/fallback")
    assert fallback["ErrorCode"] == "11205" and fallback["ErrorUrl"] == BASE + "/twilio/voice"
    assert said(call) == ["We are sorry. Please call again later."]


def test_it_requests_the_fallback_url_when_an_action_url_fails():
    pages = {**entry('numDigits="4"'), "/step?n=1": Answer(502, "Bad Gateway", 2.0), "/twilio/fallback": APOLOGY}
    _call, fake = place(pages, ["3971"])
    [fallback] = fake.to("/twilio/fallback")
    assert fallback["ErrorCode"] == "11200" and fallback["ErrorUrl"] == BASE + "/step?n=1"
    assert "Digits" not in fallback


def test_it_says_twilios_error_and_hangs_up_when_the_fallback_fails_too():
    pages = {"/twilio/voice": Answer(500, "", 1.0), "/twilio/fallback": ConnectionResetError("reset")}
    call, fake = place(pages, [])
    assert said(call) == [APPLICATION_ERROR]
    assert call.ended_by == "application error"
    assert [failure.error_code for failure in call.failures] == ["11200", "11205"]
    assert fake.to("/twilio/status")[0]["CallStatus"] == "completed"


def test_it_says_twilios_error_without_a_fallback_url():
    call, fake = place({"/twilio/voice": Answer(503, "", 1.0)}, [], fallback_url="")
    assert fake.to("/twilio/fallback") == []
    assert said(call) == [APPLICATION_ERROR]


# The call's parameters ------------------------------------------------------------------


def test_it_sends_stir_verstat_passed_a_on_every_request_by_default_as_a_mobile_call_carries():
    _call, fake = place(entry('numDigits="4"'), ["3971"])
    assert [posted.params["StirVerstat"] for posted in fake.requests] == ["TN-Validation-Passed-A"] * 3


def test_it_sends_the_stir_verstat_it_is_given_or_none_for_an_unattested_call():
    _, fake = place(entry('numDigits="4"'), ["3971"], stir="TN-Validation-Failed-A")
    assert [posted.params["StirVerstat"] for posted in fake.requests] == ["TN-Validation-Failed-A"] * 3
    for unattested in (None, ""):
        _call, fake = place(entry('numDigits="4"'), ["3971"], stir=unattested)
        assert len(fake.requests) == 3 and all("StirVerstat" not in posted.params for posted in fake.requests)


@pytest.mark.parametrize("caller", ["anonymous", "", "restricted", "+266696687"])
def test_it_sends_the_caller_id_exactly_as_given(caller):
    _call, fake = place(entry('numDigits="4"'), ["3971"], caller=caller)
    assert all(posted.params["From"] == caller and posted.params["Caller"] == caller for posted in fake.requests)


def test_it_ends_the_status_callback_with_the_calls_duration():
    _call, fake = place({"/twilio/voice": twiml('<Pause length="4"/><Say>Goodbye now.</Say><Hangup/>')}, [])
    assert fake.to("/twilio/status")[0]["CallDuration"] == "5"  # 4.8 s, rounded up


def test_it_stops_a_call_that_loops_without_a_prompt():
    with pytest.raises(CallFailed, match="loops"):
        place({"/twilio/voice": twiml("<Redirect>/twilio/voice</Redirect>")}, [])


def test_it_refuses_a_document_that_is_not_twiml():
    with pytest.raises(CallFailed, match="not TwiML"):
        place({"/twilio/voice": "<html>Hello</html>"}, [])


# The language prompt --------------------------------------------------------------------


LANGUAGE = {
    "/twilio/voice": twiml(
        '<Gather action="/language" numDigits="1" timeout="5">'
        '<Say language="en-US" voice="Polly.Joanna">For English, press 1.</Say>'
        '<Say language="es-US" voice="Polly.Lupe">Para español, oprima 2.</Say>'
        "</Gather><Redirect>/again</Redirect>"
    ),
    "/language": twiml('<Gather action="/pin" numDigits="4"><Say>PIN?</Say></Gather><Redirect>/again</Redirect>'),
    "/pin": GOODBYE,
}


@pytest.mark.parametrize(
    ("lang", "digit", "heard"),
    [
        ("en", "1", ["For English, press 1."]),
        ("es", "2", ["For English, press 1.", "Para español, oprima 2."]),
    ],
)
def test_it_picks_the_key_offered_in_the_callers_language_without_using_a_scripted_key(lang, digit, heard):
    call, fake = place(LANGUAGE, ["3971"], lang=lang)
    assert fake.to("/language")[0]["Digits"] == digit
    assert fake.to("/pin")[0]["Digits"] == "3971"
    assert said(call)[: len(heard)] == heard and said(call)[len(heard)] == "PIN?"
    assert call.prompts[0].languages == ["en-US", "es-US"]
    assert call.totals.entries == 2


def test_it_leaves_the_language_prompt_to_the_script_when_lang_is_none():
    met: list[Prompt] = []

    def keys(prompt: Prompt) -> str:
        met.append(prompt)
        return "2" if len(met) == 1 else "3971"

    _call, fake = place(LANGUAGE, keys, lang=None)
    assert fake.to("/language")[0]["Digits"] == "2"
    assert met[0].languages == ["en-US", "es-US"] and met[0].offered == ["1", "2"]
    assert [say.voice for say in met[0].says] == ["Polly.Joanna", "Polly.Lupe"]


def test_it_leaves_a_one_language_prompt_to_the_script():
    _call, fake = place(
        entry('numDigits="1"', '<Say language="es-US">Para su saldo, oprima 1.</Say>'), ["1"], lang="en"
    )
    assert fake.to("/step?n=1")[0]["Digits"] == "1"


# manage.py call ---------------------------------------------------------------------------


def run_command(*args: str, fake: Fake, monkeypatch) -> str:
    monkeypatch.setattr(call_command_module, "InProcess", lambda: fake)
    out = StringIO()
    call_command("call", *args, stdout=out)
    return out.getvalue()


def test_it_shows_languages_voices_pauses_waits_and_a_summary_in_the_command(monkeypatch):
    fake = Fake(
        {
            **LANGUAGE,
            "/language": twiml(
                '<Say language="es-US" voice="Polly.Lupe">Bienvenido.</Say><Pause length="2"/>'
                '<Gather action="/pin" numDigits="4" finishOnKey="" timeout="8">'
                '<Say language="es-US" voice="Polly.Lupe">Para crear una cuenta, oprima numeral.</Say>'
                "</Gather><Redirect>/again</Redirect>"
            ),
        }
    )
    out = run_command(
        "--keys",
        "#",
        "--lang",
        "es",
        "--stir",
        "TN-Validation-Failed-A",
        "--from",
        "anonymous",
        fake=fake,
        monkeypatch=monkeypatch,
    )
    assert "  SAY    [es-US Polly.Lupe] Bienvenido." in out
    assert "  PAUSE  2 s" in out
    assert "  WAIT   0 s" in out  # the language key: numDigits reached
    assert "  WAIT   8 s   <-- '#' is offered" in out
    assert "Call ended (server): 4 requests, 2 entries, 16 words heard, 8 s waiting after entries, 16 s in all." in out
    assert all(posted.params["StirVerstat"] == "TN-Validation-Failed-A" for posted in fake.requests)
    assert all(posted.params["From"] == "anonymous" for posted in fake.requests)


def test_it_answers_the_language_prompt_from_keys_with_lang_none_and_types_early_with_a_caret(monkeypatch):
    fake = Fake(LANGUAGE)
    out = run_command("--keys", "2,^3971", "--lang", "none", fake=fake, monkeypatch=monkeypatch)
    assert fake.to("/language")[0]["Digits"] == "2"
    assert fake.to("/pin")[0]["Digits"] == "3971"
    assert "(interrupted) not heard: PIN?" in out


@pytest.mark.parametrize("pound", ["a", "b", "c", "d"])
def test_it_plays_the_lone_pound_behaviour_chosen_with_pound_in_the_command(pound, monkeypatch):
    fake = Fake(entry(PIN_ENTRY + EMPTY_RESULT))
    out = run_command("--keys", "#", "--pound", pound, fake=fake, monkeypatch=monkeypatch)
    assert f"; pound ({pound}): {POUND_BEHAVIOURS[pound]};" in out.splitlines()[0]
    assert f"  KEYS   #   ({pound}) " in out and "((" not in out
    posted = fake.to("/step?n=1")
    assert [params["Digits"] for params in posted] == ([] if pound == "d" else [""])
    assert [params.get("FinishedOnKey") for params in posted] == {"a": ["#"], "d": []}.get(pound, [None])
    assert len(fake.to("/again")) == (1 if pound == "d" else 0)
    if pound == "c":
        assert "  WAIT   8 s   <-- '#' pressed first is ignored (c): the caller waits 8 s for the timeout" in out
    else:
        assert "  WAIT   0 s" in out


def test_it_plays_b_by_default_in_the_command_and_refuses_an_unknown_behaviour(monkeypatch):
    fake = Fake(entry(PIN_ENTRY + EMPTY_RESULT))
    out = run_command("--keys", "#", fake=fake, monkeypatch=monkeypatch)
    assert "; pound (b): posted at once as Digits='', no FinishedOnKey;" in out
    assert "FinishedOnKey" not in fake.to("/step?n=1")[0]
    with pytest.raises(CommandError, match="--pound"):
        run_command("--keys", "#", "--pound", "e", fake=fake, monkeypatch=monkeypatch)


def test_it_sends_stir_verstat_passed_a_by_default_and_none_with_stir_none_in_the_command(monkeypatch):
    fake = Fake(entry('numDigits="4"'))
    out = run_command("--keys", "3971", fake=fake, monkeypatch=monkeypatch)
    assert all(posted.params["StirVerstat"] == "TN-Validation-Passed-A" for posted in fake.requests)
    assert "; StirVerstat TN-Validation-Passed-A;" in out

    fake = Fake(entry('numDigits="4"'))
    out = run_command("--keys", "3971", "--stir", "none", fake=fake, monkeypatch=monkeypatch)
    assert fake.requests and all("StirVerstat" not in posted.params for posted in fake.requests)
    assert "; no StirVerstat;" in out


@pytest.mark.parametrize(
    ("lang", "shown"), [("es", "answers a language prompt with es"), ("none", "the keys answer a language prompt")]
)
def test_it_shows_lang_as_the_answer_to_a_language_prompt_not_as_the_calls_language(lang, shown, monkeypatch):
    # The caller is never asked here: --lang says how they would answer, not what they hear.
    fake = Fake(entry('numDigits="4"'))
    out = run_command("--keys", "3971", "--lang", lang, fake=fake, monkeypatch=monkeypatch)
    banner = out.splitlines()[0]
    assert banner.endswith(f"; {shown}). Call {fake.requests[0].params['CallSid']}.")
    assert f"lang {lang}" not in banner


def test_it_counts_one_entry_and_one_word_in_the_singular(monkeypatch):
    fake = Fake(
        {
            "/twilio/voice": twiml('<Gather action="/pick" numDigits="1"><Say>Menu.</Say></Gather>'),
            "/pick": twiml("<Hangup/>"),
        }
    )
    out = run_command("--keys", "1", fake=fake, monkeypatch=monkeypatch)
    assert "Call ended (server): 3 requests, 1 entry, 1 word heard, 0 s waiting after entries, 0 s in all." in out
    assert call_command_module.counted(1, "request", "requests") == "1 request"
    assert call_command_module.counted(0, "entry", "entries") == "0 entries"


def test_it_explains_a_403_in_the_command(settings):
    # In process, against the real server: a bad token makes every request fail its signature check.
    with pytest.raises(CommandError) as failure:
        call_command("call", "--keys", "3971", "--token", "not-the-servers-token", stdout=StringIO())
    message = str(failure.value)
    assert "signature did not match" in message
    assert f"--base-url (now {settings.BASE_URL}" in message and "BASE_URL" in message
    assert "--token" in message and "TWILIO_AUTH_TOKEN" in message


@pytest.mark.django_db
def test_it_places_a_call_in_process_against_the_real_server():
    from django.conf import settings

    call = SimulatedCall(settings.BASE_URL, settings.TWILIO_AUTH_TOKEN, InProcess())
    call.place(lambda prompt: None)
    assert call.failures == [] and call.prompts, call.transcript
    assert call.ended_by == "caller"
    assert all(answer.status == 200 for url, answer in call.answers)


def test_it_does_not_take_a_re_prompt_offering_pound_and_another_languages_9_for_a_language_prompt():
    call = SimulatedCall(base_url="https://example.test", auth_token="x", transport=Transport(), lang="en")

    def say(text: str, language: str) -> Audio:
        return Audio("say", text, 1.0, 3, language=language, nested=True)

    reprompt = Prompt(
        num_digits=4,
        finish_on_key="#",
        timeout=8,
        heard="",
        audio=[
            say("Please enter your 4-digit PIN.", "en-US"),
            say("For other options, press pound.", "en-US"),
            say("Para español, oprima 9.", "es-US"),
        ],
    )
    menu = Prompt(
        num_digits=1,
        finish_on_key="#",
        timeout=8,
        heard="",
        audio=[say("For English, press 1.", "en-US"), say("Para español, oprima 2.", "es-US")],
    )
    assert call._language_choice(reprompt) is None
    assert call._language_choice(menu).keys == "1"
