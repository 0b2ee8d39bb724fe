"""Card deposits in the admin: read-only, a refund action for those who may refund, and a CSV export.

Refunding moves real money back to a card: it needs payments.refund_carddeposit
(the "Operators" group holds it), a confirmation page, and leaves a history
entry and a log line naming the operator (accounts/admin_actions.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.admin_actions import GuardedActionsAdmin, MoneyColumns, Outcome, Planned, ReadOnly
from accounts.dollars import dollars_decimal, format_dollars
from accounts.errors import AlreadyCorrected, InsufficientFunds
from myibot import local_time
from myibot.csv_export import csv_download
from payments import errors, holds, refunds
from payments.models import CardDeposit, Dispute, Refund, StripeEvent

logger = logging.getLogger(__name__)


def _line(deposit: CardDeposit) -> str:
    return f"Card deposit {deposit.pk}: {format_dollars(deposit.amount_cents)} to account {deposit.account.member_id}"


def _plan_refund(deposit: CardDeposit) -> Planned:
    try:
        amount = refunds.refund_check(deposit=deposit)
    except errors.StripeNotConfigured:
        return Planned(_line(deposit), "refused: STRIPE_SECRET_KEY is not set, refunds are off", changes=False)
    except errors.NotCharged:
        return Planned(_line(deposit), f"{deposit.status}: nothing to refund", changes=False)
    except errors.DisputeOpen:
        return Planned(_line(deposit), "refused: a dispute is open, and decides", changes=False)
    except errors.AlreadyRefunded:
        return Planned(_line(deposit), "already refunded: nothing changes", changes=False)
    except InsufficientFunds:
        # The admin never claws back: refund_card_deposit --clawback is an operator's deliberate act.
        return Planned(
            _line(deposit), f"refused: the account holds {deposit.account.balance}, the money was spent", changes=False
        )
    return Planned(
        _line(deposit),
        f"a refund entry takes {format_dollars(amount)} off account {deposit.account.member_id} "
        f"(balance {deposit.account.balance}), then Stripe refunds it to the card ending {deposit.card_last4 or '----'}",
    )


def _refund(deposit: CardDeposit, operator=None, recorded=None) -> Outcome:
    try:
        refund = refunds.card_deposit_refund(deposit_id=deposit.pk, operator=operator, recorded=recorded)
    except errors.StripeNotConfigured:
        return Outcome(refused="STRIPE_SECRET_KEY is not set: refunds are off")
    except (errors.AlreadyRefunded, errors.NotCharged, errors.NotACardDeposit, AlreadyCorrected):
        return Outcome(refused="not a paid card deposit with money left to refund")
    except errors.DisputeOpen:
        return Outcome(refused="a dispute is open")
    except InsufficientFunds:
        return Outcome(refused="the money was spent: it cannot be refunded")
    # Each of these is recorded, and said as a warning: the card did not get the money from this refund.
    if refunds.stood_in(refund):
        return Outcome(
            history="Stripe says the card was already refunded (refunds made in Stripe): nothing more went to the "
            "card, and the money stays taken back for those refunds.",
            warning=True,
        )
    if refund.status in Refund.ENDED:
        return Outcome(
            history=f"Stripe refused the refund ({refund.failure_reason}): nothing reached the card, and the money "
            "was given back.",
            warning=True,
        )
    if refund.status == Refund.Status.REQUESTED:
        return Outcome(
            history=f"Taken off the account for refund {refund.public_id}; Stripe's answer was lost: "
            "reconcile_card_deposits --resolve finishes it.",
            warning=True,
        )
    return Outcome(
        history=f"Refunded to the card (Stripe refund {refund.stripe_id}, {refund.status}) with a refund entry."
    )


def _plan_release(deposit: CardDeposit) -> Planned:
    now = timezone.now()
    if deposit.status != CardDeposit.Status.PAID:
        return Planned(_line(deposit), f"{deposit.status}: nothing is held", changes=False)
    if not deposit.held_for_review and not (deposit.release_at and deposit.release_at > now):
        return Planned(_line(deposit), "not held: nothing changes", changes=False)
    why = "held after an early fraud warning" if deposit.held_for_review else "held"
    until = f" until {local_time.local(deposit.release_at):%Y-%m-%d %H:%M}" if deposit.release_at > now else ""
    return Planned(_line(deposit), f"{why}{until}: the member may send this money from now on")


def _release(deposit: CardDeposit) -> Outcome:
    if not _plan_release(deposit).changes:
        return Outcome(refused="not held")
    released = holds.release(deposit_id=deposit.pk, now=timezone.now())
    return Outcome(
        history=f"Hold released: the money may be sent from {local_time.local(released.release_at):%Y-%m-%d %H:%M}."
    )


def _csv_time(moment: datetime | None) -> str:
    return local_time.local(moment).isoformat(sep=" ", timespec="seconds") if moment else ""


def _rows(queryset: QuerySet[CardDeposit]) -> Iterator[list[object]]:
    for deposit in queryset.select_related("account").order_by("created", "pk").iterator(chunk_size=2000):
        yield [
            deposit.pk,
            deposit.account.member_id,
            dollars_decimal(deposit.amount_cents),
            deposit.status,
            deposit.not_charged_reason,
            deposit.result,
            deposit.payment_intent or deposit.reference or "",
            deposit.card_type,
            deposit.card_last4,
            deposit.entry_id or "",
            deposit.needs_look,
            _csv_time(deposit.created),
            _csv_time(deposit.decided),
        ]


@admin.register(CardDeposit)
class CardDepositAdmin(MoneyColumns, GuardedActionsAdmin):
    list_display = ["id", "member_id", "amount_display", "status", "result", "card", "entry", "needs_look", "created"]
    list_filter = ["status", "not_charged_reason", "created"]
    date_hierarchy = "created"
    search_fields = ["account__member_id", "payment_intent", "reference", "call_sid"]
    list_select_related = ["account"]
    fields = [
        "id",
        "account",
        "amount_display",
        "status",
        "not_charged_reason",
        "result",
        "decline_code",
        "payment_intent",
        "reference",
        "public_id",
        "card",
        "entry",
        "needs_look",
        "call_sid",
        "created",
        "token_received",
        "charging_started",
        "decided",
        "release_at",
        "held_for_review",
    ]
    readonly_fields = fields
    actions = ["refund", "release_hold", "export_csv"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # only a call makes one

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # For the list's refund and release actions only; a deposit's own page stays read-only.
        return obj is None and (self.has_refund_permission(request) or self.has_release_permission(request))

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.refund_carddeposit")

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.release_carddeposit")

    @admin.display(description="card")
    def card(self, deposit: CardDeposit) -> str:
        return f"{deposit.card_type or 'card'} ending {deposit.card_last4}" if deposit.card_last4 else "-"

    @admin.action(description="Refund to the card: give the money back through Stripe", permissions=["refund"])
    def refund(self, request: HttpRequest, queryset: QuerySet[CardDeposit]) -> TemplateResponse | None:
        return self.confirm_then_act(
            request,
            queryset.select_related("account"),
            verb="refund",
            title="Refund card deposits",
            plan=_plan_refund,
            # The history's first entry commits with the money taken off, before Stripe is asked; the
            # second says what Stripe answered.
            act=lambda deposit: _refund(
                deposit,
                operator=request.user,
                recorded=lambda refund: self.log_change(
                    request,
                    deposit,
                    f"Took {format_dollars(refund.amount_cents)} off the account for refund {refund.public_id}; "
                    "asking Stripe to refund the card.",
                ),
            ),
            summary="Refunded {count} card deposit(s).",
            # Stripe is asked with no transaction of ours open: the member's rows are never locked meanwhile.
            calls_out=True,
        )

    @admin.action(description="Release hold: the card money may be sent now", permissions=["release"])
    def release_hold(self, request: HttpRequest, queryset: QuerySet[CardDeposit]) -> TemplateResponse | None:
        return self.confirm_then_act(
            request,
            queryset.select_related("account"),
            verb="release_hold",
            title="Release the hold on card deposits",
            plan=_plan_release,
            act=_release,
            summary="Released the hold on {count} card deposit(s).",
        )

    @admin.action(description="Export as CSV (select all to export the whole filtered list)", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[CardDeposit]) -> StreamingHttpResponse:
        header = [
            "card deposit",
            "member ID",
            "amount (dollars)",
            "status",
            "why not charged",
            "Twilio result",
            "Stripe PaymentIntent (or version 3 charge)",
            "card type",
            "card last four",
            "ledger entry",
            "needs a look",
            f"created ({settings.TIME_ZONE})",
            f"decided ({settings.TIME_ZONE})",
        ]
        when = local_time.local(timezone.now())
        logger.info("admin export_csv: operator=%s card_deposits=%s", request.user.get_username(), queryset.count())
        return csv_download(header, _rows(queryset), filename=f"card-deposits-{when:%Y%m%d-%H%M}.csv")


class _ReadOnly(ReadOnly, admin.ModelAdmin):
    """Written by the service from Stripe's word and the operators' refunds, never by hand."""


@admin.register(Refund)
class RefundAdmin(MoneyColumns, _ReadOnly):
    list_display = ["id", "deposit", "amount_display", "status", "stripe_id", "operator", "clawback", "created"]
    list_filter = ["status", "clawback", "created"]
    search_fields = ["stripe_id", "public_id", "deposit__account__member_id"]
    list_select_related = ["deposit", "operator"]
    fields = [
        "id",
        "public_id",
        "deposit",
        "amount_display",
        "status",
        "failure_reason",
        "stripe_id",
        "operator",
        "clawback",
        "taken_by",
        "given_back_by",
        "created",
        "updated",
    ]
    readonly_fields = fields


@admin.register(Dispute)
class DisputeAdmin(MoneyColumns, _ReadOnly):
    list_display = ["stripe_id", "deposit", "amount_display", "status", "reason", "funds_withdrawn", "created"]
    list_filter = ["status", "funds_withdrawn", "funds_reinstated"]
    search_fields = ["stripe_id", "deposit__account__member_id"]
    list_select_related = ["deposit"]
    fields = [
        "stripe_id",
        "deposit",
        "amount_display",
        "status",
        "reason",
        "funds_withdrawn",
        "funds_reinstated",
        "taken_by",
        "given_back_by",
        "reinstated_cents",
        "created",
        "updated",
    ]
    readonly_fields = fields


@admin.register(StripeEvent)
class StripeEventAdmin(_ReadOnly):
    list_display = ["event_id", "type", "outcome", "detail", "received", "applied"]
    list_filter = ["outcome", "type"]
    search_fields = ["event_id", "object_id"]
    date_hierarchy = "received"
