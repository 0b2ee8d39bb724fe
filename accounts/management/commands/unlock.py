from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from accounts.identity import account_unlock
from accounts.operator import ACCOUNT_HELP, account_argument


class Command(BaseCommand):
    help = "Lift a PIN lockout and reset its escalation: unlock ACCOUNT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help=ACCOUNT_HELP)

    def handle(self, *args: object, account: str, **options: object) -> None:
        found = account_argument(account)
        if account_unlock(account=found):
            self.stdout.write(f"Unlocked {found}: its failed PINs and lock escalation are cleared.")
        else:
            self.stdout.write(f"{found} was not locked and had no failed PINs: nothing to unlock.")
