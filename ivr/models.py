"""The state of calls in progress, kept in the database, never in process memory.

Any webhook of a call may reach any gunicorn worker on any machine, so every
request loads the call from here and saves it back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, models
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property

from accounts.models import Account
from myibot.db import (
    Columns,
    Question,
    ReadAhead,
    ask,
    cast_types,
    fetch_all,
    row_to_instance,
    rows_by_shape,
    select_columns,
    union_of_shapes,
)

# The first step of every call.
ENTRY_STEP = "entry"


class CallSessionQuerySet(models.QuerySet):
    def stale(self, *, idle_for: timedelta, now: datetime | None = None) -> CallSessionQuerySet:
        """Calls that ended, or that nobody has touched for idle_for (a lost status callback)."""
        now = now or timezone.now()
        return self.filter(Q(ended__isnull=False) | Q(updated__lt=now - idle_for))


class CallSession(models.Model):
    call_sid = models.CharField(max_length=64, unique=True)
    # The caller's number, E.164, or "" when it was withheld (never stored).
    caller = models.CharField(max_length=16, blank=True, help_text="the caller's number, E.164, or empty when withheld")
    # Whether the caller ID may open PIN-only sign-in: a valid number the carrier
    # vouches for (STIR/SHAKEN attestation A, ivr/caller_id.py). Decided once, at the first webhook.
    caller_trusted = models.BooleanField(default=False)
    # The call came to the deposit line (a family paying by card), not the members' number: no sign-in,
    # and its first prompt, * and the <Pay> verb are the deposit line's (ivr/steps/deposit_line.py).
    deposit_line = models.BooleanField(default=False)
    # The caller's language for this call; empty until they choose or are recognised.
    language = models.CharField(max_length=5, blank=True)
    step = models.CharField(max_length=32, default=ENTRY_STEP)
    # Which prompt of the call this is: every prompt served gets the next
    # number, and its URLs carry it, so that a stale or replayed request is
    # told apart from an answer to the prompt the caller is hearing.
    prompt_number = models.PositiveIntegerField(default=0)
    # Small per-step values (member ID, a PIN's hash, an amount, a sealed code).
    # Never the digits of a PIN or a code.
    scratch = models.JSONField(default=dict, blank=True)
    account = models.ForeignKey("accounts.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    timeouts = models.PositiveSmallIntegerField(default=0, help_text="silences in a row at this prompt")
    invalid_entries = models.PositiveSmallIntegerField(default=0, help_text="wrong keys at this prompt")
    # Answers understood but refused with a reason (a weak PIN, an amount over a limit).
    refusals = models.PositiveSmallIntegerField(default=0, help_text="refused answers in a row at this prompt")
    pin_failures = models.PositiveSmallIntegerField(default=0, help_text="wrong PINs in this call")
    # Help at this prompt offered to connect to staff: a second 0 dials STAFF_PHONE_NUMBER.
    staff_offered = models.BooleanField(default=False)
    # A digest of the last answer taken, to recognise Twilio's retry of it,
    # and the notices said before the prompt, so that a retry hears them too.
    last_answer = models.CharField(max_length=64, blank=True)
    last_notices = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now, db_index=True)
    ended = models.DateTimeField(null=True, blank=True, help_text="when we said goodbye")

    objects = CallSessionQuerySet.as_manager()

    STEP_FIELDS = (
        "language",
        "step",
        "prompt_number",
        "scratch",
        "account",
        "timeouts",
        "invalid_entries",
        "refusals",
        "pin_failures",
        "staff_offered",
        "last_answer",
        "last_notices",
        "updated",
        "ended",
    )

    def __str__(self) -> str:
        return f"Call …{self.call_sid[-6:]} at {self.step}"

    @classmethod
    def find(cls, call_sid: str, *, locked: bool) -> CallSession | None:
        """The call with its account, read in one query whose SQL is built once (myibot/db.py).

        What CallSession.objects.select_related("account").filter(call_sid=...)
        reads, without compiling it on every webhook. locked: the call's row
        stays locked (FOR UPDATE OF the call only) until the transaction ends.
        """
        with connection.cursor() as cursor:
            cursor.execute(_find_statement(locked=locked), [call_sid])
            row = cursor.fetchone()
        return None if row is None else cls._from_row(row)

    @classmethod
    def find_with(
        cls, call_sid: str, questions: tuple[Question, ...], *, entry: str, now: datetime
    ) -> CallSession | None:
        """find(locked=False), with the answers to questions about the call's account and the caller's entry
        (myibot.db.Question) read in the same statement: what the step's answer will ask costs the caller
        no round trip of its own. call.asked(question) then gives them; none are kept for a call signed out."""
        reading = _Reading(call_sid, questions, entry=entry, now=now)
        return reading.call(fetch_all(reading.sql, reading.params))

    @classmethod
    def read_ahead(
        cls, call_sid: str, questions: tuple[Question, ...], *, entry: str, now: datetime
    ) -> CallAhead | None:
        """find(locked=False), or find_with when there are questions, sent now and read when the step needs the
        call (myibot.db.ReadAhead): None where it is not sent (SQLite), and the step reads as usual."""
        reading = _Reading(call_sid, questions, entry=entry, now=now)
        sent = ReadAhead.send(reading.sql, reading.params)
        return None if sent is None else CallAhead(reading, sent)

    def asked(self, question: Question, *, entry: str = "", now: datetime | None = None) -> object:
        """question's answer for this call's account and entry: read with the call where the step's answer said it
        would be asked (find_with, Step.read_with_call), else asked now, on its own."""
        if question.key(entry) in self.read_with:
            return self.read_with[question.key(entry)]
        return ask(question, account=self.account_id, entry=entry, now=now or timezone.now())

    @cached_property
    def read_with(self) -> dict[tuple[str, str], object]:
        """Answers read with the call (find_with), by question and entry."""
        return {}

    @classmethod
    def _from_row(cls, row: tuple) -> CallSession:
        """The call and its account (None signed out) from their columns, in select_columns' order."""
        width = len(cls._meta.concrete_fields)
        call = row_to_instance(cls, row[:width])
        account_field = cls._meta.get_field("account")
        account = row_to_instance(account_field.related_model, row[width:]) if call.account_id is not None else None
        account_field.set_cached_value(call, account)
        return call

    @classmethod
    def forget(cls, call_sid: str, *, caller: str, deposit_line: bool | None) -> bool:
        """Delete the call if it is this caller's (and on this line, unless None): whether it was. One statement."""
        key = (connection.vendor, deposit_line is not None)
        if key not in _FORGET_SQL:
            call = Columns(cls)
            on_line = f" AND {call.deposit_line} = %s" if deposit_line is not None else ""
            _FORGET_SQL[key] = f"DELETE FROM {call.table} WHERE {call.call_sid} = %s AND {call.caller} = %s{on_line}"  # noqa: S608 - names from model metadata, values as parameters
        with connection.cursor() as cursor:
            cursor.execute(_FORGET_SQL[key], [call_sid, caller, *([deposit_line] if deposit_line is not None else [])])
            return cursor.rowcount > 0

    @property
    def signed_in(self) -> bool:
        return self.account_id is not None

    @property
    def trusted_number(self) -> str:
        """The caller's number when its caller ID is trusted (ivr/caller_id.py), else ""."""
        return self.caller if self.caller_trusted else ""

    def go_to(self, step: str) -> None:
        """Move to a step: a new prompt, with its own strike counts."""
        self.step = step
        self.timeouts = 0
        self.invalid_entries = 0
        self.refusals = 0
        self.staff_offered = False

    def restart(self) -> None:
        """Back to the entry prompt, signed out, as at the start of a call."""
        self.go_to(ENTRY_STEP)
        self.account = None
        self.scratch = {}
        self.ended = None


