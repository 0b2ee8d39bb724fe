from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.dollars import format_dollars
from accounts.errors import AlreadyCorrected, InsufficientFunds
from payments import errors, refunds, stripe_api
from payments.models import CardDeposit, Refund


class Command(BaseCommand):
    help = (
        "Give a card deposit back to its card through Stripe: refund_card_deposit (ENTRY | --deposit N) "
        "[--clawback] [--confirm]; ENTRY is its ledger entry number, N its card deposit number (both in the admin)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("entry", nargs="?", help="the ledger entry number of the card deposit")
        parser.add_argument("--deposit", help="the card deposit's number, instead of its ledger entry")
        parser.add_argument(
            "--clawback",
            action="store_true",
            help="refund even if the member spent the money: their balance goes below zero until deposits repay it",
        )
        parser.add_argument(
            "--confirm",
            action="store_true",
            help=f"needed above DEPOSIT_CONFIRM_DOLLARS ({settings.DEPOSIT_CONFIRM_DOLLARS})",
        )

    def handle(self, *args: object, entry: str | None, deposit: str | None, clawback: bool, confirm: bool, **options):
        if not stripe_api.configured():
            raise CommandError("STRIPE_SECRET_KEY is not set: card deposits cannot be refunded. Nothing was changed.")
        found = self._deposit(entry, deposit)
        try:
            amount = refunds.refund_check(deposit=found, clawback=clawback)
        except errors.StripeNotConfigured:
            raise CommandError(
                "STRIPE_SECRET_KEY is not set: card deposits cannot be refunded. Nothing was changed."
            ) from None
        except errors.NotCharged:
            raise CommandError(f"card deposit {found.pk} was never charged: there is nothing to refund") from None
        except errors.DisputeOpen:
            raise CommandError(
                f"card deposit {found.pk} has an open dispute: Stripe refunds no disputed charge; the dispute decides. "
                "Nothing was changed."
            ) from None
        except errors.AlreadyRefunded:
            raise CommandError(f"card deposit {found.pk} was already refunded") from None
        except InsufficientFunds:
            found.account.refresh_from_db()
            raise CommandError(
                f"{found.account} has {found.account.balance} left, less than the card deposit's "
                f"{format_dollars(found.amount_cents)}: the money was spent. --clawback refunds it anyway and leaves "
                "the member owing. Nothing was changed."
            ) from None
        if amount > settings.DEPOSIT_CONFIRM_DOLLARS * 100 and not confirm:
            raise CommandError(
                f"{format_dollars(amount)} is more than {format_dollars(settings.DEPOSIT_CONFIRM_DOLLARS * 100)} "
                "(DEPOSIT_CONFIRM_DOLLARS): check the deposit, then run again with --confirm. Nothing was refunded."
            )
        try:
            refund = refunds.card_deposit_refund(deposit_id=found.pk, clawback=clawback)
        except (errors.AlreadyRefunded, errors.NotCharged, errors.DisputeOpen, InsufficientFunds, AlreadyCorrected):
            raise CommandError(
                f"card deposit {found.pk} changed meanwhile: run this again. Nothing was changed."
            ) from None
        found.account.refresh_from_db()
        if refund.status in Refund.ENDED and not refunds.stood_in(refund):
            # Nothing reached the card: an error, so that a script or an operator's shell sees it failed.
            raise CommandError(self._said(refund, found))
        self.stdout.write(self._said(refund, found))

    def _deposit(self, entry: str | None, deposit: str | None) -> CardDeposit:
        if bool(entry) == bool(deposit):
            raise CommandError("give the card deposit's ledger entry number, or --deposit N (its card deposit number)")
        number = (entry or deposit or "").strip()
        if not (number.isascii() and number.isdigit()):
            raise CommandError(f"a ledger entry or card deposit is a number, not {number!r}")
        lookup = {"entry_id": int(number)} if entry else {"pk": int(number)}
        found = CardDeposit.objects.select_related("account").filter(**lookup).first()
        if found is None:
            if entry:
                raise CommandError(
                    f"ledger entry {number} is not a card deposit (reverse_deposit takes back other deposits)"
                )
            raise CommandError(f"there is no card deposit {number}")
        return found

    def _said(self, refund: Refund, deposit: CardDeposit) -> str:
        amount, balance = format_dollars(refund.amount_cents), deposit.account.balance
        if refunds.stood_in(refund):
            return (
                f"Stripe says card deposit {deposit.pk}'s charge was already refunded (refunds made in Stripe): "
                f"nothing more went to the card, and the money stays taken back for those refunds; {deposit.account} "
                f"balance now {balance}."
            )
        if refund.status in Refund.ENDED:
            return (
                f"Stripe refused the refund of card deposit {deposit.pk} ({refund.failure_reason}): the {amount} is "
                f"back on {deposit.account}, balance {balance}."
            )
        if refund.status == Refund.Status.REQUESTED:
            return (
                f"Took {amount} of card deposit {deposit.pk} off {deposit.account} (balance now {balance}) for a "
                f"refund, but Stripe's answer was lost: reconcile_card_deposits --resolve finishes it (refund "
                f"{refund.public_id})."
            )
        return (
            f"Refunded card deposit {deposit.pk} of {amount} to the card (Stripe refund {refund.stripe_id}, "
            f"{refund.status}); {deposit.account} balance now {balance}."
        )
