"""Version 1's accounts carry over to version 2's identity: their number becomes the home number, and they are active."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

VERSION_1 = [("accounts", "0001_initial"), ("ivr", "0001_initial")]
VERSION_2 = [("accounts", "0002_identity"), ("ivr", "0002_callsession_caller_trusted")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_version_1_accounts_keep_their_number_as_home_number_and_count_as_active():
    old_apps = migrate(VERSION_1)
    OldAccount = old_apps.get_model("accounts", "Account")
    created = timezone.now()
    OldAccount.objects.create(
        phone_number="+12026230001", member_id="123456", pin_hash="argon2id$x", balance_cents=7550, created=created
    )
    OldAccount.objects.create(phone_number="+12026230002", member_id="654321", pin_hash="argon2id$y", created=created)
    old_apps.get_model("ivr", "CallSession").objects.create(call_sid="CA1", caller="+12026230001")

    try:
        new_apps = migrate(VERSION_2)
        Account = new_apps.get_model("accounts", "Account")
        accounts = {a.member_id: a for a in Account.objects.all()}
        assert accounts["123456"].home_number == "+12026230001"
        assert accounts["123456"].balance_cents == 7550
        assert {(a.status, a.verified_at) for a in accounts.values()} == {("active", created)}
        assert new_apps.get_model("ivr", "CallSession").objects.get().caller_trusted is False
        # New accounts start pending, and may have no home number.
        fresh = Account.objects.create(member_id="111111", pin_hash="z")
        assert (fresh.status, fresh.home_number) == ("pending", None)
    finally:
        migrate(executor_leaf_nodes())


def executor_leaf_nodes():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def test_it_creates_the_staff_groups_on_a_database_that_has_no_permissions_yet():
    # As on a fresh database, where Django makes permissions only after the last migration (post_migrate).
    migrate([("accounts", "0006_dashboard_index")])
    assert not Group.objects.filter(name__in=["Operators", "Auditors"]).exists()
    Permission.objects.filter(content_type__app_label__in=["accounts", "ivr"]).delete()

    migrate(executor_leaf_nodes())
    operators = set(Group.objects.get(name="Operators").permissions.values_list("codename", flat=True))
    auditors = set(Group.objects.get(name="Auditors").permissions.values_list("codename", flat=True))
    assert {"change_transfer", "change_ledgerentry", "change_account", "view_callsession"} <= operators
    assert auditors and all(codename.startswith("view_") for codename in auditors)
    assert auditors < operators
