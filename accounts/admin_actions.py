"""How an admin action that changes state runs: permission, a confirmation page, then the change and its audit trail.

Modelled on Django's delete_selected: the first POST (from the action menu)
answers a page listing what would change for each selected object, holding the
selected ids and post=yes; only that page's POST acts. Each object is then
changed by its service and, in the same transaction, given a LogEntry (the
admin's history) with the operator as its user; the log line names the
operator too. The services refuse to do a thing twice (a decided transfer, a
reversed deposit, an active account), so a confirmation sent twice changes
things once, and only what changed is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from accounts.dollars import format_dollars

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    """What an action would do to one selected object, as the confirmation page says it."""

    what: str
    change: str
    # False when nothing would change (already done, or refused): listed, but not counted as a change.
    changes: bool = True


@dataclass(frozen=True)
class Outcome:
    """What acting on one object did: `history` when it changed something, else `refused` saying why not."""

    history: str | None = None
    refused: str | None = None
    # The object is gone (a rejected registration): its history entry is a deletion.
    deleted: bool = False
    # Something changed, but not what the action is for (Stripe refused a refund, or its answer was lost):
    # recorded in the history, said to the operator as a warning, and not counted in the summary.
    warning: bool = False


class ReadOnly:
    """For a ModelAdmin of history the service writes and operators only read: no add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class MoneyColumns:
    """The member ID and the amount, as lists of money (transfers, ledger entries, card deposits) show them."""

    @admin.display(description="member ID", ordering="account__member_id")
    def member_id(self, obj: models.Model) -> str:
        return obj.account.member_id

    @admin.display(description="amount", ordering="amount_cents")
    def amount_display(self, obj: models.Model) -> str:
        return format_dollars(obj.amount_cents)


class GuardedActionsAdmin(admin.ModelAdmin):
    """A ModelAdmin whose state-changing actions need the change permission and a confirmation."""

    confirmation_template = "admin/accounts/confirm_action.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # Django answers an action the user may not run with "No action selected." and a redirect;
        # a POST made without the menu by someone without the permission is refused outright.
        if request.method == "POST":
            asked = {name for name in request.POST.getlist("action") if name}
            if asked - set(self.get_actions(request)):
                raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def confirm_then_act(
        self,
        request: HttpRequest,
        queryset: models.QuerySet,
        *,
        verb: str,
        title: str,
        plan: Callable[[models.Model], Planned],
        act: Callable[[models.Model], Outcome],
        summary: str,
        calls_out: bool = False,
    ) -> TemplateResponse | None:
        """The confirmation page for the selection, or, once confirmed (post=yes), the change itself.

        verb is the action's name, as the menu posts it and the log says it; summary takes {count}, the objects changed.
        """
        self._require_change_permission(request)
        selected = list(queryset.order_by("pk"))
        if request.POST.get("post") != "yes":
            return self._confirmation_page(request, selected, verb=verb, title=title, plan=plan)
        changed = self.act_and_record(request, selected, verb=verb, act=act, calls_out=calls_out)
        self.message_user(request, summary.format(count=changed), messages.SUCCESS)
        return None

    def act_and_record(
        self,
        request: HttpRequest,
        objects: Iterable[models.Model],
        *,
        verb: str,
        act: Callable[[models.Model], Outcome],
        calls_out: bool = False,
    ) -> int:
        """Act on each object; record what changed in its history and the log, say what did not. How many changed.

        calls_out: the action asks someone over the network (Stripe). It then commits its own short
        transactions and is never run inside one of ours, so that no row stays locked while it waits; its
        history entry is written right after, in a transaction of its own.
        """
        self._require_change_permission(request)
        operator = request.user.get_username()
        changed = 0
        for obj in objects:
            pk, name = obj.pk, obj._meta.model_name
            if calls_out:
                outcome = act(obj)
                if outcome.history:
                    self._record(request, obj, outcome)
            else:
                # The change and its history entry commit together, or neither does.
                with transaction.atomic():
                    outcome = act(obj)
                    if outcome.history:
                        self._record(request, obj, outcome)
            if outcome.history:
                logger.info("admin %s: operator=%s %s=%s %s", verb, operator, name, pk, outcome.history)
                if outcome.warning:
                    self.message_user(request, f"{obj}: {outcome.history}", messages.WARNING)
                else:
                    changed += 1
            else:
                logger.info(
                    "admin %s: operator=%s %s=%s nothing changed: %s", verb, operator, name, pk, outcome.refused
                )
                self.message_user(request, f"{obj}: {outcome.refused}", messages.WARNING)
        return changed

    def _require_change_permission(self, request: HttpRequest) -> None:
        # The menu offers an action only with its permission; it is refused here too, whatever called it.
        if not self.has_change_permission(request):
            raise PermissionDenied

    def _record(self, request: HttpRequest, obj: models.Model, outcome: Outcome) -> None:
        if outcome.deleted:
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=[obj],
                action_flag=DELETION,
                change_message=outcome.history,
                single_object=True,
            )
        else:
            self.log_change(request, obj, outcome.history)

    def _confirmation_page(
        self,
        request: HttpRequest,
        selected: list[models.Model],
        *,
        verb: str,
        title: str,
        plan: Callable[[models.Model], Planned],
    ) -> TemplateResponse:
        rows = [plan(obj) for obj in selected]
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": opts,
            "rows": rows,
            "changes": sum(row.changes for row in rows),
            "selected": [obj.pk for obj in selected],
            "action": verb,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.confirmation_template, context)
