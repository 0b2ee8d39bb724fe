"""Django admin for operators: look callers up, lift locks, decide transfers, verify codes.

Money never changes here by editing a number: balances and ledger entries are
read-only, and settling or rejecting goes through accounts.ledger, which
writes the reversing entry a rejection needs. PIN and code hashes are never shown.

Every action that changes state needs the model's change permission (a
view-only user, an Auditor, is never offered it and is refused if they post
it), shows what it would change before it acts, and leaves a history entry
naming the operator (accounts/admin_actions.py). Exporting needs only view.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from accounts import confirmations, errors, identity, ledger, operator
from accounts.admin_actions import GuardedActionsAdmin, MoneyColumns, Outcome, Planned, ReadOnly
from accounts.dollars import dollars_decimal, format_dollars
from accounts.models import (
    ROUTE_FIELDS,
    Account,
    ConfirmationCode,
    LedgerEntry,
    Recipient,
    SharedLine,
    SignInRoute,
    SignInSpray,
    Transfer,
)
from accounts.validators import RECIPIENT_NAME_MAX, RECIPIENT_NAME_RULE, recipient_name_clean
from myibot import local_time
from myibot.csv_export import csv_download

logger = logging.getLogger(__name__)


class ReadOnlyAdmin(ReadOnly, GuardedActionsAdmin):
    """History that operators read and never rewrite."""


@admin.register(Account)
class AccountAdmin(GuardedActionsAdmin):
    list_display = [
        "member_id",
        "home_number",
        "status",
        "balance_display",
        "lock_state",
        "failed_pin_count",
        "created",
    ]
    list_filter = ["status"]
    search_fields = ["member_id", "home_number"]
    # Identity and money never change by editing a field: the PIN hash is not
    # shown, and member ID, home number, status and balance change only through
    # the actions and commands, which log what they did.
    fields = [
        "member_id",
        "home_number",
        "status",
        "verified_at",
        "balance_display",
        "lock_state",
        "failed_pin_count",
        "lock_count",
        "locked_until",
        "home_failed_pin_count",
        "home_lock_count",
        "home_locked_until",
        "created",
    ]
    readonly_fields = fields
    actions = ["unlock", "verify", "reject_registration"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # callers register themselves, by phone

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # an account with money history is kept; reject_registration removes an unverified one

    @admin.display(description="balance", ordering="balance_cents")
    def balance_display(self, account: Account) -> str:
        return format_dollars(account.balance_cents)

    @admin.display(description="lock")
    def lock_state(self, account: Account) -> str:
        return "; ".join(line for line in _route_states(account) if line.startswith("locked")) or "open"

    @admin.action(description="Unlock: lift the PIN lockout and reset its escalation", permissions=["change"])
    def unlock(self, request: HttpRequest, queryset: QuerySet[Account]) -> TemplateResponse | None:
        return self.confirm_then_act(
            request,
            queryset,
            verb="unlock",
            title="Unlock accounts",
            plan=_plan_unlock,
            act=_unlock,
            summary="Unlocked {count} account(s).",
        )

    @admin.action(description="Verify: staff checked the registration; money may move", permissions=["change"])
    def verify(self, request: HttpRequest, queryset: QuerySet[Account]) -> TemplateResponse | None:
        return self.confirm_then_act(
            request,
            queryset,
            verb="verify",
            title="Verify registrations",
            plan=_plan_verify,
            act=_verify,
            summary="Verified {count} account(s).",
        )

    @admin.action(
        description="Reject registration: remove an unverified account that holds no money", permissions=["change"]
    )
    def reject_registration(self, request: HttpRequest, queryset: QuerySet[Account]) -> TemplateResponse | None:
        return self.confirm_then_act(
            request,
            queryset,
            verb="reject_registration",
            title="Reject registrations",
            plan=_plan_reject_registration,
            act=_reject_registration,
            summary="Rejected {count} registration(s).",
        )


def _route_states(account: Account) -> list[str]:
    """Each sign-in route's lock, wrong-PIN count and escalation, in words, with the route's name."""
    now = timezone.now()
    states = []
    for route, (count_field, until_field, locks_field) in ROUTE_FIELDS.items():
        where = SignInRoute(route).label
        if account.is_locked(now, route):
            states.append(f"locked until {local_time.stamp(getattr(account, until_field))} ({where})")
        if count := getattr(account, count_field):
            states.append(f"{count} wrong PIN(s) counted ({where})")
        if locks := getattr(account, locks_field):
            states.append(f"{locks} lock(s) in its escalation ({where})")
    return states


def _plan_unlock(account: Account) -> Planned:
    state = _route_states(account)
    if not state:
        return Planned(str(account), "nothing to unlock: not locked, no wrong PINs counted", changes=False)
    return Planned(str(account), f"{'; '.join(state)}: all lifted and set back to zero; the caller may sign in at once")


def _unlock(account: Account) -> Outcome:
    if identity.account_unlock(account=account):
        return Outcome(history="Unlocked: lifted the PIN lockout and reset the wrong-PIN count and its escalation.")
    return Outcome(refused="nothing to unlock")


def _plan_verify(account: Account) -> Planned:
    if account.is_verified:
        return Planned(str(account), "already active: nothing changes", changes=False)
    return Planned(
        f"{account} (registered {local_time.stamp(account.created)}, balance {account.balance})",
        "pending becomes active: the caller may send money from it",
    )


def _verify(account: Account) -> Outcome:
    if identity.account_verify(account=account):
        return Outcome(history="Verified the registration: the account is active; money may leave it.")
    return Outcome(refused="already active")


def _plan_reject_registration(account: Account) -> Planned:
    if account.is_verified:
        return Planned(str(account), "verified: kept, nothing changes", changes=False)
    if account.balance_cents or account.ledger_entries.exists():
        return Planned(str(account), "holds money or money history: kept, nothing changes", changes=False)
    freed = f"member ID {account.member_id}"
    if account.home_number:
        freed += f" and home number {account.home_number}"
    return Planned(
        f"{account} (pending, registered {local_time.stamp(account.created)})",
        f"removed with its registration code; {freed} become free to register again",
    )


def _reject_registration(account: Account) -> Outcome:
    try:
        identity.registration_reject(member_id=account.member_id)
    except errors.NotPending:
        return Outcome(refused="verified: kept")
    except errors.HoldsMoney:
        return Outcome(refused="holds money or money history: kept")
    except errors.UnknownAccount:
        return Outcome(refused="already removed")
    return Outcome(
        history=f"Rejected the registration: removed the account and its registration code, "
        f"freeing member ID {account.member_id}.",
        deleted=True,
    )


class SharedLineForm(forms.ModelForm):
    class Meta:
        model = SharedLine
        fields = ["phone_number", "name"]

    def clean_phone_number(self) -> str:
        try:
            return operator.parse_phone_number(self.cleaned_data["phone_number"])
        except errors.NotAPhoneNumber:
            raise forms.ValidationError("Not a phone number in E.164 or national form.") from None


@admin.register(SharedLine)
class SharedLineAdmin(admin.ModelAdmin):
    form = SharedLineForm
    list_display = ["phone_number", "name", "created"]
    search_fields = ["phone_number", "name"]

    def get_readonly_fields(self, request: HttpRequest, obj: SharedLine | None = None) -> list[str]:
        return ["phone_number", "created"] if obj else ["created"]


@admin.register(SignInSpray)
class SignInSprayAdmin(ReadOnlyAdmin):
    """Sprays of failed sign-ins: while one lasts, every caller must give a member ID."""

    list_display = ["started", "until", "failures"]


class RecipientForm(forms.ModelForm):
    # Not stripped by the form: a tab or a line break at either end is refused, as inside the name. The length is
    # checked by the rule too, so that its message is the one the operator reads.
    name = forms.CharField(
        strip=False,
        help_text=RECIPIENT_NAME_RULE + ".",
        widget=forms.TextInput(attrs={"maxlength": RECIPIENT_NAME_MAX, "class": "vTextField"}),
    )

    class Meta:
        model = Recipient
        fields = ["code", "name", "active"]

    def clean_name(self) -> str:
        try:
            return recipient_name_clean(self.cleaned_data["name"])
        except ValidationError as error:
            raise forms.ValidationError(error.messages[0]) from None


@admin.register(Recipient)
class RecipientAdmin(GuardedActionsAdmin):
    form = RecipientForm
    list_display = ["code", "name", "active", "created"]
    list_filter = ["active"]
    search_fields = ["code", "name"]
    readonly_fields = ["created"]
    actions = ["deactivate", "activate"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # deactivate instead: transfers point at recipients

    def get_readonly_fields(self, request: HttpRequest, obj: Recipient | None = None) -> list[str]:
        # A code callers already use does not change under them. Renaming a payee repoints where money goes:
        # it needs the permission that adding one needs (superusers by default), not only "change".
        if obj is None:
            return self.readonly_fields
        if not self.has_add_permission(request):
            return [*self.readonly_fields, "code", "name"]
        return [*self.readonly_fields, "code"]

    def construct_change_message(self, request: HttpRequest, form, formsets, add: bool = False):
        # The history says the old name and the new, not only "Changed name." (transfers keep the name they
        # were made with: Transfer.recipient_name).
        if not add and "name" in form.changed_data:
            return f"Renamed from {form.initial.get('name')!r} to {form.cleaned_data.get('name')!r}."
        return super().construct_change_message(request, form, formsets, add)

    @admin.action(description="Deactivate: callers can no longer send to them", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Recipient]) -> None:
        changed = self.act_and_record(
            request,
            queryset.order_by("pk"),
            verb="deactivate",
            act=lambda recipient: _set_active(recipient, active=False),
        )
        self.message_user(request, f"Deactivated {changed} recipient(s).", messages.SUCCESS)

    @admin.action(description="Activate", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Recipient]) -> None:
        changed = self.act_and_record(
            request, queryset.order_by("pk"), verb="activate", act=lambda recipient: _set_active(recipient, active=True)
        )
        self.message_user(request, f"Activated {changed} recipient(s).", messages.SUCCESS)


def _set_active(recipient: Recipient, *, active: bool) -> Outcome:
    # Conditional, so that two operators at once change it (and record it) once.
    if not Recipient.objects.filter(pk=recipient.pk, active=not active).update(active=active):
        return Outcome(refused=f"already {'active' if active else 'inactive'}")
    if active:
        return Outcome(history="Activated: callers may send to them.")
    return Outcome(history="Deactivated: callers can no longer send to them.")


def _transfer_line(transfer: Transfer) -> str:
    return (
        f"Transfer {transfer.pk}: {transfer.amount_display} from account {transfer.account.member_id} "
        f"to {transfer.recipient}, sent {local_time.stamp(transfer.created)}"
    )


def _plan_settle(transfer: Transfer) -> Planned:
    if transfer.status != Transfer.Status.SUBMITTED:
        return Planned(_transfer_line(transfer), f"already {transfer.status}: nothing changes", changes=False)
    return Planned(
        _transfer_line(transfer),
        f"marked settled (paid out); no money moves: the "
        f"{transfer.amount_display} left the caller's balance when it was sent",
    )


def _settle(transfer: Transfer) -> Outcome:
    try:
        ledger.transfer_settle(transfer=transfer)
    except errors.TransferAlreadyDecided:
        return Outcome(refused="already settled or rejected")
    return Outcome(history=f"Settled: {transfer.amount_display} to {transfer.recipient} marked paid out.")


def _plan_reject(transfer: Transfer) -> Planned:
    if transfer.status != Transfer.Status.SUBMITTED:
        return Planned(_transfer_line(transfer), f"already {transfer.status}: nothing changes", changes=False)
    return Planned(
        _transfer_line(transfer),
        f"rejected: {transfer.amount_display} goes back to account {transfer.account.member_id} "
        f"(balance now {transfer.account.balance}) with a reversing ledger entry",
    )


def _reject(transfer: Transfer) -> Outcome:
    try:
        ledger.transfer_reject(transfer=transfer)
    except errors.TransferAlreadyDecided:
        return Outcome(refused="already settled or rejected")
    return Outcome(
        history=f"Rejected: {transfer.amount_display} returned to account {transfer.account.member_id} "
        "with a reversing ledger entry."
    )


def _csv_time(moment: datetime) -> str:
    # Local, as the admin's lists and date filters show it, with the offset: the hour the clocks repeat stays apart.
    return local_time.local(moment).isoformat(sep=" ", timespec="seconds")


def _transfer_rows(queryset: QuerySet[Transfer]) -> Iterator[list[object]]:
    for transfer in queryset.select_related("account", "recipient").order_by("created", "pk").iterator(chunk_size=2000):
        # The amount as a number (a Decimal), which csv_export leaves alone; the name as text, which it neutralises.
        yield [
            transfer.pk,
            transfer.account.member_id,
            transfer.recipient.code,
            transfer.recipient_name or transfer.recipient.name,
            dollars_decimal(transfer.amount_cents),
            transfer.status,
            _csv_time(transfer.created),
            _csv_time(transfer.decided) if transfer.decided else "",
        ]


@admin.register(Transfer)
class TransferAdmin(MoneyColumns, ReadOnlyAdmin):
    list_display = ["id", "member_id", "recipient", "amount_display", "status", "created", "decided"]
    list_filter = ["status", "created"]
    date_hierarchy = "created"
    search_fields = ["account__member_id", "account__home_number", "recipient__code", "recipient__name"]
    list_select_related = ["account", "recipient"]
    fields = ["account", "recipient", "amount_display", "status", "created", "decided"]
    readonly_fields = fields
    actions = ["settle", "reject", "export_csv"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The list's actions need it; a transfer's own page stays read-only.
        return obj is None and request.user.has_perm("accounts.change_transfer")

    @admin.action(description="Settle: the money was paid out", permissions=["change"])
    def settle(self, request: HttpRequest, queryset: QuerySet[Transfer]) -> TemplateResponse | None:
        return self.confirm_then_act(
            request,
            queryset.select_related("account", "recipient"),
            verb="settle",
            title="Settle transfers",
            plan=_plan_settle,
            act=_settle,
            summary="Settled {count} transfer(s).",
        )

    @admin.action(description="Reject: give the money back to the caller", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[Transfer]) -> TemplateResponse | None:
        return self.confirm_then_act(
            request,
            queryset.select_related("account", "recipient"),
            verb="reject",
            title="Reject transfers",
            plan=_plan_reject,
            act=_reject,
            summary="Rejected {count} transfer(s).",
        )

    @admin.action(
        description="Export as CSV, for settlement (select all to export the whole filtered list)", permissions=["view"]
    )
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Transfer]) -> StreamingHttpResponse:
        header = [
            "transfer",
            "member ID",
            "recipient code",
            "recipient name",
            "amount (dollars)",
            "status",
            f"created ({settings.TIME_ZONE})",
            f"decided ({settings.TIME_ZONE})",
        ]
        when = local_time.local(timezone.now())
        logger.info("admin export_csv: operator=%s transfers=%s", request.user.get_username(), queryset.count())
        return csv_download(header, _transfer_rows(queryset), filename=f"transfers-{when:%Y%m%d-%H%M}.csv")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(MoneyColumns, ReadOnlyAdmin):
    list_display = ["id", "member_id", "kind", "amount_display", "what", "created"]
    list_filter = ["kind", "created"]
    search_fields = ["account__member_id", "account__home_number"]
    list_select_related = ["account", "transfer__recipient", "corrects"]
    fields = ["account", "kind", "amount_display", "what", "created"]
    readonly_fields = fields
    actions = ["reverse_deposit"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # For the list's action only; history itself is never edited.
        return obj is None and request.user.has_perm("accounts.change_ledgerentry")

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerEntry]:
        return super().get_queryset(request).prefetch_related("corrections")

    @admin.display(description="what")
    def what(self, entry: LedgerEntry) -> str:
        """The other half of a pair: the transfer's recipient, the correction of a deposit, the deposit corrected."""
        if entry.transfer_id:
            return f"transfer {entry.transfer_id} to {entry.transfer.recipient}"
        if entry.corrects_id:
            verb = "gives back money of" if entry.amount_cents > 0 else "takes back"
            return f"{verb} the deposit in entry {entry.corrects_id}"
        corrections = [later.pk for later in entry.corrections.all()]
        if corrections:
            return f"reversed by entry {', '.join(map(str, corrections))}"
        return ""

    @admin.action(
        description="Reverse deposit: take back a mistaken deposit with a correction entry", permissions=["change"]
    )
    def reverse_deposit(self, request: HttpRequest, queryset: QuerySet[LedgerEntry]) -> TemplateResponse | None:
        return self.confirm_then_act(
            request,
            queryset,
            verb="reverse_deposit",
            title="Reverse deposits",
            plan=_plan_reverse_deposit,
            act=_reverse_deposit,
            summary="Reversed {count} deposit(s).",
        )