_FIND_SQL: dict[tuple[str, bool], str] = {}
_FORGET_SQL: dict[tuple[str, bool], str] = {}
_FIND_WITH_SQL: dict[tuple[str, tuple[str, ...]], str] = {}


class _Reading:
    """The statement that reads a call unlocked, with what questions ask of it (none: find's own), and how its
    rows become the call (find, find_with, read_ahead)."""

    def __init__(self, call_sid: str, questions: tuple[Question, ...], *, entry: str, now: datetime) -> None:
        self.call_sid, self.questions, self.entry = call_sid, questions, entry
        self.params: list[object] = [call_sid]
        if not questions:
            self.sql = _find_statement(locked=False)
            return
        key = (connection.vendor, tuple(question.name for question in questions))
        if key not in _FIND_WITH_SQL:
            _FIND_WITH_SQL[key] = _find_with_sql(questions)
        self.sql = _FIND_WITH_SQL[key]
        self.widths = [len(CallSession._meta.concrete_fields) + len(Account._meta.concrete_fields)]
        for question in questions:
            self.params += question.params(call_sid, entry, now)
            self.widths += question.widths()

    def call(self, rows: list[tuple]) -> CallSession | None:
        if not self.questions:
            return CallSession._from_row(rows[0]) if rows else None
        found, *answers = rows_by_shape(rows, self.widths)
        if not found:
            return None
        call = CallSession._from_row(found[0])
        if call.account_id is not None:
            for question in self.questions:
                rows, answers = answers[: len(question.widths())], answers[len(question.widths()) :]
                call.read_with[question.key(self.entry)] = question.answer(rows)
        return call


