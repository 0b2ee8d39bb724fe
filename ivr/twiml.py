"""Building what the caller hears, always through twilio's VoiceResponse."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from twilio.twiml.voice_response import Gather, VoiceResponse

UNAVAILABLE = _("We are sorry. This service is temporarily unavailable. Please call again later. Goodbye.")


def spoken_digits(digits: str) -> str:
    """Codes and IDs are read one digit at a time: "471092" -> "4, 7, 1, 0, 9, 2"."""
    return ", ".join(digits)


def say(verb: VoiceResponse | Gather, text: str | Promise) -> None:
    verb.say(str(text), voice=settings.IVR_VOICE, language=settings.IVR_LANGUAGE)


def pause(verb: VoiceResponse | Gather, seconds: int = 1) -> None:
    verb.pause(length=seconds)


def goodbye(*lines: str | Promise) -> VoiceResponse:
    response = VoiceResponse()
    for line in lines:
        say(response, line)
    response.hangup()
    return response


def unavailable() -> VoiceResponse:
    """The calm answer to anything that fails inside: never an HTTP error, never dead air."""
    return goodbye(UNAVAILABLE)


def twiml_response(response: VoiceResponse) -> HttpResponse:
    return HttpResponse(str(response), content_type="text/xml; charset=utf-8")
