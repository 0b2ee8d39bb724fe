"""Every language a caller can hear, one record each (docs/CALL_FLOW.md, "Adding a language").

A record holds all the service needs to speak a language: its code (the
catalogue locale/<code>/LC_MESSAGES/django.po, and what an account keeps), its
name in its own words, Twilio's <Say> voice and locale for it, the words its
prompts offer a key with ("oprima 2"), and the sentence that offers the
language itself ("Para español, oprima 9."). Settings build the registry,
settings.CALLER_LANGUAGES, from these records (IVR_VOICE_<CODE> and
IVR_LOCALE_<CODE> may change a voice) and check it at start-up; Django's
LANGUAGES, the catalogues, the account's language and the phone's offers are
all read from it. IVR_LANGUAGES picks which registered languages callers are
offered, and in what order.

The registry lives in settings rather than here so that a test can register
one more language with override_settings, as an operator would with a record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from myibot.voices import voice_problem

# A code's shape (ISO 639-1: two lowercase letters), which the account's database
# constraint checks; whether it is registered is checked here, so a new language needs no migration.
CODE_SHAPE = r"^[a-z]{2}$"
# The language the code's sentences are written in (gettext's msgids): it needs no catalogue.
SOURCE = "en"


@dataclass(frozen=True)
class Language:
    code: str  # two lowercase letters: "es"
    name: str  # in its own words: "Español"
    voice: str  # Twilio's <Say> voice: "Polly.Lupe" (myibot/voices.py checks it speaks locale)
    locale: str  # Twilio's <Say> language: "es-US"
    # Offers this language, in this language and its voice whatever the call's: so no
    # catalogue translates it. %(key)s is the key: its place at the language prompt, or 9.
    offer: str
    # The words before a key in this language's prompts ("oprima 2", "oprima la tecla numeral"),
    # and the names of # and *: how a listener (the simulator) hears which keys a prompt offers.
    press: tuple[str, ...]
    key_names: Mapping[str, str] = field(default_factory=dict)
    # The language <Pay> says its own words in on the deposit line (Twilio lists en-US, es-MX, es-ES,
    # fr-FR ... for <Pay>, not every <Say> locale); our card prompts are said in voice and locale.
    pay_locale: str = "en-US"


ENGLISH = Language(
    code="en",
    name="English",
    voice="Polly.Joanna",
    locale="en-US",
    offer="For English, press %(key)s.",
    press=("press", "press the", "dial"),
    pay_locale="en-US",
    key_names={"pound": "#", "hash": "#", "star": "*"},
)
SPANISH = Language(
    code="es",
    name="Español",
    voice="Polly.Lupe",
    locale="es-US",
    offer="Para español, oprima %(key)s.",
    press=("oprima", "oprima la tecla", "oprima la tecla de", "marque", "marque el", "pulse", "presione"),
    key_names={"numeral": "#", "almohadilla": "#", "asterisco": "*"},
    # Mexico's Spanish, which Twilio lists for <Pay> (es-US is not); confirm on the first real call.
    pay_locale="es-MX",
)
# Every language the service can speak. Adding one: a record here, its catalogue, and its code in IVR_LANGUAGES.
RECORDS = (ENGLISH, SPANISH)


def record_problem(language: Language) -> str | None:
    """Why a record cannot be spoken on a call, or None: checked at start-up for every record."""
    if not re.match(CODE_SHAPE, language.code):
        return f"a language code is two lowercase letters, not {language.code!r}"
    if not language.locale.startswith(language.code + "-"):
        return f"{language.locale!r} is not a locale of {language.code}"
    if "%(key)s" not in language.offer:
        return f"the offer of {language.code} must say its key with %(key)s"
    if not language.press:
        return f"{language.code} needs the words its prompts offer a key with"
    return voice_problem(language.voice, language.locale)


def configured(environ: Mapping[str, str]) -> dict[str, Language]:
    """The registry settings hold: every record, with the voice and locale the environment gives it, checked."""
    registry = {}
    for language in RECORDS:
        upper = language.code.upper()
        language = replace(
            language,
            voice=environ.get(f"IVR_VOICE_{upper}", language.voice),
            locale=environ.get(f"IVR_LOCALE_{upper}", language.locale),
        )
        if not language.locale.startswith(language.code + "-"):
            raise ImproperlyConfigured(
                f"IVR_LOCALE_{upper} must be a locale of {language.code}, such as {language.code}-US, "
                f"not {language.locale!r}"
            )
        if problem := voice_problem(language.voice, language.locale):
            raise ImproperlyConfigured(f"IVR_VOICE_{upper}: {problem}")
        if problem := record_problem(language):
            raise ImproperlyConfigured(f"myibot/languages.py: {problem}")
        registry[language.code] = language
    return registry


def registered() -> Mapping[str, Language]:
    """Every language the service can speak, by code (settings.CALLER_LANGUAGES)."""
    return settings.CALLER_LANGUAGES


def is_registered(code: str) -> bool:
    return code in settings.CALLER_LANGUAGES


def offered() -> list[Language]:
    """The languages callers are offered (IVR_LANGUAGES), in the language prompt's order."""
    registry = settings.CALLER_LANGUAGES
    return [registry[code] for code in settings.IVR_LANGUAGES]
