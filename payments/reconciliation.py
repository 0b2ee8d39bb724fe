"""Stripe and the card deposits, compared; what can be settled from Stripe's word, settled (reconcile_card_deposits).

Read-only toward Stripe, but for the refunds it finishes: it never creates a charge.
- Deposits left charging or uncertain are decided from the PaymentIntents Stripe made (payments.charges).
- Refunds whose answer was lost are found in Stripe's list by their UUID, or asked once more (none was made).
- Version 3's connector charges, found by their <Pay> description "MyiBot deposit N", are reported when they
  disagree with the ledger: charged but never credited, refunded or disputed in Stripe, credited with no charge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from payments import charges, refunds, stripe_api
from payments.errors import StripeFailed
from payments.models import CardDeposit, ChargedBy, Refund

DESCRIPTION = re.compile(r"MyiBot deposit ([0-9]{1,18})")

CHARGED_NOT_CREDITED = "charged, never credited"
REFUNDED_IN_STRIPE = "credited, refunded in Stripe"
DISPUTED_IN_STRIPE = "credited, disputed in Stripe"
NO_CHARGE = "credited, no charge in Stripe"


@dataclass(frozen=True)
class Finding:
    what: str
    deposit: CardDeposit | None
    charge: stripe_api.Charge | None


@dataclass
class Report:
    settled: charges.Settled
    refunds_finished: list[Refund] = field(default_factory=list)
    refunds_open: list[Refund] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def reconcile(*, days: int, resolve: bool) -> Report:
    """Everything reconcile_card_deposits prints; resolve applies what Stripe's word settles."""
    report = Report(settled=charges.settle_open_deposits(resolve=resolve))
    for refund in Refund.objects.filter(status=Refund.Status.REQUESTED).select_related("deposit"):
        if not resolve:
            report.refunds_open.append(refund)
            continue
        try:
            refund = refunds.refund_finish(refund)
        except StripeFailed:
            report.refunds_open.append(refund)
            continue
        (report.refunds_open if refund.status == Refund.Status.REQUESTED else report.refunds_finished).append(refund)
    report.findings = connector_findings(days=days)
    return report


def connector_findings(*, days: int) -> list[Finding]:
    """Version 3's connector charges that disagree with the ledger (there are none once its deposits are old)."""
    since = timezone.now() - timedelta(days=days)
    deposits = {
        deposit.pk: deposit
        for deposit in CardDeposit.objects.filter(
            charged_by=ChargedBy.CONNECTOR, created__gte=since - timedelta(days=1)
        ).select_related("account")
    }
    if not deposits:
        return []
    findings: list[Finding] = []
    known_references: set[str] = set()
    for charge in stripe_api.charges_created(since=since):
        known_references |= charge.references
        named = DESCRIPTION.fullmatch(charge.description.strip())
        deposit = deposits.get(int(named.group(1))) if named else None
        if deposit is None:
            deposit = next((d for d in deposits.values() if {d.reference, d.payment_intent} & charge.references), None)
        if deposit is None or not charge.paid:
            continue
        credited = deposit.entry_id is not None
        if not credited and not charge.refunded and not deposit.refunds.exists():
            findings.append(Finding(CHARGED_NOT_CREDITED, deposit, charge))
        elif credited and charge.disputed:
            findings.append(Finding(DISPUTED_IN_STRIPE, deposit, charge))
        elif credited and charge.refunded and not deposit.refunds.exists():
            findings.append(Finding(REFUNDED_IN_STRIPE, deposit, charge))
    for deposit in deposits.values():
        paid = deposit.created >= since and deposit.status == CardDeposit.Status.PAID
        if paid and not ({deposit.reference, deposit.payment_intent} & known_references):
            findings.append(Finding(NO_CHARGE, deposit, None))
    return findings


def charge_named(*, reference: str, days: int) -> stripe_api.Charge | None:
    since = timezone.now() - timedelta(days=days)
    return next((charge for charge in stripe_api.charges_created(since=since) if reference in charge.references), None)
