"""ivr.twiml.to_xml writes what twilio's serializer writes (every test's answers are checked too: tests/conftest.py)."""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import VoiceResponse

from ivr import machine, twiml
from ivr.languages import other_languages
from ivr.models import CallSession
from tests.conftest import xml_tree
from tests.ivr.test_prompts import PROMPTS


def test_escaping_nesting_and_attributes_as_twilio_writes_them():
    response = VoiceResponse()
    with response.gather(
        input="dtmf",
        action="https://x.test/twilio/step/menu?n=3&a=<1>",
        action_on_empty_result=True,
        finish_on_key="#",
        timeout=8,
        num_digits=1,
    ) as gather:
        gather.say('Oprima "1" & <2>, señor.\n', voice="Polly.Lupe", language="es-US")
        gather.say("it's", voice="Polly.Joanna")
        gather.pause(length=1)
        spoken = gather.say(voice="Polly.Joanna")
        spoken.nest("Your code is 4,")
        spoken.break_(time="700ms")
        spoken.nest(" 7,")
        spoken.nest(" 7 again,")  # a second string after an element: twilio keeps the last
        spoken.break_(time="700ms")
        spoken.nest(" 1.")
    response.say("")
    response.redirect("https://x.test/twilio/step/menu?n=3&no_input=1", method="POST")
    response.hangup()

    assert xml_tree(twiml.to_xml(response)) == xml_tree(str(response))
    assert twiml.to_xml(response).startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Gather ')


def test_the_apology_and_a_goodbye():
    for response in (twiml.unavailable(), twiml.goodbye("Adiós.", "Goodbye & thanks.")):
        assert xml_tree(twiml.to_xml(response)) == xml_tree(str(response))


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_double")
@pytest.mark.parametrize("step_name", list(PROMPTS))
@pytest.mark.parametrize("notices, repeat", [((), False), (("A notice & more.",), True)], ids=["first", "again"])
def test_a_prompt_written_once_is_what_building_it_with_its_url_writes(at, step_name, notices, repeat):
    """ivr.machine._render keeps each prompt written with a stand-in URL and fills in the prompt's own."""
    call = CallSession.objects.get(call_sid=at(step_name).call_sid)
    current = machine.STEPS[call.step]
    with machine.speaking(call):
        machine._prompts.clear()
        machine._render(call, notices, repeat=repeat)
        call.prompt_number += 7
        served = machine._render(call, notices, repeat=repeat)
        lines = current.prompt(call)
        if current.takes_language_key and not call.signed_in and (repeat or call.timeouts or call.invalid_entries):
            lines += [machine.language_offer(code, machine.LANGUAGE_KEY) for code in other_languages(call.language)]
        built = machine._prompt_twiml(
            current, notices, lines, repeat=repeat, action=machine.step_url(current.name, call.prompt_number)
        )
    written = served if isinstance(served, str) else twiml.to_xml(served)
    assert written == twiml.to_xml(built)
    assert f"n={call.prompt_number}" in written
    # Kept, unless it reads out a code or a card's digits (never kept in memory).
    says_digits = current.says_digits or any(isinstance(line, machine.Code) for line in lines)
    assert len(machine._prompts) == (0 if says_digits else 1)


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_double")
def test_digits_a_prompt_says_of_the_caller_are_never_kept_in_memory(at):
    """A recipient's code at the confirmation, as much as a code read out with its pauses, is said once."""
    machine._prompts.clear()
    confirm = at("send_confirm")
    assert "recipient code 2, 4, 6, 8, 1, 0" in confirm.last.text
    assert not any("2, 4, 6, 8, 1, 0" in repr(key) for key in machine._prompts)
    assert not any(key[0] == "send_confirm" for key in machine._prompts)
