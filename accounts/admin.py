"""Django admin for operators: look callers up, lift locks, decide transfers, verify codes.

Money never changes here by editing a number: balances and ledger entries are
read-only, and settling or rejecting goes through accounts.services, which
writes the reversing entry a rejection needs. PIN and code hashes are never shown.
"""

from __future__ import annotations

import csv
from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from accounts import identity, services
from accounts.models import Account, ConfirmationCode, LedgerEntry, Recipient, SharedLine, SignInSpray, Transfer
from accounts.money import format_dollars
from myibot import local_time


class ReadOnlyAdmin(admin.ModelAdmin):
    """History that operators read and never rewrite."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["member_id", "home_number", "status", "balance_display", "lock_state", "failed_pin_count", "created"]
    list_filter = ["status"]
    search_fields = ["member_id", "home_number"]
    # Identity and money never change by editing a field: the PIN hash is not
    # shown, and member ID, home number, status and balance change only through
    # the actions and commands, which log what they did.
    fields = ["member_id", "home_number", "status", "verified_at", "balance_display", "lock_state", "failed_pin_count",
              "lock_count", "locked_until", "created"]
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
        if account.is_locked():
            return f"locked until {local_time.stamp(account.locked_until)}"
        return "open"

    @admin.action(description="Unlock: lift the PIN lockout and reset its escalation")
    def unlock(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        unlocked = sum(identity.account_unlock(account=account) for account in queryset)
        self.message_user(request, f"Unlocked {unlocked} account(s); {queryset.count() - unlocked} had nothing to unlock.",
                          messages.SUCCESS)

    @admin.action(description="Verify: staff checked the registration; money may move")
    def verify(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        verified = 0
        for account in queryset:
            if identity.account_verify(account=account):
                verified += 1
                self.log_change(request, account, "Verified the registration.")
        self.message_user(request, f"Verified {verified} account(s).", messages.SUCCESS)

    @admin.action(description="Reject registration: remove an unverified account that holds no money")
    def reject_registration(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        rejected, refused = 0, []
        for account in queryset:
            try:
                identity.registration_reject(member_id=account.member_id)
                rejected += 1
            except (identity.NotPending, identity.HoldsMoney):
                refused.append(account.member_id)
        self.message_user(request, f"Rejected {rejected} registration(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, f"Kept {', '.join(refused)}: verified, or holding money or history.", messages.WARNING)


class SharedLineForm(forms.ModelForm):
    class Meta:
        model = SharedLine
        fields = ["phone_number", "name"]

    def clean_phone_number(self) -> str:
        try:
            return identity.parse_phone_number(self.cleaned_data["phone_number"])
        except identity.NotAPhoneNumber:
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


@admin.register(Recipient)
class RecipientAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "active", "created"]
    list_filter = ["active"]
    search_fields = ["code", "name"]
    readonly_fields = ["created"]
    actions = ["deactivate", "activate"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # deactivate instead: transfers point at recipients

    def get_readonly_fields(self, request: HttpRequest, obj: Recipient | None = None) -> list[str]:
        # A code callers already use does not change under them.
        return [*self.readonly_fields, "code"] if obj else self.readonly_fields

    @admin.action(description="Deactivate: callers can no longer send to them")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Recipient]) -> None:
        self.message_user(request, f"Deactivated {queryset.update(active=False)} recipient(s).", messages.SUCCESS)

    @admin.action(description="Activate")
    def activate(self, request: HttpRequest, queryset: QuerySet[Recipient]) -> None:
        self.message_user(request, f"Activated {queryset.update(active=True)} recipient(s).", messages.SUCCESS)


class _Echo:
    """A file-like object csv.writer writes a row to, handing the line straight back (for streaming)."""

    def write(self, value: str) -> str:
        return value


def _csv_time(moment: datetime) -> str:
    # Local, as the admin's lists and date filters show it, with the offset: the hour the clocks repeat stays apart.
    return local_time.local(moment).isoformat(sep=" ", timespec="seconds")


def _csv_rows(queryset: QuerySet[Transfer]):
    writer = csv.writer(_Echo())
    yield writer.writerow(["transfer", "member ID", "recipient code", "recipient name", "amount (dollars)", "status",
                           f"created ({settings.TIME_ZONE})", f"decided ({settings.TIME_ZONE})"])
    for transfer in queryset.select_related("account", "recipient").order_by("created", "pk").iterator(chunk_size=2000):
        dollars, cents = divmod(transfer.amount_cents, 100)
        yield writer.writerow([
            transfer.pk, transfer.account.member_id, transfer.recipient.code, transfer.recipient.name, f"{dollars}.{cents:02d}",
            transfer.status, _csv_time(transfer.created), _csv_time(transfer.decided) if transfer.decided else "",
        ])


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
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

    @admin.display(description="member ID", ordering="account__member_id")
    def member_id(self, transfer: Transfer) -> str:
        return transfer.account.member_id

    @admin.display(description="amount", ordering="amount_cents")
    def amount_display(self, transfer: Transfer) -> str:
        return transfer.amount_display

    @admin.action(description="Settle: the money was paid out")
    def settle(self, request: HttpRequest, queryset: QuerySet[Transfer]) -> None:
        self._decide(request, queryset, services.transfer_settle, "Settled")

    @admin.action(description="Reject: give the money back to the caller")
    def reject(self, request: HttpRequest, queryset: QuerySet[Transfer]) -> None:
        self._decide(request, queryset, services.transfer_reject, "Rejected")

    @admin.action(description="Export as CSV, for settlement (select all to export the whole filtered list)")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Transfer]) -> StreamingHttpResponse:
        # Streamed: a year of transfers never sits in memory at once.
        response = StreamingHttpResponse(_csv_rows(queryset), content_type="text/csv; charset=utf-8")
        when = local_time.local(timezone.now())
        response["Content-Disposition"] = f'attachment; filename="transfers-{when:%Y%m%d-%H%M}.csv"'
        return response

    def _decide(self, request: HttpRequest, queryset: QuerySet[Transfer], decide, done: str) -> None:
        decided, skipped = 0, 0
        for transfer in queryset.order_by("pk"):
            try:
                decide(transfer=transfer)
                decided += 1
            except services.TransferAlreadyDecided:
                skipped += 1
        self.message_user(request, f"{done} {decided} transfer(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} transfer(s) already settled or rejected.", messages.WARNING)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "member_id", "kind", "amount_display", "what", "created"]
    list_filter = ["kind", "created"]
    search_fields = ["account__member_id", "account__home_number"]
    list_select_related = ["account", "transfer__recipient", "corrects", "correction"]
    fields = ["account", "kind", "amount_display", "what", "created"]
    readonly_fields = fields
    actions = ["reverse_deposit"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # For the list's action only; history itself is never edited.
        return obj is None and request.user.has_perm("accounts.change_ledgerentry")

    @admin.display(description="member ID", ordering="account__member_id")
    def member_id(self, entry: LedgerEntry) -> str:
        return entry.account.member_id

    @admin.display(description="amount", ordering="amount_cents")
    def amount_display(self, entry: LedgerEntry) -> str:
        return format_dollars(entry.amount_cents)

    @admin.display(description="what")
    def what(self, entry: LedgerEntry) -> str:
        """The other half of a pair: the transfer's recipient, the correction of a deposit, the deposit corrected."""
        if entry.transfer_id:
            return f"transfer {entry.transfer_id} to {entry.transfer.recipient}"
        if entry.corrects_id:
            return f"takes back the deposit in entry {entry.corrects_id}"
        correction = getattr(entry, "correction", None)
        if correction is not None:
            return f"reversed by entry {correction.pk}"
        return ""

    @admin.action(description="Reverse deposit: take back a mistaken deposit with a correction entry")
    def reverse_deposit(self, request: HttpRequest, queryset: QuerySet[LedgerEntry]) -> None:
        for entry in queryset.order_by("pk"):
            try:
                correction = services.deposit_reverse(entry=entry)
            except services.NotADeposit:
                self.message_user(request, f"Entry {entry.pk} is not a deposit.", messages.WARNING)
            except services.AlreadyCorrected:
                self.message_user(request, f"Entry {entry.pk} was already reversed.", messages.WARNING)
            except services.InsufficientFunds:
                self.message_user(request, f"Entry {entry.pk}: the money was spent; it cannot be taken back.", messages.ERROR)
            else:
                self.log_change(request, entry, f"Reversed by entry {correction.pk}.")
                self.message_user(request, f"Reversed the deposit in entry {entry.pk} with entry {correction.pk}.",
                                  messages.SUCCESS)


