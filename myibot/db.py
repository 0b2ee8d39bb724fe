"""Inserting a row that may already exist, without a unique violation PostgreSQL would log.

A failed INSERT makes PostgreSQL write the row's values to its own log
("Key (member_id)=(123456) already exists"), where no caller data may go.
INSERT ... ON CONFLICT DO NOTHING RETURNING id never fails on a duplicate: it
just returns no row. PostgreSQL and SQLite (3.35+) both speak it; Django's
bulk_create(ignore_conflicts=True) cannot say whether the row went in.
"""

from __future__ import annotations

from django.db import connection, models


def insert_unless_conflict(instance: models.Model) -> bool:
    """Insert instance; True and its pk set if it went in, False if a unique rule already held the values."""
    meta = instance._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING RETURNING {quote(meta.pk.column)}"
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
