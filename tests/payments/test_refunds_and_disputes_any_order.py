"""One charge's refunds and dispute, in random orders, twice over, with Stripe's list of refunds readable or not
at random moments, reconciliation and a second operator refund among them: the ledger always ends where Stripe's
facts say (payments.clawbacks). Seeded, so a failure names the seed that replays it."""

from __future__ import annotations

import contextlib
import random
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from payments import refunds
from payments.errors import AlreadyRefunded, DisputeOpen
from tests.payments.test_after_the_call import balance, paid_deposit
from tests.payments.test_card_deposits import signed
from tests.payments.test_refunds_and_disputes_meet import taken

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]


@pytest.mark.parametrize("seed", range(30))
def test_a_charges_refunds_and_dispute_in_any_order_end_where_stripe_is(client, account, stripe_double, seed):
    rng = random.Random(seed)
    deposit = paid_deposit(account, 25_00)  # on 100 dollars
    pi = deposit.payment_intent
    # Refunds made in Stripe's dashboard, one or two, whose events have not come.
    first = rng.choice([10_00, 25_00])
    made = [stripe_double.refund_in_dashboard(pi, first, status="pending")]
    if first < 25_00:
        made.append(stripe_double.refund_in_dashboard(pi, 25_00 - first, status="pending"))
    if rng.random() < 0.7:
        stripe_double.not_permitted.add("/v1/refunds")
    # An operator's refund: Stripe says already refunded, and ours stands in (or the list is read at once).
    refunds.card_deposit_refund(deposit_id=deposit.pk, clawback=True)
    finals = [rng.choice(["succeeded", "failed"]) for _ in made]
    for refund, final in zip(made, finals, strict=True):
        stripe_double.refunds[refund["id"]]["status"] = final
    dispute = rng.choice(["none", "lost", "won", "won in part"])
    events = []
    for refund, final in zip(made, finals, strict=True):
        events.append(stripe_double.event("refund.created", refund))
        events.append(
            stripe_double.event("refund.failed" if final == "failed" else "refund.updated", {**refund, "status": final})
        )
    reinstated = {"none": 0, "lost": 0, "won": 25_00, "won in part": 10_00}[dispute]
    if dispute != "none":
        opened = stripe_double.dispute(pi, 25_00, "needs_response", [-25_00])
        events.append(stripe_double.event("charge.dispute.funds_withdrawn", opened))
        closed = stripe_double.dispute(
            pi, 25_00, "lost" if dispute == "lost" else "won", [-25_00, reinstated][: 1 + bool(reinstated)]
        )
        events.append(
            stripe_double.event("charge.dispute.funds_reinstated" if reinstated else "charge.dispute.closed", closed)
        )
    charge = stripe_double.charge_refunded(pi, 25_00)
    events.append(stripe_double.event("charge.refunded", charge))
    events += [rng.choice(events) for _ in range(2)]  # sent twice
    steps = [*events, "reconcile", "reconcile", "refund again"]
    rng.shuffle(steps)
    resend = []
    for step in steps:
        stripe_double.not_permitted.clear()
        if rng.random() < 0.4:
            stripe_double.not_permitted.add("/v1/refunds")
        if step == "reconcile":
            try:
                call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
            except CommandError as unread:
                assert "Stripe did not list" in str(unread)
        elif step == "refund again":
            with contextlib.suppress(AlreadyRefunded, DisputeOpen):
                refunds.card_deposit_refund(deposit_id=deposit.pk, clawback=True)
        elif signed(client, step).status_code != 200:
            # Only charge.refunded needs the list to apply at all: Stripe sends it again.
            assert step["type"] == "charge.refunded" and "/v1/refunds" in stripe_double.not_permitted
            resend.append(step)
    stripe_double.not_permitted.clear()
    for step in resend:
        assert signed(client, step).status_code == 200
    call_command("reconcile_card_deposits", "--resolve", stdout=StringIO())
    live = sum(r["amount"] for r in stripe_double.refunds.values() if r["status"] not in ("failed", "canceled"))
    for_refunds = min(25_00, live)
    kept = 0 if dispute == "none" else 25_00 - reinstated
    lost = for_refunds + min(25_00 - for_refunds, kept)
    assert (taken(deposit), balance(account)) == (lost, 125_00 - lost), (finals, dispute, steps)
