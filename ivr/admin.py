from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ivr.models import CallSession


@admin.register(CallSession)
class CallSessionAdmin(admin.ModelAdmin):
    """Calls in progress, read-only. Scratch data and the answer digest are never shown."""

    list_display = [
        "call_sid",
        "caller",
        "step",
        "account",
        "timeouts",
        "invalid_entries",
        "pin_failures",
        "updated",
        "ended",
    ]
    list_filter = ["step", "ended"]
    search_fields = ["call_sid", "caller"]
    fields = [
        "call_sid",
        "caller",
        "step",
        "prompt_number",
        "account",
        "timeouts",
        "invalid_entries",
        "pin_failures",
        "created",
        "updated",
        "ended",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the status callback and purge_call_sessions remove calls
