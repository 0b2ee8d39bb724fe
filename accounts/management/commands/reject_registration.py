from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import errors, identity
from accounts.errors import UnknownAccount


class Command(BaseCommand):
    help = "Remove a registration staff never verified and that holds no money, freeing its member ID and number."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("member_id", help="the 6-digit member ID")

    def handle(self, *args: object, member_id: str, **options: object) -> None:
        member_id = member_id.strip()
        if not identity.MEMBER_ID.fullmatch(member_id):
            raise CommandError(f"a member ID is exactly 6 digits, not {member_id!r}")
        try:
            account = identity.registration_reject(member_id=member_id)
        except UnknownAccount:
            raise CommandError(f"no account has the member ID {member_id}") from None
        except errors.NotPending:
            raise CommandError(
                f"the account {member_id} is verified: only an unverified registration can be rejected"
            ) from None
        except errors.HoldsMoney:
            raise CommandError(f"the account {member_id} has money or history: it cannot be removed") from None
        freed = f" and the home number {account.home_number}" if account.home_number else ""
        self.stdout.write(f"Rejected the registration of {member_id}: the member ID{freed} can register again.")
