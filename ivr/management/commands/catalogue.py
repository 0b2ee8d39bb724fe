from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ivr import catalogue


class Command(BaseCommand):
    help = "Keep the callers' message catalogues in step with the code: --update, --check, --compile."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--update", action="store_true", help="add new strings to each .po, drop removed ones")
        parser.add_argument("--check", action="store_true", help="fail if any caller-facing string is not translated")
        parser.add_argument(
            "--compile", action="store_true", help="write each .mo from its .po (no GNU gettext needed)"
        )

    def handle(self, *args: object, update: bool, check: bool, compile: bool, **options: object) -> None:
        if not (update or check or compile):
            raise CommandError("say what to do: --update, --check and/or --compile")
        for language in catalogue.catalogue_languages():
            if update:
                added, dropped = catalogue.update(language)
                self.stdout.write(f"{language}: added {added} new string(s) to translate, dropped {dropped}.")
            if check:
                issues = catalogue.problems(language)
                if issues:
                    raise CommandError(f"{language}: {len(issues)} problem(s):\n  " + "\n  ".join(issues))
                self.stdout.write(f"{language}: every caller-facing string is translated.")
        if compile:
            for written in catalogue.compile_all():
                self.stdout.write(f"Compiled {written}.")
