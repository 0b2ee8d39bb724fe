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

from ivr.management.commands import call as call_command_module
from ivr.simulator import (
    APPLICATION_ERROR,
    Answer,
    CallFailed,
    Press,
    Prompt,
    SimulatedCall,
    Transport,
    scripted,
)

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


def test_it_posts_a_lone_pound_at_once_with_finished_on_key_when_action_on_empty_result_is_true():
    call, fake = place(entry('numDigits="4" finishOnKey="#" actionOnEmptyResult="true" timeout="8"'), ["#"])
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "" and posted["FinishedOnKey"] == "#"
    assert posted["msg"] == "Gather End"
    assert waits(call) == [0]
    assert call.totals.entries == 1 and call.totals.wait_seconds == 0
    assert fake.to("/again") == []


def test_it_posts_silence_after_the_timeout_with_an_empty_finished_on_key_when_action_on_empty_result_is_true():
    call, fake = place(entry('numDigits="4" finishOnKey="#" actionOnEmptyResult="true" timeout="8"'), [""])
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "" and posted["FinishedOnKey"] == ""
    assert waits(call) == [8]
    assert call.totals.entries == 0 and call.totals.silence_seconds == 8 and call.totals.wait_seconds == 0


@pytest.mark.parametrize(("keys", "wait"), [("#", 0), ("", 8)])
def test_it_posts_nothing_for_a_lone_pound_or_silence_without_action_on_empty_result(keys, wait):
    call, fake = place(entry('numDigits="4" finishOnKey="#" timeout="8"'), [keys])
    assert fake.to("/step?n=1") == []
    [redirected] = fake.to("/again")
    assert "Digits" not in redirected and "FinishedOnKey" not in redirected
    assert waits(call) == [wait]
    assert call.totals.entries == (1 if keys else 0)


def test_it_posts_at_once_with_an_empty_finished_on_key_when_num_digits_is_reached():
    call, fake = place(entry('numDigits="4" timeout="8"'), ["39715"])
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "3971" and posted["FinishedOnKey"] == ""
    assert waits(call) == [0]
    [keys] = [event for event in call.transcript if event.kind == "keys"]
    assert "'5' came after the entry ended" in keys.note


def test_it_posts_at_once_on_finish_on_key_and_leaves_the_key_out_of_digits():
    call, fake = place(entry('finishOnKey="#" timeout="8"'), ["123#"])
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "123" and posted["FinishedOnKey"] == "#"
    assert waits(call) == [0]


@pytest.mark.parametrize("attributes", ['numDigits="4" timeout="8"', 'finishOnKey="" timeout="8"', 'timeout="8"'])
def test_it_posts_a_partial_entry_only_after_the_timeout(attributes):
    call, fake = place(entry(attributes), ["39"])
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "39" and posted["FinishedOnKey"] == ""
    assert waits(call) == [8]
    assert call.totals.wait_seconds == 8 and call.totals.entries == 1


def test_it_takes_pound_as_a_key_when_finish_on_key_is_empty_and_flags_the_wait_after_an_offered_key():
    call, fake = place(entry('numDigits="4" finishOnKey="" timeout="8"',
                             "<Say>Enter your PIN. To create an account, press pound.</Say>"), ["#"])
    [posted] = fake.to("/step?n=1")
    assert posted["Digits"] == "#" and posted["FinishedOnKey"] == ""
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
    pages = {"/twilio/voice": twiml("<Redirect>/twilio/step/menu?n=1</Redirect>"),
             "/twilio/step/menu?n=1": twiml('<Gather action="pick?n=2" numDigits="1"><Say>Menu.</Say></Gather>'),
             "/twilio/step/pick?n=2": GOODBYE}
    call, fake = place(pages, ["1"])
    assert fake.to("/twilio/step/pick?n=2")[0]["Digits"] == "1"