class CallAhead:
    """A call's read sent ahead (CallSession.read_ahead): the call, once, for the step it was sent for."""

    def __init__(self, reading: _Reading, sent: ReadAhead) -> None:
        self._reading, self._sent = reading, sent

    def reads(self, call_sid: str, questions: tuple[Question, ...], *, entry: str) -> bool:
        """Whether this is the read find_with (or find, unlocked) would make now, and is still to be taken."""
        reading = self._reading
        return not self._sent.taken and (reading.call_sid, reading.questions, reading.entry) == (
            call_sid,
            questions,
            entry,
        )

    def call(self) -> CallSession | None:
        return self._reading.call(self._sent.rows())

    def discard(self) -> None:
        """Its rows dropped if no step took them: the connection is free for the next statement."""
        self._sent.discard()


def _find_with_sql(questions: tuple[Question, ...]) -> str:
    """The call with its account, and each question's queries for the call's account, in one statement."""
    call = Columns(CallSession)
    account = f"(SELECT {call.account} FROM {call.table} WHERE {call.call_sid} = %s)"  # noqa: S608 - names from model metadata
    return union_of_shapes(
        [
            (_find_sql(locked=False), cast_types(CallSession) + cast_types(Account)),
            *(query for question in questions for query in question.queries(account)),
        ]
    )


def _find_statement(*, locked: bool) -> str:
    """find's SQL, built once per database vendor."""
    key = (connection.vendor, locked)
    if key not in _FIND_SQL:
        _FIND_SQL[key] = _find_sql(locked=locked)
    return _FIND_SQL[key]


def _find_sql(*, locked: bool) -> str:
    quote = connection.ops.quote_name
    account_field = CallSession._meta.get_field("account")
    call_table, account_table = quote(CallSession._meta.db_table), quote(account_field.related_model._meta.db_table)
    sql = (
        f"SELECT {select_columns(CallSession)}, {select_columns(account_field.related_model)} FROM {call_table} "  # noqa: S608 - names from model metadata, values as parameters
        f"LEFT OUTER JOIN {account_table} ON {call_table}.{quote(account_field.column)} = "
        f"{account_table}.{quote(account_field.target_field.column)} "
        f"WHERE {call_table}.{quote(CallSession._meta.get_field('call_sid').column)} = %s"
    )
    # SQLite has no row locks: its IMMEDIATE transactions lock the whole file instead (settings).
    if locked and connection.features.has_select_for_update:
        sql += f" FOR UPDATE OF {call_table}" if connection.features.has_select_for_update_of else " FOR UPDATE"
    return sql
