"""The app's role starts every session in this database with the webhooks' time limits.

Behind a pooler in transaction mode (Fly Managed Postgres's PgBouncer, when its cluster is set so) a session's own settings do
not hold, and libpq's `options` are refused: the role's settings are what every server connection
starts with (myibot/postgresql/timeouts.py, which also checks them at each start). PostgreSQL only;
undone by resetting them.
"""

from django.db import migrations


def set_limits(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    from myibot.postgresql import timeouts

    timeouts.role_settings_apply(schema_editor.connection)


def reset_limits(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in ("lock_timeout", "statement_timeout"):
            cursor.execute(f"SELECT format('ALTER ROLE %I IN DATABASE %I RESET {name}', current_user, current_database())")
            cursor.execute(cursor.fetchone()[0])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0013_card_money_and_payees")]

    operations = [migrations.RunPython(set_limits, reset_limits, elidable=False)]