def test_it_signs_every_request_as_twilio_does():
    call, fake = place(entry('numDigits="4"'), ["3971"], stir="TN-Validation-Passed-A")
    validator = RequestValidator(TOKEN)
    assert len(fake.requests) == 3  # voice, action, status callback
    for posted in fake.requests:
        assert validator.validate(posted.url, posted.params, posted.headers["X-Twilio-Signature"])


# What the caller hears, and the virtual clock ----------------------------------------------


def test_it_renders_ssml_children_and_their_tails_and_times_the_breaks():
    say = ('<Say voice="Polly.Joanna" language="en-US">Your code is<break time="700ms"/>'
           '<say-as interpret-as="digits">4 7</say-as><break strength="strong"/>then '
           '<prosody rate="50%">slow words</prosody> and <sub alias="M Y">MY</sub> done.</Say>')
    call, fake = place({"/twilio/voice": twiml(say + "<Hangup/>")}, [])
    [event] = [event for event in call.transcript if event.kind == "say"]
    assert event.text == "Your code is 4 7 then slow words and M Y done."
    assert event.shown == "Your code is [700 ms] 4 7 [750 ms] then slow words and M Y done."
    assert (event.language, event.voice) == ("en-US", "Polly.Joanna")
    # 12 words at 0.4 s, two of them at half speed (+0.8 s), and 1.45 s of breaks.
    assert event.seconds == pytest.approx(12 * 0.4 + 0.8 + 0.7 + 0.75)
    assert call.totals.words == 12


def test_it_counts_pauses_and_loops():
    call, fake = place({"/twilio/voice": twiml('<Pause/><Pause length="3"/><Say loop="2">One two.</Say><Hangup/>')}, [])
    assert [event.seconds for event in call.transcript if event.kind == "pause"] == [1, 3]
    assert call.totals.words == 4
    assert call.totals.seconds == pytest.approx(1 + 3 + 4 * 0.4)


def test_it_records_each_wait_and_totals_the_call():
    pages = {
        "/twilio/voice": twiml('<Gather action="/a" numDigits="4" timeout="8"><Say>PIN?</Say></Gather><Redirect>/x</Redirect>'),
        "/a": twiml('<Gather action="/b" finishOnKey="#" timeout="6"><Say>Amount?</Say></Gather><Redirect>/x</Redirect>'),
        "/b": twiml('<Gather action="/c" numDigits="1" timeout="7"><Say>Confirm?</Say></Gather><Redirect>/d</Redirect>'),
        "/d": twiml("<Say>Your balance is 5 dollars.</Say><Hangup/>"),
    }
    call, fake = place(pages, ["3971", "25", ""])
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


@pytest.mark.parametrize("no_answer", [TimeoutError("timed out"), ConnectionRefusedError("refused"),
                                       Answer(200, GOODBYE, 16_000.0)])
def test_it_requests_the_fallback_url_when_no_answer_comes_within_15_seconds(no_answer):
    call, fake = place({"/twilio/voice": no_answer, "/twilio/fallback": APOLOGY}, [])
    [fallback] = fake.to("/twilio/fallback")
    assert fallback["ErrorCode"] == "11205" and fallback["ErrorUrl"] == BASE + "/twilio/voice"
    assert said(call) == ["We are sorry. Please call again later."]


def test_it_requests_the_fallback_url_when_an_action_url_fails():
    pages = {**entry('numDigits="4"'), "/step?n=1": Answer(502, "Bad Gateway", 2.0), "/twilio/fallback": APOLOGY}
    call, fake = place(pages, ["3971"])
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


def test_it_sends_stir_verstat_on_every_request_when_set():
    call, fake = place(entry('numDigits="4"'), ["3971"], stir="TN-Validation-Failed-A")
    assert [posted.params["StirVerstat"] for posted in fake.requests] == ["TN-Validation-Failed-A"] * 3
    call, fake = place(entry('numDigits="4"'), ["3971"])
    assert all("StirVerstat" not in posted.params for posted in fake.requests)


