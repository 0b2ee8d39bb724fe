"""Events of types the service does not apply keep no id of their object: it may be a card's PaymentMethod.

Before this, every verified event's object id was kept, a `payment_method.attached` one's `pm_` id among them
(`stripe listen` forwards every type). The types the service applies name a PaymentIntent, a charge, a
refund, a dispute or an early fraud warning, never a card: their ids stay.
"""

from django.db import migrations

# payments.events.HANDLERS as of this migration (a migration must not follow later code).
APPLIED = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "charge.dispute.closed",
    "radar.early_fraud_warning.created",
)


def forget_ignored_objects(apps, schema_editor):
    StripeEvent = apps.get_model("payments", "StripeEvent")
    # On the database being migrated (the release command's is DATABASE_DIRECT_URL's), never the default.
    StripeEvent.objects.using(schema_editor.connection.alias).exclude(type__in=APPLIED).exclude(object_id="").update(
        object_id=""
    )


class Migration(migrations.Migration):
    dependencies = [("payments", "0006_dispute_reinstated_cents")]

    operations = [migrations.RunPython(forget_ignored_objects, migrations.RunPython.noop)]
