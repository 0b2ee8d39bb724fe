"""A dispute remembers that Stripe gave its money back; Operators may release a card deposit's hold.

The grants, as in 0002_staff_groups: written out, not imported. Operators release holds (an early
fraud warning looked at) and see refunds, disputes and Stripe's events; Auditors see them.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

GRANTS = {
    "Operators": ["release_carddeposit", "view_refund", "view_dispute", "view_stripeevent"],
    "Auditors": ["view_refund", "view_dispute", "view_stripeevent"],
}


def grant(apps, schema_editor) -> None:
    using = schema_editor.connection.alias
    create_permissions(global_apps.get_app_config("payments"), verbosity=0, apps=apps, using=using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group, _created = Group.objects.using(using).get_or_create(name=name)
        permissions = list(
            Permission.objects.using(using).filter(content_type__app_label="payments", codename__in=codenames)
        )
        if len(permissions) != len(codenames):
            raise RuntimeError(f"missing permissions for payments: {codenames}")
        group.permissions.add(*permissions)


def revoke(apps, schema_editor) -> None:
    using = schema_editor.connection.alias
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        for group in apps.get_model("auth", "Group").objects.using(using).filter(name=name):
            group.permissions.remove(
                *Permission.objects.using(using).filter(content_type__app_label="payments", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0003_charged_by_the_service"),
    ]

    operations = [
        migrations.AddField(
            model_name="dispute",
            name="funds_reinstated",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(grant, revoke),
    ]
