from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import codes
from accounts.models import Recipient
from accounts.spoken import spoken_digits
from accounts.validators import recipient_name_clean


class Command(BaseCommand):
    help = "Add an approved recipient callers can send money to: create_recipient CODE NAME."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="6 digits, unique")
        parser.add_argument("name", nargs="+", help="the name callers hear: letters, spaces, ' - . (1 to 60)")

    def handle(self, *args: object, code: str, name: list[str], **options: object) -> None:
        if not codes.is_code(code):
            raise CommandError(f"a recipient code is exactly 6 digits, not {code!r}")
        try:
            full_name = recipient_name_clean(" ".join(name))
        except ValidationError as error:
            raise CommandError(error.messages[0]) from None
        if Recipient.objects.filter(code=code).exists():
            raise CommandError(f"the code {code} already belongs to {Recipient.objects.get(code=code)}")
        recipient = Recipient.objects.create(code=code, name=full_name)
        self.stdout.write(f"Created recipient {recipient}; callers enter {spoken_digits(code)}.")
