"""ivr.twiml.to_xml writes what twilio's serializer writes (every test's answers are checked too: tests/conftest.py)."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr import twiml
from tests.conftest import xml_tree


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
