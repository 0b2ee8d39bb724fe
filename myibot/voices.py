"""Which Twilio <Say> voices speak which language, so that a wrong pair stops start-up.

Twilio: "Invalid combinations of voice and language may result in error and
<Say> instruction failure" - on a live call, that is dead air. Polly voices
from Twilio's voice list; Google voices carry their locale in their name
(Google.es-US-Neural2-A).
"""

from __future__ import annotations

POLLY_LOCALES = {
    "en-US": {
        "Joanna",
        "Matthew",
        "Salli",
        "Kimberly",
        "Kendra",
        "Joey",
        "Justin",
        "Ivy",
        "Kevin",
        "Ruth",
        "Stephen",
        "Danielle",
        "Gregory",
    },
    "en-GB": {"Amy", "Emma", "Brian", "Arthur"},
    "es-US": {"Lupe", "Penelope", "Miguel", "Pedro"},
    "es-MX": {"Mia", "Andres"},
    "es-ES": {"Lucia", "Conchita", "Enrique", "Sergio"},
    "fr-FR": {"Celine", "Lea", "Mathieu", "Remi"},
    "fr-CA": {"Chantal", "Gabrielle", "Liam"},
}


def voice_problem(voice: str, locale: str) -> str | None:
    """Why voice cannot speak locale, or None when it can."""
    if voice.startswith("Polly."):
        name = voice.removeprefix("Polly.").removesuffix("-Neural").removesuffix("-Generative")
        speaks = [code for code, names in POLLY_LOCALES.items() if name in names]
        if not speaks:
            return f"{voice} is not a Polly voice this service knows ({', '.join(sorted(POLLY_LOCALES))})"
        if locale not in speaks:
            return f"{voice} speaks {speaks[0]}, not {locale}"
        return None
    if voice.startswith("Google."):
        if not voice.removeprefix("Google.").startswith(locale + "-"):
            return f"{voice} does not speak {locale}"
        return None
    if voice in ("man", "woman") and not locale.startswith("en-"):
        return f"Twilio's basic voice {voice!r} speaks English only"
    if voice not in ("man", "woman", "alice"):
        return f"{voice!r} is not a Twilio voice (Polly.*, Google.*, man, woman or alice)"
    return None
