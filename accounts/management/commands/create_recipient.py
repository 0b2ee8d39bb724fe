from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import codes
from accounts.models import Recipient
from ivr.twiml import spoken_digits


class Command(BaseCommand):
    help = "Add an approved recipient callers can send money to: create_recipient CODE NAME."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="6 digits, unique")
        parser.add_argument("name", nargs="+", help="the name callers hear, e.g. Jane Doe")

    def handle(self, *args: object, code: str, name: list[str], **options: object) -> None:
        full_name = " ".join(name).strip()
        if not codes.is_code(code):
            raise CommandError(f"a recipient code is exactly 6 digits, not {code!r}")
        if not full_name or len(full_name) > 100:
            raise CommandError("the name must be 1 to 100 characters")
        if Recipient.objects.filter(code=code).exists():
            raise CommandError(f"the code {code} already belongs to {Recipient.objects.get(code=code)}")
        recipient = Recipient.objects.create(code=code, name=full_name)
        self.stdout.write(f"Created recipient {recipient}; callers enter {spoken_digits(code)}.")
