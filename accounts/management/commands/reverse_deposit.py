from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import errors, ledger
from accounts.dollars import format_dollars
from accounts.models import LedgerEntry


class Command(BaseCommand):
    help = "Undo a mistaken deposit with a correction entry: reverse_deposit ENTRY (the number deposit printed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("entry", help="the ledger entry number of the deposit")

    def handle(self, *args: object, entry: str, **options: object) -> None:
        if not entry.strip().isdigit() or not entry.strip().isascii():
            raise CommandError(f"a ledger entry is a number, not {entry!r}")
        found = LedgerEntry.objects.select_related("account").filter(pk=int(entry)).first()
        if found is None:
            raise CommandError(f"there is no ledger entry {entry}")
        try:
            correction = ledger.deposit_reverse(entry=found)
        except errors.NotADeposit:
            if found.kind == found.Kind.CARD:
                raise CommandError(
                    f"ledger entry {entry} is a card deposit: its money goes back to the card with "
                    f"refund_card_deposit {entry}"
                ) from None
            raise CommandError(f"ledger entry {entry} is a {found.get_kind_display().lower()}, not a deposit") from None
        except errors.AlreadyCorrected:
            raise CommandError(f"the deposit in ledger entry {entry} was already reversed") from None
        except errors.InsufficientFunds:
            found.account.refresh_from_db()
            raise CommandError(
                f"{found.account} has {found.account.balance} left, less than the {format_dollars(found.amount_cents)} "
                "deposited: the money was spent, so the deposit cannot be taken back. Nothing was changed."
            ) from None
        found.account.refresh_from_db()
        self.stdout.write(
            f"Reversed the deposit of {format_dollars(found.amount_cents)} in ledger entry {entry} with entry "
            f"{correction.pk}; {found.account} balance now {found.account.balance}."
        )
