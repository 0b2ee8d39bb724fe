"""Reading settings from the environment, and reporting every problem with them at once.

myibot/settings.py reads each variable through an Environment, which notes what is
missing or invalid and goes on with the default, so that start-up can name every
problem in one message (one line each) instead of stopping at the first. manage.py
and myibot/wsgi.py (gunicorn) print that message without a traceback and exit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured


class SettingsProblems(ImproperlyConfigured):
    """Every missing or invalid setting found while reading the environment."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        heading = (
            "MyiBot cannot start: 1 setting is missing or invalid"
            if count == 1
            else f"MyiBot cannot start: {count} settings are missing or invalid"
        )
        return "\n".join([f"{heading} (README, Configuration):", *(f"  {problem}" for problem in self.problems)])


@contextmanager
def exit_on_settings_problems() -> Iterator[None]:
    """For manage.py and the WSGI module: the problems, one line each, and exit 1; no traceback to read through."""
    try:
        yield
    except SettingsProblems as problems:
        sys.stderr.write(f"{problems}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None


class Environment:
    """Typed reads of environment variables; a bad value is noted, and its default stands in meanwhile."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        # Variables whose value was refused: a check that compares them with another would only add noise.
        self.refused: set[str] = set()

    def problem(self, message: str, *, name: str | None = None) -> None:
        self.problems.append(message)
        if name:
            self.refused.add(name)

    def check(self) -> None:
        if self.problems:
            raise SettingsProblems(self.problems)

    @staticmethod
    def text(name: str, default: str = "") -> str:
        return os.environ.get(name, "").strip() or default

    def flag(self, name: str, default: bool) -> bool:
        value = os.environ.get(name, "").strip().lower()
        if not value:
            return default
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        self.problem(f"{name} must be true or false, not {value!r}", name=name)
        return default

    def number(self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = os.environ.get(name, "").strip()
        if not value:
            return default
        try:
            number = int(value)
        except ValueError:
            self.problem(f"{name} must be a whole number, not {value!r}", name=name)
            return default
        if number < minimum:
            self.problem(f"{name} must be at least {minimum}, not {number}", name=name)
            return default
        if maximum is not None and number > maximum:
            self.problem(f"{name} must be at most {maximum}, not {number}", name=name)
            return default
        return number

    def port(self, name: str, default: int) -> int:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and value.isascii() and not 1 <= int(value) <= 65535:
            self.problem(f"{name} must be a port number (1 to 65535), not {int(value)}", name=name)
            return default
        return self.number(name, default, minimum=1)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of choices, in any case ("info" is INFO)."""
        value = self.text(name, default)
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        self.problem(f"{name} must be {', '.join(choices[:-1])} or {choices[-1]}, not {value!r}", name=name)
        return default

    def zone(self, name: str, default: str) -> str:
        """An IANA time zone name that this machine's zone database holds (checked now, not on the first call)."""
        value = self.text(name, default)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(f"{name} must be an IANA time zone such as America/New_York or UTC, not {value!r}", name=name)
            return default
        return value

    def secret(self, name: str, *, debug: bool, development_value: str, stand_ins: list[str]) -> str:
        """A required secret; with DEBUG on, a development value stands in (its name added to stand_ins)."""
        value = self.text(name)
        if value:
            return value
        if not debug:
            self.problem(f"{name} is required when DEBUG is off; set it in the environment", name=name)
            return ""
        stand_ins.append(name)
        return development_value
