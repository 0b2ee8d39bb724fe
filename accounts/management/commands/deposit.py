from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.dollars import format_dollars, parse_dollars
from accounts.errors import DepositTooLarge
from accounts.ledger import deposit, deposit_check
from accounts.operator import ACCOUNT_HELP, account_argument


class Command(BaseCommand):
    help = (
        "Credit a caller's account, as a ledger entry: deposit ACCOUNT AMOUNT [--confirm] (dollars, e.g. 100 or 12.50)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help=ACCOUNT_HELP)
        parser.add_argument(
            "amount", help=f"dollars: 100 or 12.50, at most {settings.DEPOSIT_MAX_DOLLARS:,} (DEPOSIT_MAX_DOLLARS)"
        )
        parser.add_argument(
            "--confirm",
            action="store_true",
            help=f"needed above DEPOSIT_CONFIRM_DOLLARS ({settings.DEPOSIT_CONFIRM_DOLLARS})",
        )

    def handle(self, *args: object, account: str, amount: str, confirm: bool, **options: object) -> None:
        try:
            cents = parse_dollars(amount)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if cents <= 0:
            raise CommandError("the amount must be more than 0")
        try:
            deposit_check(amount_cents=cents)
        except DepositTooLarge as error:
            raise CommandError(
                f"{format_dollars(cents)} is more than the most a deposit may be, {format_dollars(error.limit_cents)} "
                "(DEPOSIT_MAX_DOLLARS): check the amount. Nothing was deposited."
            ) from None
        found = account_argument(account)
        if cents > settings.DEPOSIT_CONFIRM_DOLLARS * 100 and not confirm:
            raise CommandError(
                f"{format_dollars(cents)} is more than {format_dollars(settings.DEPOSIT_CONFIRM_DOLLARS * 100)} "
                f"(DEPOSIT_CONFIRM_DOLLARS): check the amount, then run again with --confirm. Nothing was deposited."
            )
        entry = deposit(account=found, amount_cents=cents)
        self.stdout.write(
            f"Deposited {format_dollars(cents)} to {found} as ledger entry {entry.pk}; balance now {found.balance}. "
            f"A mistake can be undone with: reverse_deposit {entry.pk}"
        )
