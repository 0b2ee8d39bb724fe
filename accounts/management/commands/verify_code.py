from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.codes import is_code
from accounts.confirmations import confirmation_code_verify, describe_code_check
from accounts.errors import UnknownCode


class Command(BaseCommand):
    help = "Verify a confirmation code a caller reads out: what it confirms, and whether it was verified or expired."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="the 6-digit code")

    def handle(self, *args: object, code: str, **options: object) -> None:
        code = code.strip().replace(" ", "").replace("-", "")
        if not is_code(code):
            raise CommandError("a confirmation code is exactly 6 digits")
        try:
            check = confirmation_code_verify(code=code)
        except UnknownCode:
            raise CommandError("unknown code: no confirmation code matches it") from None
        self.stdout.write(describe_code_check(check))