def _entry_line(entry: LedgerEntry) -> str:
    return (
        f"Entry {entry.pk}: {entry.get_kind_display().lower()} of {format_dollars(entry.amount_cents)}, "
        f"account {entry.account.member_id}, {local_time.stamp(entry.created)}"
    )


def _plan_reverse_deposit(entry: LedgerEntry) -> Planned:
    if entry.kind != LedgerEntry.Kind.DEPOSIT:
        return Planned(_entry_line(entry), "not a deposit: nothing changes", changes=False)
    correction = entry.corrections.filter(kind=LedgerEntry.Kind.CORRECTION).first()
    if correction is not None:
        return Planned(_entry_line(entry), f"already reversed by entry {correction.pk}: nothing changes", changes=False)
    if entry.account.balance_cents < entry.amount_cents:
        return Planned(
            _entry_line(entry),
            f"the money was spent (balance {entry.account.balance}): it cannot be taken back; nothing changes",
            changes=False,
        )
    return Planned(
        _entry_line(entry),
        f"a correction entry of {format_dollars(-entry.amount_cents)} takes it back "
        f"from account {entry.account.member_id} (balance now {entry.account.balance})",
    )


def _reverse_deposit(entry: LedgerEntry) -> Outcome:
    try:
        correction = ledger.deposit_reverse(entry=entry)
    except errors.NotADeposit:
        return Outcome(refused="not a deposit")
    except errors.AlreadyCorrected:
        return Outcome(refused="already reversed")
    except errors.InsufficientFunds:
        return Outcome(refused="the money was spent; it cannot be taken back")
    return Outcome(
        history=f"Reversed: the deposit of {format_dollars(entry.amount_cents)} taken back from account "
        f"{entry.account.member_id} by correction entry {correction.pk}."
    )


