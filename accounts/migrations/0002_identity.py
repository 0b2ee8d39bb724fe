"""Version 2 identity: the member ID is the identity, the phone number becomes a home number.

Existing accounts keep their number as home number and count as active,
verified when they were created: version 1 had no verification step.
"""

import django.utils.timezone
from django.db import migrations, models


def verify_existing_accounts(apps, schema_editor):
    Account = apps.get_model("accounts", "Account")
    # The migration's own database (migrate --database direct), never another connection's.
    Account.objects.using(schema_editor.connection.alias).filter(verified_at__isnull=True).update(
        verified_at=models.F("created")
    )


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="account", name="accounts_account_phone_e164"),
        migrations.RenameField(model_name="account", old_name="phone_number", new_name="home_number"),
        migrations.AlterField(
            model_name="account",
            name="home_number",
            field=models.CharField(blank=True, help_text="E.164, or none", max_length=16, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="account",
            name="member_id",
            field=models.CharField(help_text="6 digits: who the caller is", max_length=6, unique=True),
        ),
        # Rows that exist now are version 1 accounts: active. New ones start pending.
        migrations.AddField(
            model_name="account",
            name="status",
            field=models.CharField(choices=[("pending", "Pending"), ("active", "Active")], default="active", max_length=10),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="account",
            name="status",
            field=models.CharField(choices=[("pending", "Pending"), ("active", "Active")], default="pending", max_length=10),
        ),
        migrations.AddField(
            model_name="account",
            name="verified_at",
            field=models.DateTimeField(blank=True, help_text="when staff verified the registration", null=True),
        ),
        migrations.RunPython(verify_existing_accounts, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.CheckConstraint(condition=models.Q(("home_number__regex", "^\\+[1-9][0-9]{1,14}$")), name="accounts_account_home_number_e164"),
        ),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.CheckConstraint(condition=models.Q(("status__in", ["pending", "active"])), name="accounts_account_status_valid"),
        ),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.CheckConstraint(
                condition=models.Q(models.Q(("status", "pending"), ("verified_at__isnull", True)), models.Q(("status", "active"), ("verified_at__isnull", False)), _connector="OR"),
                name="accounts_account_verified_when_active",
            ),
        ),
        migrations.AddIndex(model_name="account", index=models.Index(fields=["status", "created"], name="accounts_account_status_idx")),
        migrations.CreateModel(
            name="SharedLine",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("phone_number", models.CharField(help_text="E.164", max_length=16, unique=True)),
                ("name", models.CharField(blank=True, help_text="where it is, for operators", max_length=100)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "constraints": [models.CheckConstraint(condition=models.Q(("phone_number__regex", "^\\+[1-9][0-9]{1,14}$")), name="accounts_sharedline_phone_e164")],
            },
        ),
        migrations.CreateModel(
            name="SignInFailure",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ],
        ),
        migrations.CreateModel(
            name="SignInSpray",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("started", models.DateTimeField(default=django.utils.timezone.now)),
                ("until", models.DateTimeField(db_index=True)),
                ("failures", models.PositiveIntegerField(help_text="failed sign-ins in the minute that started it")),
            ],
            options={
                "constraints": [models.CheckConstraint(condition=models.Q(("until__gt", models.F("started"))), name="accounts_signinspray_ends_after_start")],
            },
        ),
    ]
