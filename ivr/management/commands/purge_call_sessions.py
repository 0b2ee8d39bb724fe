from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ivr.models import CallSession


class Command(BaseCommand):
    help = "Delete the state of calls that ended or went idle (CALL_SESSION_MAX_IDLE_MINUTES, default 120)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--idle-minutes", type=int, default=None, help="override the idle limit")

    def handle(self, *args: object, idle_minutes: int | None, **options: object) -> None:
        minutes = idle_minutes if idle_minutes is not None else settings.CALL_SESSION_MAX_IDLE_MINUTES
        if minutes < 1:
            raise CommandError("--idle-minutes must be at least 1: a shorter limit would cut off calls in progress")
        deleted, _ = CallSession.objects.stale(idle_for=timedelta(minutes=minutes)).delete()
        self.stdout.write(f"Deleted the state of {deleted} ended or idle call(s).")
