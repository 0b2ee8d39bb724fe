"""Building what the caller hears, always through twilio's VoiceResponse."""

from __future__ import annotations

import json
from xml.sax.saxutils import escape, quoteattr

from django.conf import settings
from django.http import HttpResponse
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from twilio.twiml import TwiML
from twilio.twiml.voice_response import Gather, Say, VoiceResponse

from myibot.languages import SOURCE

UNAVAILABLE = _("We are sorry. This service is temporarily unavailable. Please call again later. Goodbye.")
# Between the digits of a code read for writing down: long enough to write a
# digit on a bad line, where Twilio's commas alone are a blink.
DIGIT_BREAK = "700ms"


def voice_for(language: str | None = None) -> dict[str, str]:
    """The <Say> voice and locale for a language (the active one by default)."""
    registry = settings.CALLER_LANGUAGES
    spoken = registry.get((language or translation.get_language() or SOURCE)[:2]) or registry[SOURCE]
    return {"voice": spoken.voice, "language": spoken.locale}


def say(verb: VoiceResponse | Gather, text: str | Promise, language: str | None = None) -> Say:
    return verb.say(str(text), **voice_for(language))


def say_digits(verb: VoiceResponse | Gather, before: str | Promise, digits: str, after: str = ".") -> Say:
    """A code read for writing down: each digit followed by a real pause (SSML <break>)."""
    spoken = verb.say(**voice_for())
    # Text between SSML elements is each element's tail: the heading goes with the first digit.
    for index, digit in enumerate(digits):
        last = index == len(digits) - 1
        spoken.nest((f"{before} {digit}" if index == 0 else f" {digit}") + (after if last else ","))
        if not last:
            spoken.break_(time=DIGIT_BREAK)
    return spoken


def pause(verb: VoiceResponse | Gather, seconds: int = 1) -> None:
    verb.pause(length=seconds)


def goodbye(*lines: str | Promise) -> VoiceResponse:
    response = VoiceResponse()
    for line in lines:
        say(response, line)
    response.hangup()
    return response


def dial_staff(*, number: str, action: str, caller_id: str, time_limit: int, greeting: str | Promise) -> VoiceResponse:
    """Connect the caller to the service's staff line; Twilio posts DialCallStatus to action when it ends.

    With action set, Twilio goes on with what action answers, never with a verb
    after <Dial>: the call is never left in dead air, answered or not.
    """
    response = VoiceResponse()
    say(response, greeting)
    response.dial(
        number,
        action=action,
        method="POST",
        time_limit=time_limit,
        # Ringing for 20 s, then DialCallStatus=no-answer: a caller on hold is not left wondering.
        timeout=20,
        **({"caller_id": caller_id} if caller_id else {}),
    )
    return response


def pay(
    *,
    connector: str,
    description: str,
    language: str,
    action: str,
    progress: str,
    prompts: list[tuple[str, str, str]],
    after: str | Promise,
) -> VoiceResponse:
    """Twilio's <Pay>, only to turn the card into a Stripe PaymentMethod: card digits never come here.

    No chargeAmount: with one, <Pay> would charge through the connector itself; without, it only tokenizes
    (tokenType payment-method: the Stripe connector posts the PaymentMethod's id as PaymentToken), and the
    action request charges it. prompts are (for, errorType, words) said in the caller's voice; <Pay> says its
    own in language. Twilio runs the next verb when <Pay> ends without calling action: `after` is said and
    the call goes on to action (with no result), so that it never falls into dead air.
    """
    response = VoiceResponse()
    paying = response.pay(
        input="dtmf",
        payment_connector=connector,
        token_type="payment-method",  # noqa: S106 - a <Pay> attribute, not a secret
        payment_method="credit-card",
        valid_card_types="visa mastercard amex discover",
        max_attempts=2,
        # Between keys within one entry: a caller reading a card on a bad line needs longer than 5 s.
        timeout=10,
        language=language,
        description=description,
        # Twilio posts <Pay>'s result: "method" is no <Pay> attribute (its action "supports POST only").
        action=action,
        # Each step's progress (which field, which attempt, which error): counted and logged in shape only.
        status_callback=progress,
    )
    for for_, error_type, words in prompts:
        prompt = paying.prompt(for_=for_, **({"error_type": error_type} if error_type else {}))
        say(prompt, words)
    say(response, after)
    response.redirect(f"{action}&no_result=1", method="POST")
    return response


def unavailable() -> VoiceResponse:
    """The calm answer to anything that fails inside: never an HTTP error, never dead air."""
    return goodbye_in_every_language(UNAVAILABLE)


def goodbye_in_every_language(*words: Promise) -> VoiceResponse:
    """Words and goodbye, said in every language offered, each in its voice: where this is needed we
    may not know (or be able to read) the caller's language."""
    response = VoiceResponse()
    for language in settings.IVR_LANGUAGES:
        with translation.override(language):
            for line in words:
                say(response, line, language)
    response.hangup()
    return response


def twiml_response(response: VoiceResponse | str) -> HttpResponse:
    """The answer to Twilio: a response built now, or a document already written (Template.fill)."""
    document = response if isinstance(response, str) else to_xml(response)
    return HttpResponse(document, content_type="text/xml; charset=utf-8")


class Template:
    """A document written once with a stand-in for its action URL, filled in for each prompt that says it.

    A prompt's words are the same for every caller at it in a language; only its URL (the prompt number)
    changes. Building the twilio objects and writing them out took a fifth of a menu step's time.
    The stand-in is plain letters, which XML escapes to themselves, so filling in the escaped URL
    writes exactly what to_xml writes for the response built with that URL (tests/ivr/test_twiml.py).
    """

    ACTION = "MYIBOTACTIONURL"

    def __init__(self, response: VoiceResponse) -> None:
        self.parts = to_xml(response).split(self.ACTION)

    def fill(self, action: str) -> str:
        return escape(action).join(self.parts)


def to_xml(response: TwiML) -> str:
    """The TwiML document str(response) gives, written straight to a string.

    twilio's own serializer copies the tree into ElementTree first, a fifth of
    a menu step's time; this writes the same elements, attributes (sorted,
    booleans as "true"/"false") and text, escaped as XML requires.
    tests/ivr/test_twiml.py checks it against twilio's on every prompt.
    """
    parts = ['<?xml version="1.0" encoding="UTF-8"?>']
    _write(response, parts)
    return "".join(parts)


def _write(verb: TwiML, parts: list[str]) -> None:
    attributes = "".join(
        f" {name}={quoteattr(str(value).lower() if isinstance(value, bool) else str(value))}"
        for name, value in sorted(verb.attrs.items())
    )
    # As twilio's xml(): a string nested before any element is the text (it replaces
    # value), one after an element is that element's tail (the last one wins).
    text = verb.value if isinstance(verb.value, str) else (json.dumps(verb.value) if verb.value else None)
    children: list[tuple[TwiML, str | None]] = []
    for child in verb.verbs:
        if isinstance(child, str):
            if children:
                children[-1] = (children[-1][0], child)
            else:
                text = child
        else:
            children.append((child, None))
    if not text and not children:
        parts.append(f"<{verb.name}{attributes} />")
        return
    parts.append(f"<{verb.name}{attributes}>{escape(text) if text else ''}")
    for child, tail in children:
        _write(child, parts)
        if tail:
            parts.append(escape(tail))
    parts.append(f"</{verb.name}>")
