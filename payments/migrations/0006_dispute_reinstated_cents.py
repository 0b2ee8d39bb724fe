"""A dispute keeps what Stripe reinstated (payments.clawbacks works out the money from it); held_back_cents goes.

A dispute reinstated before this migration gave back what Stripe reinstated, capped at what the dispute had
taken, and held back the part a refund had sent to the card: both together, against what it took, say
whether Stripe reinstated all of it or part.
"""

from django.db import migrations, models
from django.db.models import Sum


def reinstated_as_given(apps, schema_editor):
    # On the database being migrated (the release command's is DATABASE_DIRECT_URL's), never the default.
    database = schema_editor.connection.alias
    Dispute = apps.get_model("payments", "Dispute")
    LedgerEntry = apps.get_model("accounts", "LedgerEntry")
    for dispute in Dispute.objects.using(database).filter(funds_reinstated=True).select_related("deposit"):
        given = (
            LedgerEntry.objects.using(database).filter(corrects_id=dispute.deposit.entry_id, kind="reinstated").aggregate(
                total=Sum("amount_cents")
            )["total"]
            or 0
        )
        took = -(
            LedgerEntry.objects.using(database)
            .filter(corrects_id=dispute.deposit.entry_id, kind="dispute")
            .aggregate(total=Sum("amount_cents"))["total"]
            or 0
        )
        # The old code gave back at most what the dispute itself took (a refund may have taken the rest first):
        # all of that given back (or held back) reads as Stripe reinstating everything (0); less, as a partial
        # reinstatement of that much. Reconciliation reads what Stripe says and corrects a guess.
        reinstated = given + dispute.held_back_cents
        dispute.reinstated_cents = 0 if reinstated >= took else min(reinstated, dispute.amount_cents)
        dispute.save(update_fields=["reinstated_cents"], using=database)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0014_database_role_time_limits"),
        ("payments", "0005_daily_limit_and_dispute_held_back"),
    ]

    operations = [
        migrations.AddField(
            model_name="dispute",
            name="reinstated_cents",
            field=models.PositiveIntegerField(
                default=0, help_text="what Stripe gave back; 0 once reinstated: all", verbose_name="reinstated (cents)"
            ),
        ),
        migrations.RunPython(reinstated_as_given, migrations.RunPython.noop),
        migrations.RemoveField(model_name="dispute", name="held_back_cents"),
    ]
