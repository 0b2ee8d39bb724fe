"""The staff roles: "Operators" act on accounts and money, "Auditors" only look and export (README, "Staff roles").

Django makes permissions at post_migrate, after every migration has run: on a
fresh database none exist yet when this runs. So it makes them first, for the
apps whose models the groups name, as post_migrate later would (it skips what
exists). The group lists are written out here, not imported, so that this
migration does the same thing whenever it runs.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

# (app, model) -> the permissions each group holds on it.
OPERATORS = {
    # What the admin's actions change: unlock, verify, reject registration; settle, reject;
    # reverse a deposit; verify a code; activate and deactivate a recipient.
    ("accounts", "account"): ["view", "change"],
    ("accounts", "transfer"): ["view", "change"],
    ("accounts", "ledgerentry"): ["view", "change"],
    ("accounts", "confirmationcode"): ["view", "change"],
    ("accounts", "recipient"): ["view", "change"],
    # What they read to decide.
    ("accounts", "sharedline"): ["view"],
    ("accounts", "signinspray"): ["view"],
    ("ivr", "callsession"): ["view"],
}
AUDITORS = {key: ["view"] for key in OPERATORS}
GROUPS = {"Operators": OPERATORS, "Auditors": AUDITORS}


def create_staff_groups(apps, schema_editor) -> None:
    using = schema_editor.connection.alias
    for label in sorted({app for app, _model in OPERATORS}):
        create_permissions(global_apps.get_app_config(label), verbosity=0, apps=apps, using=using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in GROUPS.items():
        group, _created = Group.objects.using(using).get_or_create(name=name)
        for (app, model), verbs in grants.items():
            codenames = [f"{verb}_{model}" for verb in verbs]
            permissions = list(Permission.objects.using(using).filter(
                content_type__app_label=app, content_type__model=model, codename__in=codenames
            ))
            if len(permissions) != len(codenames):
                raise RuntimeError(f"missing permissions for {app}.{model}: {codenames}")
            group.permissions.add(*permissions)


def remove_staff_groups(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0008_registration_limits"),
        ("ivr", "0004_strikes_and_staff"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_staff_groups, remove_staff_groups),
    ]
