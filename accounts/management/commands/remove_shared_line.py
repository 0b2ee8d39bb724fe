from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import SharedLine
from accounts.operator import phone_argument


class Command(BaseCommand):
    help = "Unmark a shared phone: remove_shared_line PHONE."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("phone", help="+12026230001, 202-623-0001 or (202) 623-0001")

    def handle(self, *args: object, phone: str, **options: object) -> None:
        number = phone_argument(phone)
        deleted, _ = SharedLine.objects.filter(phone_number=number).delete()
        if not deleted:
            raise CommandError(f"{number} is not a shared line")
        self.stdout.write(f"{number} is no longer a shared line.")
