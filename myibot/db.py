"""SQL the ORM would write, where the ORM cannot say it or costs too much on every webhook.

Inserting a row that may already exist, without a unique violation PostgreSQL would log.

A failed INSERT makes PostgreSQL write the row's values to its own log
("Key (member_id)=(123456) already exists"), where no caller data may go.
INSERT ... ON CONFLICT DO NOTHING RETURNING id never fails on a duplicate: it
just returns no row. PostgreSQL and SQLite (3.35+) both speak it; Django's
bulk_create(ignore_conflicts=True) cannot say whether the row went in.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.db import Error as DatabaseDriverError
from django.db import connection, models

logger = logging.getLogger(__name__)


def insert_unless_conflict(instance: models.Model, *, asynchronous_commit: bool = False) -> bool:
    """Insert instance; True and its pk set if it went in, False if a unique rule already held the values.

    asynchronous_commit: as update_where's (outside a transaction on PostgreSQL, the one statement commits
    without waiting for the disk).
    """
    meta = instance._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    rows = inserted(", ".join(["%s"] * len(fields)), asynchronous_commit=asynchronous_commit)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) {rows} "
        f"ON CONFLICT DO NOTHING RETURNING {quote(meta.pk.column)}"
    )
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding, instance._state.db = False, connection.alias
    return True


def inserted(values: str, *, asynchronous_commit: bool) -> str:
    """What an INSERT inserts: VALUES (values), or, committed without waiting for the disk where it can
    (asynchronous_source), SELECT values FROM the clause that says so."""
    source = asynchronous_source() if asynchronous_commit else ""
    return f"SELECT {values}{source}" if source else f"VALUES ({values})"


def asynchronous_source() -> str:
    """A FROM clause that has this one statement commit without waiting for its WAL to reach the disk, or "".

    On PostgreSQL, outside a transaction only: synchronous_commit off for the statement's own implicit
    transaction (set_config(..., true)), about a third of a small write's time. A crash of the database, or
    a failover to a replica, can then lose it (the writes of the last three wal_writer_delay, 0.6 s by
    default), never corrupt it. Inside a transaction, "": the transaction's commit stays durable.
    """
    if connection.vendor != "postgresql" or not connection.get_autocommit() or connection.in_atomic_block:
        return ""
    return " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit"


# Reading and writing a row with SQL built once --------------------------------
#
# Every webhook reads its call and writes it back. Through the ORM each of those
# compiles its query anew, which costs more than the database takes to answer
# it; these build the same SQL once per model from its _meta, and read values
# back through the converters the ORM applies, so a field added to a model is
# read and written here too.


def select_columns(model: type[models.Model]) -> str:
    """Every concrete column of model, table-qualified, in field order (what row_to_instance takes)."""
    quote, table = connection.ops.quote_name, model._meta.db_table
    return ", ".join(f"{quote(table)}.{quote(field.column)}" for field in model._meta.concrete_fields)


# Per database vendor, model and fields: the columns that have converters (by position), with them.
_converters: dict[tuple[str, type[models.Model], tuple[str, ...]], list[tuple[int, list[Callable], object]]] = {}


def _column_converters(
    model: type[models.Model], attnames: tuple[str, ...]
) -> list[tuple[int, list[Callable], object]]:
    key = (connection.vendor, model, attnames)
    if key not in _converters:
        fields = [model._meta.get_field(name) for name in attnames]
        columns = [field.get_col(model._meta.db_table) for field in fields]
        converting = [
            (position, connection.ops.get_db_converters(column) + field.get_db_converters(connection), column)
            for position, (field, column) in enumerate(zip(fields, columns, strict=True))
        ]
        # Most columns have none: a row is read on every webhook, and only these are looked at.
        _converters[key] = [(position, converters, column) for position, converters, column in converting if converters]
    return _converters[key]


def converted(model: type[models.Model], attnames: tuple[str, ...], values: Sequence[object]) -> list[object]:
    """Columns of model's fields (by attname, in that order) as the ORM reads them: SQLite's dates are text."""
    if len(values) != len(attnames):
        raise ValueError(f"{len(values)} values for {len(attnames)} fields of {model.__name__}")
    result, database = list(values), connection
    for position, converters, column in _column_converters(model, attnames):
        for converter in converters:
            result[position] = converter(result[position], column, database)
    return result


def row_to_instance(model: type[models.Model], values: Sequence[object]) -> models.Model:
    """An instance from its columns (in select_columns' order), converted as the ORM converts them."""
    attnames = _attnames(model)
    return model.from_db(connection.alias, attnames, converted(model, attnames, values))


@cache
def _attnames(model: type[models.Model]) -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields)


