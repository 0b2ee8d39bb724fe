from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("ivr", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="callsession",
            name="caller",
            field=models.CharField(blank=True, help_text="the caller's number, E.164, or empty when withheld", max_length=16),
        ),
        migrations.AddField(
            model_name="callsession",
            name="caller_trusted",
            field=models.BooleanField(default=False),
        ),
    ]
