from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.dollars import format_dollars
from payments import charges, errors, limits, reconciliation, refunds, stripe_api


class Command(BaseCommand):
    help = (
        "Compare Stripe with the card deposits and settle what Stripe's word settles: reconcile_card_deposits "
        "[--days N] [--resolve] [--credit REF | --refund REF]. Safe at any time and from a schedule."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=7,
            help="how far back to look at refunds and connector charges (default 7; disputes: 120 days always)",
        )
        parser.add_argument(
            "--resolve", action="store_true", help="apply what Stripe settles (without it, only report)"
        )
        settle = parser.add_mutually_exclusive_group()
        settle.add_argument("--credit", metavar="REF", help="version 3: credit this connector charge never credited")
        settle.add_argument("--refund", metavar="REF", help="version 3: refund this connector charge never credited")

    def handle(self, *args: object, days: int, resolve: bool, credit: str | None, refund: str | None, **options):
        if not stripe_api.configured():
            raise CommandError("STRIPE_SECRET_KEY is not set: card deposits cannot be reconciled. Nothing was changed.")
        if not 1 <= days <= 120:
            raise CommandError(f"--days is 1 to 120, not {days}")
        try:
            if credit or refund:
                self._settle(reference=(credit or refund).strip(), days=days, credit=bool(credit))
                return
            report = reconciliation.reconcile(days=days, resolve=resolve)
        except errors.StripeFailed as error:
            raise CommandError(f"Stripe did not answer: {error}. Nothing more was changed.") from None
        self._print(report, resolve=resolve)
        if report.unread:
            # What could be done is done (and printed above); a scheduled run still fails, so that it shows.
            raise CommandError(
                "Stripe did not list "
                + "; ".join(report.unread)
                + ". Everything else above was done; run again once Stripe answers (or the key has the permission)."
            )

    def _print(self, report: reconciliation.Report, *, resolve: bool) -> None:
        done = "" if resolve else " (would be: run with --resolve)"
        for deposit in report.settled.credited:
            self.stdout.write(
                f"Credited{done}: card deposit {deposit.pk} of {format_dollars(deposit.amount_cents)}, Stripe charged it."
            )
        for deposit in report.settled.not_charged:
            self.stdout.write(
                f"Not charged{done}: card deposit {deposit.pk} of {format_dollars(deposit.amount_cents)}."
            )
        for deposit in report.settled.still_open:
            self.stdout.write(f"Still open: card deposit {deposit.pk} ({deposit.status}): Stripe has not decided yet.")
        for deposit in report.settled.too_recent:
            self.stdout.write(
                f"Too recent: card deposit {deposit.pk} ({deposit.status}) began charging less than "
                f"{limits.CHARGING_SLOT.seconds // 60} minutes ago; the next run looks at it."
            )
        for refund in report.refunds_finished:
            self.stdout.write(
                f"Refund of card deposit {refund.deposit_id}: {refund.status} ({refund.stripe_id or '-'})."
            )
        for refund in report.refunds_open:
            self.stdout.write(f"Refund of card deposit {refund.deposit_id} still {refund.status} ({refund.public_id}).")
        for said in report.refunds_seen:
            self.stdout.write(f"Refund{done}: {said}.")
        for said in report.disputes_seen:
            self.stdout.write(f"Dispute{done}: {said}.")
        for said in report.warnings_seen:
            self.stdout.write(f"Fraud warning{done}: {said}.")
        for finding in report.findings:
            self.stdout.write(self._describe(finding))
        settled = report.settled
        if not any(
            [
                settled.credited,
                settled.not_charged,
                settled.still_open,
                settled.too_recent,
                report.refunds_finished,
                report.refunds_open,
                report.refunds_seen,
                report.disputes_seen,
                report.warnings_seen,
                report.findings,
                report.unread,
            ]
        ):
            self.stdout.write("Stripe and the card deposits agree.")

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
            (
                f
                for f in reconciliation.connector_findings(days=days)
                if f.charge is not None and f.charge.id == charge.id
            ),
            None,
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
            if credit:
                deposit = charges.connector_credit(
                    deposit_id=finding.deposit.pk,
                    reference=charge.id,
                    card_type=charge.card_type,
                    card_last4=charge.card_last4,
                    references=charge.references,
                )
                self.stdout.write(
                    f"Credited card deposit {deposit.pk} of {format_dollars(deposit.amount_cents)} to {deposit.account} "
                    f"as ledger entry {deposit.entry_id} (charge {charge.id})."
                )
                return
            refund = refunds.charge_refund_uncredited(
                deposit_id=finding.deposit.pk, reference=charge.id, references=charge.references
            )
        except (errors.UnknownDeposit, errors.AlreadyRefunded):
            raise CommandError(
                f"card deposit {finding.deposit.pk} was settled meanwhile, or charge {reference} already credited "
                "another: run reconcile_card_deposits again to see where it stands. Nothing was changed."
            ) from None
        self.stdout.write(
            f"Refunded charge {charge.id} of {format_dollars(charge.amount_cents)} to the card (Stripe refund "
            f"{refund.stripe_id or 'not confirmed yet'}, {refund.status}); card deposit {refund.deposit_id} was never credited."
        )