class VerifyCodeForm(forms.Form):
    code = forms.RegexField(regex=r"^[0-9]{6}$", max_length=6, strip=True, help_text="the 6 digits the caller reads to you",
                            error_messages={"invalid": "A confirmation code is exactly 6 digits."})


@admin.register(ConfirmationCode)
class ConfirmationCodeAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "purpose", "transfer_id", "created", "expires", "verified_at"]
    list_filter = ["purpose", "verified_at"]
    search_fields = ["account__member_id", "account__home_number"]
    list_select_related = ["account", "transfer"]
    exclude = ["code_hash"]  # never shown: with the pepper it would give the code away
    change_list_template = "admin/accounts/confirmationcode/change_list.html"

    def get_urls(self):
        return [path("verify/", self.admin_site.admin_view(self.verify_view), name="accounts_confirmationcode_verify"), *super().get_urls()]

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        """What `manage.py verify_code` does, as a form: look the code up and mark it verified."""
        if not request.user.has_perm("accounts.view_confirmationcode"):
            return TemplateResponse(request, "admin/accounts/confirmationcode/verify.html", status=403,
                                    context={**self.admin_site.each_context(request), "denied": True})
        result = None
        form = VerifyCodeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = services.describe_code_check(services.confirmation_code_verify(code=form.cleaned_data["code"]))
            except services.UnknownCode:
                result = "Unknown code: no confirmation code matches it."
            form = VerifyCodeForm()  # the code is not shown back on the page
        context = {**self.admin_site.each_context(request), "title": "Verify a confirmation code", "form": form,
                   "result": result, "opts": self.model._meta}
        return TemplateResponse(request, "admin/accounts/confirmationcode/verify.html", context)