# Per statement shape: its SQL, and the fields whose values it sets, in order.
_updates: dict[
    tuple[str, type[models.Model], tuple[str, ...], tuple[str, ...], str], tuple[str, list[models.Field]]
] = {}


def update_where(
    instance: models.Model,
    fields: Sequence[str],
    *,
    where: dict[str, object] | None = None,
    asynchronous_commit: bool = False,
) -> int:
    """UPDATE instance's row, setting fields from it, where its pk and where hold; the rows changed (0 or 1).

    QuerySet.filter(pk=..., **where).update(...) with its SQL built once; the
    values go through get_db_prep_save, as the ORM's do.

    asynchronous_commit: this one statement commits without waiting for the
    disk, where it can (asynchronous_source).
    """
    return update_later(instance, fields, where=where, asynchronous_commit=asynchronous_commit)()


def update_later(
    instance: models.Model,
    fields: Sequence[str],
    *,
    where: dict[str, object] | None = None,
    asynchronous_commit: bool = False,
) -> Callable[[], int]:
    """update_where's statement with the instance's values as they are now, to run when called (0 or 1 rows)."""
    meta, where = instance._meta, where or {}
    source = asynchronous_source() if asynchronous_commit else ""
    key = (connection.vendor, type(instance), tuple(fields), tuple(where), source)
    if key not in _updates:
        quote = connection.ops.quote_name
        setting = [meta.get_field(name) for name in fields]
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in setting)
        conditions = " AND ".join(
            f"{quote(meta.db_table)}.{quote(meta.get_field(name).column)} = %s" for name in (meta.pk.name, *where)
        )
        _updates[key] = (f"UPDATE {quote(meta.db_table)} SET {assignments}{source} WHERE {conditions}", setting)  # noqa: S608 - names from model metadata, values as parameters
    sql, setting = _updates[key]
    # The values as they are now (a copy of a JSON value, so that what runs is what is here now), made ready
    # for the database only when the statement runs: after the answer, where the caller does not wait for it.
    values = [_as_now(getattr(instance, field.attname)) for field in setting]
    pk, conditions = instance.pk, list(where.values())

    def update() -> int:
        params = [field.get_db_prep_save(value, connection) for field, value in zip(setting, values, strict=True)]
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, pk, *conditions])
            return cursor.rowcount

    return update


def _as_now(value: object) -> object:
    return copy.deepcopy(value) if isinstance(value, dict | list) else value


# Queries written by hand, built once ------------------------------------------
#
# A few queries run on every balance or amount a member hears. Compiled by the
# ORM each time they cost several times what PostgreSQL takes to answer them;
# written here once, with the model's own table and column names, they cost
# the round trip. tests/test_query_plans.py checks each uses an index.


class Columns:
    """A model's table and its fields' columns, quoted as this database quotes them: Columns(Account).balance_cents."""

    def __init__(self, model: type[models.Model], *, alias: str = "") -> None:
        self.model, self.alias = model, alias

    @property
    def table(self) -> str:
        """What FROM names: the table, and its alias when the same table is read twice."""
        table = connection.ops.quote_name(self.model._meta.db_table)
        return f"{table} {connection.ops.quote_name(self.alias)}" if self.alias else table

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        field = self.model._meta.get_field(name)
        qualifier = connection.ops.quote_name(self.alias or self.model._meta.db_table)
        return f"{qualifier}.{connection.ops.quote_name(field.column)}"


