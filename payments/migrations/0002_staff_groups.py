"""Card deposits in the staff roles: "Operators" see and refund them, "Auditors" see and export them.

As in accounts' 0009_staff_groups: permissions exist only after post_migrate, so
they are made here first (create_permissions skips what exists). The grants are
written out, not imported, so that this migration does the same whenever it runs.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Operators": ["view_carddeposit", "refund_carddeposit"],
    "Auditors": ["view_carddeposit"],
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
    for group in apps.get_model("auth", "Group").objects.using(using).filter(name__in=GRANTS):
        group.permissions.remove(*Permission.objects.using(using).filter(content_type__app_label="payments"))


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
        ("accounts", "0009_staff_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
