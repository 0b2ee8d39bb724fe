from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.dollars import format_dollars
from payments import errors, reconciliation, services


class Command(BaseCommand):
    help = (
        "Match Stripe's charges with card deposits (by the <Pay> description): reconcile_card_deposits [--days N] "
        "[--credit REF | --refund REF] settles a charge that was never credited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=7, help="how far back to look (default 7)")
        settle = parser.add_mutually_exclusive_group()
        settle.add_argument("--credit", metavar="REF", help="credit the member for this charge that was never credited")
        settle.add_argument("--refund", metavar="REF", help="refund this charge that was never credited to the card")

    def handle(self, *args: object, days: int, credit: str | None, refund: str | None, **options: object) -> None:
        if not settings.STRIPE_SECRET_KEY:
            raise CommandError("STRIPE_SECRET_KEY is not set: card deposits cannot be reconciled. Nothing was changed.")
        if not 1 <= days <= 90:
            raise CommandError(f"--days is 1 to 90, not {days}")
        try:
            if credit or refund:
                self._settle(reference=(credit or refund).strip(), days=days, credit=bool(credit))
                return
            findings = reconciliation.reconcile(days=days)
        except errors.StripeFailed as error:
            raise CommandError(f"Stripe did not answer: {error}. Nothing was changed.") from None
        if not findings:
            self.stdout.write(f"Stripe and the card deposits of the last {days} days agree.")
            return
        for finding in findings:
            self.stdout.write(self._describe(finding))
        self.stdout.write(
            f"{len(findings)} to look at. A charge never credited is settled with --credit REF or --refund REF."
        )

    def _describe(self, finding: reconciliation.Finding) -> str:
        deposit, charge = finding.deposit, finding.charge
        parts = [finding.what + ":"]
        if charge is not None:
            parts.append(
                f"charge {charge.id} of {format_dollars(charge.amount_cents)} ({charge.description or 'no description'})"
            )
        if deposit is not None:
            parts.append(f"card deposit {deposit.pk} to {deposit.account}, {deposit.status}")
            if deposit.entry_id:
                parts.append(f"ledger entry {deposit.entry_id}")
        return " ".join(parts)

    def _settle(self, *, reference: str, days: int, credit: bool) -> None:
        charge = reconciliation.charge_named(reference=reference, days=days)
        if charge is None or not charge.paid:
            raise CommandError(f"Stripe has no paid charge {reference} in the last {days} days")
        finding = next(
            (f for f in reconciliation.reconcile(days=days) if f.charge is not None and f.charge.id == charge.id), None
        )
        if finding is None or finding.what != reconciliation.CHARGED_NOT_CREDITED or finding.deposit is None:
            raise CommandError(
                f"charge {reference} is not a card deposit charged but never credited: nothing to settle"
            )
        if charge.amount_cents != finding.deposit.amount_cents:
            raise CommandError(
                f"charge {reference} is {format_dollars(charge.amount_cents)}, card deposit {finding.deposit.pk} "
                f"{format_dollars(finding.deposit.amount_cents)}: settle it by hand in Stripe"
            )
        try:
            deposit = self._settled(finding.deposit, charge, credit=credit)
        except (errors.UnknownDeposit, errors.AlreadyRefunded):
            raise CommandError(
                f"card deposit {finding.deposit.pk} was settled meanwhile, or charge {reference} already credited "
                "another: run reconcile_card_deposits again to see where it stands. Nothing was changed."
            ) from None
        if credit:
            self.stdout.write(
                f"Credited card deposit {deposit.pk} of {format_dollars(deposit.amount_cents)} to {deposit.account} "
                f"as ledger entry {deposit.entry_id} (charge {charge.id})."
            )
        else:
            self.stdout.write(
                f"Refunded charge {charge.id} of {format_dollars(charge.amount_cents)} to the card (Stripe refund "
                f"{deposit.refund_reference}); card deposit {deposit.pk} was never credited."
            )

    def _settled(self, deposit, charge, *, credit: bool):
        if credit:
            return services.charge_credit(
                deposit_id=deposit.pk, reference=charge.id, card_type=charge.card_type, card_last4=charge.card_last4
            )
        return services.charge_refund_uncredited(deposit_id=deposit.pk, reference=charge.id)
