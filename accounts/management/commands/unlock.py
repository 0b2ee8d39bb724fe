from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import UnknownAccount, account_unlock


class Command(BaseCommand):
    help = "Lift a PIN lockout and clear the failed-PIN count: unlock PHONE."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("phone", help="the account's phone number, E.164")

    def handle(self, *args: object, phone: str, **options: object) -> None:
        try:
            account = account_unlock(phone_number=phone.strip())
        except UnknownAccount:
            raise CommandError(f"no account has the phone number {phone}") from None
        self.stdout.write(f"Unlocked {account}.")
