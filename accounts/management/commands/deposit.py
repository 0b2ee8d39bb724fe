from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.money import format_dollars, parse_dollars
from accounts.operator import ACCOUNT_HELP, account_argument
from accounts.services import deposit


class Command(BaseCommand):
    help = "Credit a caller's account, as a ledger entry: deposit ACCOUNT AMOUNT (dollars, e.g. 100 or 12.50)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help=ACCOUNT_HELP)
        parser.add_argument("amount", help="dollars: 100 or 12.50")

    def handle(self, *args: object, account: str, amount: str, **options: object) -> None:
        try:
            cents = parse_dollars(amount)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if cents <= 0:
            raise CommandError("the amount must be more than 0")
        found = account_argument(account)
        deposit(account=found, amount_cents=cents)
        self.stdout.write(f"Deposited {format_dollars(cents)} to {found}; balance now {found.balance}.")
