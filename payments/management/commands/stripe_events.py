"""`manage.py stripe_events`: Stripe's events as this service received them; missed ones fetched and applied."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from myibot import local_time
from payments import events, stripe_api
from payments.errors import StripeFailed
from payments.models import StripeEvent


class Command(BaseCommand):
    help = (
        "Stripe's events: stripe_events lists those received in the last day and how each was applied; "
        "--since DATE fetches from Stripe every event of the types the service handles since then (Stripe "
        "keeps 30 days) and applies those never received or not applied yet; --replay EVENT_ID applies one "
        "again if it was not applied. Applying an event twice changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        what = parser.add_mutually_exclusive_group()
        what.add_argument(
            "--since", metavar="YYYY-MM-DD", help="fetch and apply what Stripe sent since this local date"
        )
        what.add_argument("--replay", metavar="EVENT_ID", help="fetch this event from Stripe and apply it")

    def handle(self, *args: object, since: str | None, replay: str | None, **options: object) -> None:
        if (since or replay) and not stripe_api.configured():
            raise CommandError("STRIPE_SECRET_KEY is not set: Stripe's events cannot be fetched. Nothing was changed.")
        try:
            if replay:
                self._apply(stripe_api.event_retrieve(replay.strip()))
            elif since:
                self._catch_up(self._date(since))
            else:
                self._list(timezone.now() - timedelta(days=1))
        except StripeFailed as error:
            raise CommandError(f"Stripe did not answer: {error}. Nothing more was changed.") from None
        except events.NotAppliedYet as error:
            raise CommandError(f"not applied yet: {error}. Run it again.") from None

    def _date(self, text: str) -> datetime:
        try:
            day = datetime.strptime(text.strip(), "%Y-%m-%d").date()
        except ValueError:
            raise CommandError(f"--since takes a date, YYYY-MM-DD, not {text!r}") from None
        start = local_time.day_start(day)
        if start < timezone.now() - timedelta(days=30):
            raise CommandError("Stripe keeps 30 days of events: --since at most 30 days ago")
        return start

    def _catch_up(self, since: datetime) -> None:
        applied, waiting = 0, []
        for event in stripe_api.events_since(since=since, types=sorted(events.HANDLERS)):
            done = StripeEvent.objects.filter(event_id=event.get("id", "")).exclude(
                outcome__in=[StripeEvent.Outcome.RECEIVED, StripeEvent.Outcome.FAILED]
            )
            if done.exists():
                continue
            try:
                self._apply(event)
            except events.NotAppliedYet as why:
                # It waits (on a charge not credited yet, say): the events after it may be what it waits for,
                # so they are applied all the same, and it is tried again by the next run (its row says failed).
                self.stdout.write(f"{event.get('id', '')} {event.get('type', '')}: not applied yet: {why}")
                waiting.append(event.get("id", ""))
                continue
            applied += 1
        self.stdout.write(f"{applied} event(s) applied that had not been; the others were applied when they came.")
        if waiting:
            raise CommandError(f"{len(waiting)} event(s) not applied yet (above): run it again.")

    def _apply(self, event: dict) -> None:
        row = events.event_receive(event)
        self.stdout.write(f"{row.event_id} {row.type}: {row.outcome}: {row.detail}")

    def _list(self, since: datetime) -> None:
        rows = StripeEvent.objects.filter(received__gte=since).order_by("received")
        for row in rows:
            when = local_time.local(row.received).strftime("%Y-%m-%d %H:%M:%S")
            self.stdout.write(f"{when} {row.event_id} {row.type}: {row.outcome}: {row.detail}")
        if not rows:
            self.stdout.write("No event from Stripe in the last day.")
