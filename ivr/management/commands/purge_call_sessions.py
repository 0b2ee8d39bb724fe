from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import identity
from ivr.models import CallSession


class Command(BaseCommand):
    help = (
        "Delete the state of calls that ended or went idle (CALL_SESSION_MAX_IDLE_MINUTES), and release "
        "registrations nobody verified within REGISTRATION_VERIFY_DAYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--idle-minutes", type=int, default=None, help="override the idle limit")

    def handle(self, *args: object, idle_minutes: int | None, **options: object) -> None:
        minutes = idle_minutes if idle_minutes is not None else settings.CALL_SESSION_MAX_IDLE_MINUTES
        if minutes < 1:
            raise CommandError("--idle-minutes must be at least 1: a shorter limit would cut off calls in progress")
        deleted, _ = CallSession.objects.stale(idle_for=timedelta(minutes=minutes)).delete()
        released = identity.registrations_release_expired()
        forgotten = identity.sign_in_failures_forget()
        self.stdout.write(
            f"Deleted the state of {deleted} ended or idle call(s); released {released} unverified registration(s) "
            f"older than {settings.REGISTRATION_VERIFY_DAYS} days; forgot {forgotten} old failed sign-in mark(s)."
        )
