from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.dollars import format_dollars
from accounts.errors import InsufficientFunds
from payments import errors, services
from payments.models import CardDeposit


class Command(BaseCommand):
    help = (
        "Give a card deposit back to the card through Stripe and write the refund entry: "
        "refund_card_deposit ENTRY [--confirm] (ENTRY is the card deposit's ledger entry number)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("entry", help="the ledger entry number of the card deposit")
        parser.add_argument(
            "--confirm",
            action="store_true",
            help=f"needed above DEPOSIT_CONFIRM_DOLLARS ({settings.DEPOSIT_CONFIRM_DOLLARS})",
        )

    def handle(self, *args: object, entry: str, confirm: bool, **options: object) -> None:
        if not settings.STRIPE_SECRET_KEY:
            raise CommandError("STRIPE_SECRET_KEY is not set: card deposits cannot be refunded. Nothing was changed.")
        if not entry.strip().isdigit() or not entry.strip().isascii():
            raise CommandError(f"a ledger entry is a number, not {entry!r}")
        deposit = CardDeposit.objects.select_related("account").filter(entry_id=int(entry)).first()
        if deposit is None:
            raise CommandError(
                f"ledger entry {entry} is not a card deposit (reverse_deposit takes back other deposits)"
            )
        if deposit.amount_cents > settings.DEPOSIT_CONFIRM_DOLLARS * 100 and not confirm:
            raise CommandError(
                f"{format_dollars(deposit.amount_cents)} is more than "
                f"{format_dollars(settings.DEPOSIT_CONFIRM_DOLLARS * 100)} (DEPOSIT_CONFIRM_DOLLARS): "
                "check the entry, then run again with --confirm. Nothing was refunded."
            )
        try:
            refunded = services.card_deposit_refund(entry_id=int(entry))
        except errors.AlreadyRefunded:
            raise CommandError(f"card deposit {deposit.pk} (ledger entry {entry}) was already refunded") from None
        except errors.NotCharged:
            raise CommandError(f"card deposit {deposit.pk} was never charged: there is nothing to refund") from None
        except InsufficientFunds:
            deposit.account.refresh_from_db()
            raise CommandError(
                f"{deposit.account} has {deposit.account.balance} left, less than the "
                f"{format_dollars(deposit.amount_cents)} deposited: the money was spent, so it cannot be refunded. "
                "Nothing was changed."
            ) from None
        except errors.StripeFailed as error:
            raise CommandError(
                f"Stripe did not refund: {error}. The {format_dollars(deposit.amount_cents)} is off {deposit.account} "
                f"already (so it cannot be spent meanwhile), and card deposit {deposit.pk} is marked to look at: run "
                "this again to ask Stripe again."
            ) from None
        refunded.account.refresh_from_db()
        self.stdout.write(
            f"Refunded card deposit {refunded.pk} of {format_dollars(refunded.amount_cents)} to the card "
            f"(Stripe refund {refunded.refund_reference}); {refunded.account} balance now {refunded.account.balance}."
        )