@pytest.mark.parametrize("caller", ["anonymous", "", "restricted", "+266696687"])
def test_it_sends_the_caller_id_exactly_as_given(caller):
    call, fake = place(entry('numDigits="4"'), ["3971"], caller=caller)
    assert all(posted.params["From"] == caller and posted.params["Caller"] == caller for posted in fake.requests)


def test_it_ends_the_status_callback_with_the_calls_duration():
    call, fake = place({"/twilio/voice": twiml('<Pause length="4"/><Say>Goodbye now.</Say><Hangup/>')}, [])
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
        '</Gather><Redirect>/again</Redirect>'),
    "/language": twiml('<Gather action="/pin" numDigits="4"><Say>PIN?</Say></Gather><Redirect>/again</Redirect>'),
    "/pin": GOODBYE,
}


@pytest.mark.parametrize(("lang", "digit", "heard"), [
    ("en", "1", ["For English, press 1."]),
    ("es", "2", ["For English, press 1.", "Para español, oprima 2."]),
])
def test_it_picks_the_key_offered_in_the_callers_language_without_using_a_scripted_key(lang, digit, heard):
    call, fake = place(LANGUAGE, ["3971"], lang=lang)
    assert fake.to("/language")[0]["Digits"] == digit
    assert fake.to("/pin")[0]["Digits"] == "3971"
    assert said(call)[:len(heard)] == heard and said(call)[len(heard)] == "PIN?"
    assert call.prompts[0].languages == ["en-US", "es-US"]
    assert call.totals.entries == 2


def test_it_leaves_the_language_prompt_to_the_script_when_lang_is_none():
    met: list[Prompt] = []

    def keys(prompt: Prompt) -> str:
        met.append(prompt)
        return "2" if len(met) == 1 else "3971"

    call, fake = place(LANGUAGE, keys, lang=None)
    assert fake.to("/language")[0]["Digits"] == "2"
    assert met[0].languages == ["en-US", "es-US"] and met[0].offered == ["1", "2"]
    assert [say.voice for say in met[0].says] == ["Polly.Joanna", "Polly.Lupe"]


def test_it_leaves_a_one_language_prompt_to_the_script():
    call, fake = place(entry('numDigits="1"', '<Say language="es-US">Para su saldo, oprima 1.</Say>'), ["1"], lang="en")
    assert fake.to("/step?n=1")[0]["Digits"] == "1"


# manage.py call ---------------------------------------------------------------------------


def run_command(*args: str, fake: Fake, monkeypatch) -> str:
    monkeypatch.setattr(call_command_module, "InProcess", lambda: fake)
    out = StringIO()
    call_command("call", *args, stdout=out)
    return out.getvalue()


def test_it_shows_languages_voices_pauses_waits_and_a_summary_in_the_command(monkeypatch):
    fake = Fake({
        **LANGUAGE,
        "/language": twiml('<Say language="es-US" voice="Polly.Lupe">Bienvenido.</Say><Pause length="2"/>'
                           '<Gather action="/pin" numDigits="4" finishOnKey="" timeout="8">'
                           '<Say language="es-US" voice="Polly.Lupe">Para crear una cuenta, oprima numeral.</Say>'
                           '</Gather><Redirect>/again</Redirect>'),
    })
    out = run_command("--keys", "#", "--lang", "es", "--stir", "TN-Validation-Failed-A", "--from", "anonymous",
                      fake=fake, monkeypatch=monkeypatch)
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

    from ivr.simulator import InProcess

    call = SimulatedCall(settings.BASE_URL, settings.TWILIO_AUTH_TOKEN, InProcess())
    call.place(lambda prompt: None)
    assert call.failures == [] and call.prompts, call.transcript
    assert call.ended_by == "caller"
    assert all(answer.status == 200 for url, answer in call.answers)
