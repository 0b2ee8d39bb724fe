"""Which of the registered languages (myibot/languages.py) a caller may switch to, and with which key."""

from __future__ import annotations

from django.conf import settings


def other_languages(current: str) -> list[str]:
    """The offered languages but the call's (the first offered one until the caller chooses)."""
    current = current or settings.IVR_LANGUAGES[0]
    return [code for code in settings.IVR_LANGUAGES if code != current]


def other_language(current: str) -> str | None:
    """The language 9 switches to at once (at the main menu): only with exactly two languages offered."""
    others = other_languages(current)
    return others[0] if len(settings.IVR_LANGUAGES) == 2 else None
