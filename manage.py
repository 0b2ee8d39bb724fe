#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myibot.settings")
    from django.core.management import execute_from_command_line

    from myibot.environment import exit_on_settings_problems

    # Missing or invalid settings: every one named, one line each, and no traceback.
    with exit_on_settings_problems():
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
