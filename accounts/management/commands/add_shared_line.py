from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Account, SharedLine
from accounts.operator import phone_argument


class Command(BaseCommand):
    help = "Mark a phone many callers share (a housing unit's payphone): add_shared_line PHONE [NAME]."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("phone", help="+12026230001, 202-623-0001 or (202) 623-0001")
        parser.add_argument("name", nargs="*", help="where it is, e.g. Unit B payphone")

    def handle(self, *args: object, phone: str, name: list[str], **options: object) -> None:
        number = phone_argument(phone)
        label = " ".join(name).strip()
        if len(label) > 100:
            raise CommandError("the name must be at most 100 characters")
        line, created = SharedLine.objects.get_or_create(phone_number=number, defaults={"name": label})
        if not created:
            raise CommandError(f"{number} is already a shared line ({line})")
        self.stdout.write(f"{line} is a shared line: every caller on it must give a member ID.")
        home_of = Account.objects.filter(home_number=number).first()
        if home_of is not None:
            # Its owner simply gives the member ID from now on.
            self.stdout.write(f"Note: it is the home number of {home_of}; PIN-only sign-in from it is now off.")
