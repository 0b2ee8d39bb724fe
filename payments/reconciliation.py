"""Stripe and the card deposits, compared; what can be settled from Stripe's word, settled (reconcile_card_deposits).

Read-only toward Stripe, but for the refunds it finishes: it never creates a charge.
- Deposits left charging or uncertain are decided from the PaymentIntents Stripe made (payments.charges).
- Refunds whose answer was lost are found in Stripe's list by their UUID, or asked once more (none was made).
- Early fraud warnings of the last `days` no event delivered (their deposit's money stays held).
- Refunds made in Stripe's dashboard, and refunds that failed since, found in Stripe's list of refunds made
  in the last `days`; disputes opened in the last 120 days (they come that late), each applied as its
  event would have been, once (payments.refunds.refund_seen, payments.disputes.dispute_seen).
- Version 3's connector charges, found by their <Pay> description "MyiBot deposit N", are reported when they
  disagree with the ledger: charged but never credited, refunded or disputed in Stripe, credited with no charge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from payments import charges, clawbacks, disputes, refunds, stripe_api
from payments.errors import NotYet, StripeFailed
from payments.models import CardDeposit, ChargedBy, Dispute, Refund

DESCRIPTION = re.compile(r"MyiBot deposit ([0-9]{1,18})")

CHARGED_NOT_CREDITED = "charged, never credited"
REFUNDED_IN_STRIPE = "credited, refunded in Stripe"
DISPUTED_IN_STRIPE = "credited, disputed in Stripe"
NO_CHARGE = "credited, no charge in Stripe"
NAMED_ELSEWHERE = "charged, never credited here, but another card deposit names the charge"


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
    # What Stripe's lists of refunds and disputes changed (resolve), or would look at (not resolve).
    refunds_seen: list[str] = field(default_factory=list)
    disputes_seen: list[str] = field(default_factory=list)
    warnings_seen: list[str] = field(default_factory=list)
    # What Stripe would not list (a restricted key without a permission, Stripe down), and why: the rest
    # is still done, and the command then fails, so that a scheduled run shows it.
    unread: list[str] = field(default_factory=list)


# Disputes come up to 120 days after the charge (card networks allow that, and more for some reasons).
DISPUTE_DAYS = 120


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
    since = timezone.now() - timedelta(days=days)
    for what, look in (
        ("refunds", lambda: _refunds_listed(report, since=since, resolve=resolve)),
        ("disputes", lambda: _disputes_listed(report, days=days, resolve=resolve)),
        ("early fraud warnings", lambda: _warnings_listed(report, since=since, resolve=resolve)),
        ("charges", lambda: report.findings.extend(connector_findings(days=days))),
    ):
        try:
            look()
        except StripeFailed as failed:
            report.unread.append(f"{what}: {failed}")
    return report


def _refunds_listed(report: Report, *, since: datetime, resolve: bool) -> None:
    if resolve:
        # Refunds of ours standing in for refunds made elsewhere: the charge's whole list ends that.
        standing_in = Refund.objects.filter(clawbacks.STANDING_IN).values_list("deposit_id", flat=True)
        for deposit in CardDeposit.objects.filter(pk__in=standing_in).order_by("pk"):
            try:
                report.refunds_seen.extend(refunds.stood_in_listed(deposit))
            except StripeFailed as failed:  # this deposit's list: the others, and the scan below, go on
                report.unread.append(f"refunds of card deposit {deposit.pk}: {failed}")
            except NotYet:
                continue  # a refund listed there is about a charge still being settled: the next run
    for found in stripe_api.refunds_created(since=since):
        if Refund.objects.filter(stripe_id=found.id, status=found.status).exists():
            continue  # as we have it
        if refunds.paid_deposit_charged_by(charge=found.charge, payment_intent=found.payment_intent) is None:
            continue
        said = refunds.refund_seen(found) if resolve else f"refund {found.id}: {found.status}"
        if said:
            report.refunds_seen.append(said)


def _disputes_listed(report: Report, *, days: int, resolve: bool) -> None:
    # Each dispute is believed as listed unless an event changed ours after the listing began (newer than it).
    read_at = timezone.now()
    for seen in stripe_api.disputes_created(since=read_at - timedelta(days=max(days, DISPUTE_DAYS))):
        if _as_we_have_it(seen):
            continue
        if refunds.paid_deposit_charged_by(charge=seen.charge, payment_intent=seen.payment_intent) is None:
            continue
        try:
            said = disputes.dispute_seen(seen, read_at=read_at) if resolve else f"dispute {seen.id}: {seen.status}"
        except NotYet:
            continue  # its deposit is settled above, or by the next run; the dispute is applied then
        if said:
            report.disputes_seen.append(said)


def _warnings_listed(report: Report, *, since: datetime, resolve: bool) -> None:
    for warning in stripe_api.fraud_warnings_created(since=since):
        deposit = refunds.paid_deposit_charged_by(charge=warning.charge, payment_intent=warning.payment_intent)
        if deposit is None or deposit.needs_look.startswith(f"early fraud warning {warning.id}"):
            continue  # not ours (or not credited yet: the next run), or applied already
        if resolve:
            said = disputes.early_fraud_warning_seen(
                charge=warning.charge,
                payment_intent=warning.payment_intent,
                warning=warning.id,
                fraud_type=warning.fraud_type,
            )
        else:
            said = f"early fraud warning {warning.id} on card deposit {deposit.pk}"
        if said:
            report.warnings_seen.append(said)


def _as_we_have_it(seen: stripe_api.DisputeSeen) -> bool:
    row = Dispute.objects.filter(stripe_id=seen.id).first()
    return (
        row is not None
        and row.status == seen.status
        and (row.funds_withdrawn or not seen.withdrawn)
        and (row.funds_reinstated or not seen.reinstated)
        # What Stripe reinstated, as it says now (0 on our side is all of it; a carried-over guess is read again).
        and (
            not seen.reinstated
            or (row.reinstated_cents or row.amount_cents)
            == min(seen.reinstated_cents or row.amount_cents, row.amount_cents)
        )
    )


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
    described: set[int] = set()  # deposits a charge's description names: they have a charge, whatever it says
    for charge in stripe_api.charges_created(since=since):
        known_references |= charge.references
        named = DESCRIPTION.fullmatch(charge.description.strip())
        deposit = deposits.get(int(named.group(1))) if named else None
        if deposit is None:
            deposit = next((d for d in deposits.values() if {d.reference, d.payment_intent} & charge.references), None)
        if deposit is None or not charge.paid:
            continue
        described.add(deposit.pk)
        credited = deposit.entry_id is not None
        # A refund of ours that failed or was canceled gave nothing to the card: only the others count.
        refunding = deposit.refunds.filter(refunds.STANDING).exists()
        if not credited and not charge.refunded and not refunding:
            # Its description names this deposit, but another was credited for it by one of its ids: settled
            # by hand, never credited or refunded from here (the member there keeps it; the card paid once).
            elsewhere = charges.named_elsewhere(charge.references, deposit_id=deposit.pk)
            findings.append(Finding(NAMED_ELSEWHERE if elsewhere else CHARGED_NOT_CREDITED, deposit, charge))
        elif credited and charge.disputed:
            findings.append(Finding(DISPUTED_IN_STRIPE, deposit, charge))
        elif credited and charge.refunded and not refunding:
            findings.append(Finding(REFUNDED_IN_STRIPE, deposit, charge))
    for deposit in deposits.values():
        paid = deposit.created >= since and deposit.status == CardDeposit.Status.PAID
        if (
            paid
            and deposit.pk not in described
            and not ({deposit.reference, deposit.payment_intent} & known_references)
        ):
            findings.append(Finding(NO_CHARGE, deposit, None))
    return findings


def charge_named(*, reference: str, days: int) -> stripe_api.Charge | None:
    since = timezone.now() - timedelta(days=days)
    return next((charge for charge in stripe_api.charges_created(since=since) if reference in charge.references), None)
