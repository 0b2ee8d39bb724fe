"""Stripe's charges against our card deposits, matched by the <Pay> description "MyiBot deposit N".

Three things can disagree (reconcile_card_deposits prints them, operators settle them):
- charged but never credited: Twilio's action request was lost, so the family paid and the member has nothing;
- credited but refunded or disputed in Stripe: the member has money the service no longer holds;
- credited with no charge: a paid deposit whose reference Stripe does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from payments import stripe_api
from payments.models import CardDeposit
from payments.selectors import PENDING_HOLD

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


def reconcile(*, days: int) -> list[Finding]:
    charges = list(stripe_api.recent_charges(days=days))
    since = timezone.now() - timedelta(days=days)
    deposits = {
        deposit.pk: deposit
        for deposit in CardDeposit.objects.filter(created__gte=since - timedelta(days=1)).select_related("account")
    }
    settled_by = timezone.now() - PENDING_HOLD
    findings: list[Finding] = []
    known_references: set[str] = set()
    for charge in charges:
        known_references |= charge.references
        named = DESCRIPTION.fullmatch(charge.description.strip())
        deposit = deposits.get(int(named.group(1))) if named else None
        if deposit is None:
            deposit = next((d for d in deposits.values() if d.reference in charge.references), None)
        if not charge.paid:
            continue
        credited = deposit is not None and deposit.entry_id is not None
        # A deposit still inside its <Pay> may be charged a moment before its action request comes.
        in_flight = (
            deposit is not None and deposit.status == CardDeposit.Status.PENDING and deposit.created > settled_by
        )
        if not credited and not charge.refunded and not in_flight:
            findings.append(Finding(CHARGED_NOT_CREDITED, deposit, charge))
        elif credited and deposit.status == CardDeposit.Status.PAID and charge.disputed:
            findings.append(Finding(DISPUTED_IN_STRIPE, deposit, charge))
        elif credited and deposit.status == CardDeposit.Status.PAID and charge.refunded:
            findings.append(Finding(REFUNDED_IN_STRIPE, deposit, charge))
    for deposit in deposits.values():
        paid = deposit.created >= since and deposit.status == CardDeposit.Status.PAID
        if paid and deposit.reference not in known_references:
            findings.append(Finding(NO_CHARGE, deposit, None))
    return findings


def charge_named(*, reference: str, days: int) -> stripe_api.Charge | None:
    return next((charge for charge in stripe_api.recent_charges(days=days) if reference in charge.references), None)
