"""Confirmation codes: issued once in the clear to the caller, kept as a keyed hash, checked by staff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import codes
from accounts.dollars import format_dollars
from accounts.errors import UnknownCode
from accounts.models import (
    Account,
    ConfirmationCode,
    LedgerEntry,
    Transfer,
)
from myibot import local_time

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodeCheck:
    confirmation_code: ConfirmationCode
    already_verified: bool
    expired: bool


def confirmation_code_issue(
    *, account: Account, purpose: str, now: datetime, transfer: Transfer | None = None, entry: LedgerEntry | None = None
) -> str:
    """Store a new code's keyed hash and return the code, the only time it exists in the clear."""
    for _ in range(10):
        code = codes.new_code()
        digest = codes.code_digest(code)
        # Among codes still valid, one code must name one thing.
        if not ConfirmationCode.objects.filter(code_hash=digest, expires__gt=now).exists():
            break
    ConfirmationCode.objects.create(
        account=account,
        purpose=purpose,
        transfer=transfer,
        entry=entry,
        code_hash=digest,
        created=now,
        expires=now + timedelta(days=settings.CONFIRMATION_CODE_TTL_DAYS),
    )
    return code


@transaction.atomic
def confirmation_code_verify(*, code: str, now: datetime | None = None) -> CodeCheck:
    """Look a code up by its keyed hash and mark it verified, once; UnknownCode if none."""
    now = now or timezone.now()
    if not codes.is_code(code):
        raise UnknownCode
    found = (
        ConfirmationCode.objects.select_for_update(of=("self",))
        .filter(code_hash=codes.code_digest(code))
        .select_related("account", "transfer__recipient", "entry")
        .order_by("-expires")
        .first()
    )
    if found is None:
        raise UnknownCode
    already_verified = found.verified_at is not None
    expired = found.is_expired(now)
    if not already_verified and not expired:
        found.verified_at = now
        found.save(update_fields=["verified_at"])
        if found.purpose == ConfirmationCode.Purpose.REGISTRATION and not found.account.is_verified:
            # The caller read staff the code they heard at registration: money may now move.
            found.account.verify(now)
            found.account.save(update_fields=["status", "verified_at"])
            logger.info("account verified: account=%s", found.account_id)
    logger.info("confirmation checked: confirmation=%s expired=%s already=%s", found.pk, expired, already_verified)
    return CodeCheck(confirmation_code=found, already_verified=already_verified, expired=expired)


def describe_code_check(check: CodeCheck) -> str:
    """What an operator is told about a code: for verify_code and the admin's form."""
    found = check.confirmation_code
    if found.transfer_id:
        transfer = found.transfer
        what = (
            f"transfer {transfer.pk} of {format_dollars(transfer.amount_cents)} to {transfer.recipient} "
            f"from {found.account}, {transfer.status}"
        )
    elif found.entry_id:
        entry = found.entry
        taken_back = " (refunded since)" if LedgerEntry.objects.filter(corrects=entry).exists() else ""
        what = f"card deposit of {format_dollars(entry.amount_cents)} to {found.account}, ledger entry {entry.pk}{taken_back}"
    else:
        what = f"registration of {found.account} ({found.account.get_status_display().lower()})"
    when = f"issued {local_time.stamp(found.created)}"
    if check.expired:
        state = f"EXPIRED on {local_time.stamp(found.expires)}; not verified"
    elif check.already_verified:
        state = f"already verified on {local_time.stamp(found.verified_at)}"
    else:
        state = "verified now"
    return f"Code confirms the {what}; {when}; {state}."