def built_once(build: Callable[[], str]) -> Callable[[], str]:
    """build() called once per database vendor: the SQL it writes from model metadata, kept."""
    built: dict[str, str] = {}

    def sql() -> str:
        if connection.vendor not in built:
            built[connection.vendor] = build()
        return built[connection.vendor]

    sql.__doc__ = build.__doc__
    return sql


def fetch_all(sql: str, params: Sequence[object]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# A read sent ahead -----------------------------------------------------------------
#
# Most of a webhook's one read is waiting: for PostgreSQL to wake and answer, then for this process to
# wake to its answer. Sent before work that does not need its rows (checking the request's signature),
# the database answers while that work runs, and the rows are often there when they are wanted.


class ReadAhead:
    """A statement sent to PostgreSQL now; its rows taken later with rows(), or dropped with discard().

    Until then the connection carries nothing else: whoever sends one takes its rows or discards it before
    anything else uses the connection (ivr.decorators.twilio_webhook does, whatever its view did).

    The statement goes exactly as Cursor.execute sends it (psycopg's prepared statements and parameter
    types), through psycopg's own generator for execute(), stopped where execute() would wait for the
    answer and resumed in rows(). psycopg has no public "send now, read later" outside pipeline mode, and
    in pipeline mode PostgreSQL holds the answer back until a sync, which is one more round trip. The
    generator is psycopg's internals: requirements.txt pins psycopg, and tests/test_db_rows.py runs this on
    PostgreSQL, directly and through PgBouncer (.ci/run).
    """

    def __init__(self, sql: str, params: list[object], cursor: object, generator: object, waiting_for: object):
        self.sql, self.params = sql, params
        self._cursor, self._generator, self._waiting_for = cursor, generator, waiting_for
        self._sent_at = time.monotonic()
        self.taken = False

    @classmethod
    def send(cls, sql: str, params: Sequence[object]) -> ReadAhead | None:
        """The statement sent, or None where it is not (SQLite, which answers in this process anyway; a
        connection that cannot send): the caller then reads as it always did."""
        if connection.vendor != "postgresql":
            return None
        params = list(params)
        try:
            # As Django's own cursor() does: a connection the server ended while idle (a restart, a failover,
            # an idle timeout) is closed and opened anew, not written to and found dead at its answer. Before
            # create_cursor, which marks the connection used (myibot/postgresql: long idle, asked).
            connection.close_if_health_check_failed()
            with connection.wrap_database_errors:
                connection.ensure_connection()
                cursor = connection.create_cursor()
                generator = cursor._execute_gen(sql, params)
                waiting_for = next(generator)
        except Exception as error:
            # Whatever stopped it, the step reads again the usual way, which checks the connection again
            # and reports what is wrong.
            connection.health_check_done = False
            logger.warning("read ahead not sent: %s", type(error).__name__)
            return None
        return cls(sql, params, cursor, generator, waiting_for)

    def rows(self) -> list[tuple]:
        """The statement's rows, waiting for what is still on its way; its error, as Django raises it."""
        if self.taken:
            raise RuntimeError("a read ahead's rows are taken once")
        self.taken = True
        try:
            with connection.wrap_database_errors:
                self._cursor.connection.wait(_resumed(self._generator, self._waiting_for))
                return self._cursor.fetchall()
        finally:
            self._cursor.close()
            if connection.queries_logged:
                # As Django's debug cursor logs a query (tests count them): from its sending to its rows.
                connection.queries_log.append(
                    {"sql": self._logged(), "time": f"{time.monotonic() - self._sent_at:.3f}"}
                )

    def _logged(self) -> str:
        """The statement with its values, as Django logs a query; only its SQL where the connection that
        would write them is gone (so that the error the read raised is the one reported)."""
        try:
            return connection.ops.last_executed_query(self._cursor, self.sql, self.params)
        except Exception:
            return self.sql

    def discard(self) -> None:
        """Drop the rows if nobody took them, so that the connection is free again; an error is the database's
        to report to whoever reads next (Django replaces a connection that failed)."""
        if self.taken:
            return
        try:
            self.rows()
        except DatabaseDriverError as error:  # DatabaseError, and InterfaceError (a connection already closed)
            logger.info("read ahead dropped with an error: %s", type(error).__name__)


def _resumed(generator, waiting_for):
    """psycopg's execute() generator, from where ReadAhead.send left it: first the wait it asked for then."""
    ready = yield waiting_for
    while True:
        try:
            waiting_for = generator.send(ready)
        except StopIteration as done:
            return done.value
        ready = yield waiting_for


# Rows of different shapes in one round trip ------------------------------------


def cast_types(model: type[models.Model]) -> list[str]:
    """The type each concrete column of model has in a CAST, in field order (what select_columns reads)."""
    return [field.cast_db_type(connection) for field in model._meta.concrete_fields]


def union_of_shapes(queries: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Queries whose rows differ in shape, as one statement: one round trip, not one each.

    queries: each query's SQL and its columns' types (as CAST names them). UNION ALL of them, each row
    marked with its query's place and carrying its own columns where they go, NULLs of the right type in
    every other query's place (PostgreSQL settles a UNION's column types pairwise: an untyped NULL met
    twice would be text). rows_by_shape takes them apart.
    """
    nulls = [", ".join(f"CAST(NULL AS {kind})" for kind in types) for _sql, types in queries]
    selects = []
    for place, (sql, _types) in enumerate(queries):
        columns = [*nulls[:place], f"shape_{place}.*", *nulls[place + 1 :]]
        selects.append(f"SELECT {place}, {', '.join(columns)} FROM ({sql}) AS shape_{place}")  # noqa: S608 - SQL built from model metadata
    return " UNION ALL ".join(selects)


def rows_by_shape(rows: Sequence[Sequence[object]], widths: Sequence[int]) -> list[list[tuple]]:
    """union_of_shapes' rows, per query in its order, each with its own columns only."""
    starts = [1 + sum(widths[:place]) for place in range(len(widths))]
    shaped: list[list[tuple]] = [[] for _ in widths]
    for row in rows:
        place = row[0]
        shaped[place].append(tuple(row[starts[place] : starts[place] + widths[place]]))
    return shaped


@dataclass(frozen=True)
class Question:
    """Something a step asks of its call's account, or of what the caller typed, written so that it can be read
    in the same statement as the call (ivr.models.CallSession.find_with): one round trip, not two.

    queries(account): its SELECTs as union_of_shapes takes them, the account named by account (a placeholder,
    or a subquery that finds the call's). params(account, entry, now): their parameters, in order.
    answer(rows): what the rows say (rows_by_shape's, one list per SELECT).
    """

    name: str
    queries: Callable[[str], list[tuple[str, list[str]]]]
    params: Callable[[object, str, datetime], list[object]]
    answer: Callable[[list[list[tuple]]], object]
    # Asked of what the caller typed (a recipient's code), not only of the account: its answer is for that entry.
    about_entry: bool = False

    def key(self, entry: str) -> tuple[str, str]:
        """What an answer read with the call is kept under: the question, and the entry where it is about one."""
        return (self.name, entry if self.about_entry else "")

    def widths(self) -> list[int]:
        """How many columns each SELECT reads (rows_by_shape)."""
        return _widths(self, connection.vendor)


@cache
def _widths(question: Question, vendor: str) -> list[int]:
    return [len(types) for _sql, types in question.queries("%s")]


# Per database vendor and question: the question's SQL on its own.
_asked: dict[tuple[str, str], str] = {}


def ask(question: Question, *, account: object, entry: str = "", now: datetime) -> object:
    """question's answer for the account (its id) and entry, asked on its own: one round trip."""
    key = (connection.vendor, question.name)
    if key not in _asked:
        _asked[key] = union_of_shapes(question.queries("%s"))
    rows = fetch_all(_asked[key], question.params(account, entry, now))
    return question.answer(rows_by_shape(rows, question.widths()))