class VerifyCodeForm(forms.Form):
    code = forms.RegexField(
        regex=r"^[0-9]{6}$",
        max_length=6,
        strip=True,
        help_text="the 6 digits the caller reads to you",
        error_messages={"invalid": "A confirmation code is exactly 6 digits."},
    )


@admin.register(ConfirmationCode)
class ConfirmationCodeAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "purpose", "transfer_id", "created", "expires", "verified_at"]
    list_filter = ["purpose", "verified_at"]
    search_fields = ["account__member_id", "account__home_number"]
    list_select_related = ["account", "transfer"]
    exclude = ["code_hash"]  # never shown: with the pepper it would give the code away
    change_list_template = "admin/accounts/confirmationcode/change_list.html"

    def get_urls(self):
        return [
            path("verify/", self.admin_site.admin_view(self.verify_view), name="accounts_confirmationcode_verify"),
            *super().get_urls(),
        ]

    def has_verify_permission(self, request: HttpRequest) -> bool:
        # Verifying marks a code, and a registration code activates its account: a change, not a view.
        return request.user.has_perm("accounts.change_confirmationcode")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().changelist_view(
            request, {**(extra_context or {}), "has_verify_permission": self.has_verify_permission(request)}
        )

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        """What `manage.py verify_code` does, as a form: look the code up and mark it verified."""
        if not self.has_verify_permission(request):
            return TemplateResponse(
                request,
                "admin/accounts/confirmationcode/verify.html",
                status=403,
                context={**self.admin_site.each_context(request), "denied": True},
            )
        result = None
        form = VerifyCodeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                # The code's mark and its history entry commit together.
                with transaction.atomic():
                    check = confirmations.confirmation_code_verify(code=form.cleaned_data["code"])
                    result = confirmations.describe_code_check(check)
                    self._record_code_check(request, check, result)
            except errors.UnknownCode:
                result = "Unknown code: no confirmation code matches it."
                logger.info("admin verification: operator=%s no such confirmation", request.user.get_username())
            form = VerifyCodeForm()  # the code is not shown back on the page
        context = {
            **self.admin_site.each_context(request),
            "title": "Verify a confirmation code",
            "form": form,
            "result": result,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/accounts/confirmationcode/verify.html", context)

    def _record_code_check(self, request: HttpRequest, check: confirmations.CodeCheck, described: str) -> None:
        """History and a log line for a code this check verified; none when it was expired or already verified."""
        found = check.confirmation_code
        operator = request.user.get_username()
        if check.expired or check.already_verified:
            logger.info("admin verification: operator=%s confirmation=%s nothing changed", operator, found.pk)
            return
        # The description names the transfer or account, never the code.
        self.log_change(request, found, f"Verified: {described}")
        if found.purpose == ConfirmationCode.Purpose.REGISTRATION:
            self.log_change(request, found.account, "Registration code verified: the account is active.")
        logger.info("admin verification: operator=%s confirmation=%s verified", operator, found.pk)
