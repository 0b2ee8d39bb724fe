"""Rules for what operators type that callers later hear or staff later open: one place, for commands and the admin.

A recipient's name is read aloud in TwiML, listed in the admin and written to
settlement CSVs. Letters (any script), spaces and the three marks names carry
(' - .) are all a name needs; anything else is refused, not cleaned, so that
an operator sees the mistake: a control character makes the TwiML invalid,
markup and formula characters are what injection is made of.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

RECIPIENT_NAME_MAX = 60
RECIPIENT_NAME_RULE = (
    f"A recipient's name is 1 to {RECIPIENT_NAME_MAX} characters: letters (any alphabet), spaces, and ' - . only"
)
_MARKS = frozenset(" '-.")


def _describe(character: str) -> str:
    """The character as an operator can read it, even when it is invisible."""
    category = unicodedata.category(character)
    if category.startswith(("C", "Z")):  # control, format, unassigned, or a space other than " "
        name = {"\t": "a tab", "\n": "a line break", "\r": "a carriage return"}.get(character)
        what = "a control character" if category == "Cc" else unicodedata.name(character, "an invisible one").lower()
        return name or f"U+{ord(character):04X} ({what})"
    return repr(character)


def recipient_name_clean(value: str) -> str:
    """The name in its composed form (NFC) with the ends trimmed; ValidationError naming the rule if it breaks it."""
    # Composed, so that "é" typed as e + combining accent is one letter, as it is when typed whole.
    name = unicodedata.normalize("NFC", value).strip(" ")
    if not name or len(name) > RECIPIENT_NAME_MAX:
        raise ValidationError(f"{RECIPIENT_NAME_RULE}; this one has {len(name)}.", code="recipient_name_length")
    in_letter = False
    for character in name:
        # A combining mark after a letter is part of it (Hindi, Thai and others keep vowel signs as marks).
        part_of_letter = in_letter and unicodedata.category(character).startswith("M")
        if not (character.isalpha() or character in _MARKS or part_of_letter):
            raise ValidationError(
                f"{RECIPIENT_NAME_RULE}; {_describe(character)} is not allowed.", code="recipient_name_character"
            )
        in_letter = character.isalpha() or part_of_letter
    if not any(character.isalpha() for character in name):
        raise ValidationError(f"{RECIPIENT_NAME_RULE}; it needs at least one letter.", code="recipient_name_letter")
    return name


def validate_recipient_name(value: str) -> None:
    """recipient_name_clean as a form field validator."""
    recipient_name_clean(value)
