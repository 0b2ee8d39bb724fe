"""The languages a caller may choose, each offered in its own words and voice."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy

# Each language offered in its own words, with its key: its place in
# IVR_LANGUAGES at the language prompt, 9 at the main menu and before sign-in.
LANGUAGE_OPTIONS = {
    "en": gettext_lazy("For English, press %(key)s."),
    "es": gettext_lazy("Para español, oprima %(key)s."),
}


def other_languages(current: str) -> list[str]:
    """The offered languages but the call's (the first offered one until the caller chooses)."""
    current = current or settings.IVR_LANGUAGES[0]
    return [code for code in settings.IVR_LANGUAGES if code != current]
