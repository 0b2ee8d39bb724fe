from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Account
from accounts.money import format_dollars, parse_dollars
from accounts.services import deposit


class Command(BaseCommand):
    help = "Credit a caller's account, as a ledger entry: deposit PHONE AMOUNT (dollars, e.g. 100 or 12.50)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("phone", help="the account's phone number, E.164, e.g. +15551230001")
        parser.add_argument("amount", help="dollars: 100 or 12.50")

    def handle(self, *args: object, phone: str, amount: str, **options: object) -> None:
        try:
            cents = parse_dollars(amount)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if cents <= 0:
            raise CommandError("the amount must be more than 0")
        account = Account.objects.filter(phone_number=phone.strip()).first()
        if account is None:
            raise CommandError(f"no account has the phone number {phone}")
        deposit(account=account, amount_cents=cents)
        self.stdout.write(f"Deposited {format_dollars(cents)} to {account}; balance now {account.balance}.")
