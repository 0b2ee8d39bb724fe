"""Staff roles hold: Auditors see and export, Operators act after a confirmation page, and every change is on record.

Each user signs in through the admin's own login form (django-axes and all), as a person would.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import identity, ledger, pins, selectors
from accounts.models import Account, ConfirmationCode, LedgerEntry, Recipient, Transfer
from tests.conftest import postgres_only

pytestmark = pytest.mark.django_db

PASSWORD = "a long staff passphrase 4c2e"
CHANGING = {
    # changelist: the actions on it that change state
    "account": ["unlock", "verify", "reject_registration"],
    "transfer": ["settle", "reject"],
    "ledgerentry": ["reverse_deposit"],
    "recipient": ["deactivate", "activate"],
}


def signed_in_as(django_user_model, username: str, group: str | None) -> Client:
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": PASSWORD}, secure=True)
    assert response.status_code == 302, response.content
    client.defaults.update({"wsgi.url_scheme": "https", "SERVER_PORT": "443"})
    return client


@pytest.fixture
def auditor(django_user_model) -> Client:
    return signed_in_as(django_user_model, "audrey", "Auditors")


@pytest.fixture
def operator(django_user_model) -> Client:
    return signed_in_as(django_user_model, "olivia", "Operators")


@pytest.fixture
def pending(db) -> Account:
    account, _code = identity.account_register(
        member_id="654321", pin_hash=pins.hash_pin("8052"), home_number="+12027770000"
    )
    return account


@pytest.fixture
def world(account, recipient, pending) -> dict:
    """One of everything an action can change: a locked active account with a submitted transfer and a $600
    deposit, a pending registration, a second submitted transfer."""
    big = ledger.deposit(account=account, amount_cents=600_00)
    first = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=25_00, idempotency_key="roles:1"
    ).transfer
    second = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=12_50, idempotency_key="roles:2"
    ).transfer
    Account.objects.filter(pk=account.pk).update(
        locked_until=timezone.now() + timedelta(minutes=15), failed_pin_count=2, lock_count=1
    )
    return {
        "account": account,
        "pending": pending,
        "deposit": big,
        "transfer": first,
        "second": second,
        "recipient": recipient,
    }


def snapshot() -> dict:
    """Everything a state-changing action could touch."""
    return {
        "accounts": list(Account.objects.order_by("pk").values()),
        "transfers": list(Transfer.objects.order_by("pk").values()),
        "ledger": list(LedgerEntry.objects.order_by("pk").values()),
        "codes": list(ConfirmationCode.objects.order_by("pk").values()),
        "recipients": list(Recipient.objects.order_by("pk").values()),
        "history": LogEntry.objects.count(),
    }


def action_menu(client: Client, model: str) -> list[str]:
    page = client.get(reverse(f"admin:accounts_{model}_changelist"), secure=True)
    assert page.status_code == 200
    menu = re.search(r'<select name="action"[^>]*>(.*?)</select>', page.content.decode(), re.S)
    return re.findall(r'<option value="([^"]+)"', menu.group(1)) if menu else []


def target(world: dict, action: str):
    return {
        "unlock": world["account"],
        "verify": world["pending"],
        "reject_registration": world["pending"],
        "settle": world["transfer"],
        "reject": world["transfer"],
        "reverse_deposit": world["deposit"],
        "deactivate": world["recipient"],
        "activate": world["recipient"],
    }[action]


def run(client: Client, model: str, action: str, pk: int, *, confirmed: bool, follow: bool = False):
    data = {"action": action, "_selected_action": [pk], "index": "0"}
    if confirmed:
        data = {"action": action, "_selected_action": [pk], "post": "yes"}
    return client.post(reverse(f"admin:accounts_{model}_changelist"), data, secure=True, follow=follow)


ALL_ACTIONS = [(model, action) for model, actions in CHANGING.items() for action in actions]


# Groups ----------------------------------------------------------------------------------------------------


def test_it_creates_the_operators_and_auditors_groups_when_migrating():
    def held(name: str) -> set[str]:
        return set(Group.objects.get(name=name).permissions.values_list("content_type__app_label", "codename"))

    watched = {
        ("accounts", f"view_{model}")
        for model in (
            "account",
            "transfer",
            "ledgerentry",
            "confirmationcode",
            "recipient",
            "sharedline",
            "signinspray",
        )
    }
    watched |= {("ivr", "view_callsession"), ("payments", "view_carddeposit")}
    watched |= {("payments", f"view_{model}") for model in ("refund", "dispute", "stripeevent")}
    assert held("Auditors") == watched
    assert held("Operators") == watched | {
        ("accounts", f"change_{model}")
        for model in ("account", "transfer", "ledgerentry", "confirmationcode", "recipient")
    } | {("payments", "refund_carddeposit"), ("payments", "release_carddeposit")}


# Auditors: see and export, nothing more -------------------------------------------------------------------------


def test_it_offers_an_auditor_no_action_that_changes_state(auditor, world):
    assert action_menu(auditor, "account") == []
    assert action_menu(auditor, "ledgerentry") == []
    assert action_menu(auditor, "recipient") == []
    assert action_menu(auditor, "transfer") == ["export_csv"]
    codes = auditor.get(reverse("admin:accounts_confirmationcode_changelist"), secure=True).content.decode()
    assert "Verify a code" not in codes


def test_it_lets_an_auditor_read_every_list_and_page(auditor, world):
    for model in ("account", "transfer", "ledgerentry", "recipient", "confirmationcode", "sharedline", "signinspray"):
        assert auditor.get(reverse(f"admin:accounts_{model}_changelist"), secure=True).status_code == 200
    assert auditor.get(reverse("admin:ivr_callsession_changelist"), secure=True).status_code == 200
    page = auditor.get(reverse("admin:accounts_account_change", args=[world["account"].pk]), secure=True)
    assert page.status_code == 200


@pytest.mark.parametrize("confirmed", [False, True], ids=["from the menu", "as a confirmation"])
@pytest.mark.parametrize(("model", "action"), ALL_ACTIONS)
def test_it_refuses_an_auditor_every_state_changing_action_posted_directly(auditor, world, model, action, confirmed):
    before = snapshot()
    response = run(auditor, model, action, target(world, action).pk, confirmed=confirmed)
    assert response.status_code == 403
    assert snapshot() == before


def test_it_refuses_an_auditor_the_code_verification_page(auditor, account, recipient, pending):
    receipt = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="roles:code"
    )
    url = reverse("admin:accounts_confirmationcode_verify")
    assert auditor.get(url, secure=True).status_code == 403
    before = snapshot()
    assert auditor.post(url, {"code": receipt.code}, secure=True).status_code == 403
    assert snapshot() == before
    assert ConfirmationCode.objects.get(transfer=receipt.transfer).verified_at is None


def test_it_refuses_an_auditor_editing_a_recipient(auditor, recipient):
    url = reverse("admin:accounts_recipient_change", args=[recipient.pk])
    assert auditor.post(url, {"name": "Someone Else", "active": "on"}, secure=True).status_code == 403
    assert (
        auditor.post(
            reverse("admin:accounts_recipient_add"), {"code": "135790", "name": "New One"}, secure=True
        ).status_code
        == 403
    )
    assert list(Recipient.objects.values_list("name", flat=True)) == ["Jane Doe"]


def test_it_lets_an_auditor_export_transfers(auditor, world):
    response = run(auditor, "transfer", "export_csv", world["transfer"].pk, confirmed=False)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row[:5] for row in rows[1:]] == [[str(world["transfer"].pk), "123456", "246810", "Jane Doe", "25.00"]]


# Operators: a confirmation page first, then the change, once, on record --------------------------------------------


CONFIRMATION_SAYS = {
    "unlock": [
        "Account 123456",
        "locked until",
        "2 wrong PIN(s) counted",
        "1 lock(s) in its escalation",
        "set back to zero",
    ],
    "verify": ["Account 654321", "pending becomes active"],
    "reject_registration": [
        "Account 654321",
        "removed with its registration code",
        "member ID 654321 and home number +12027770000 become free",
    ],
    "settle": ["$25.00 from account 123456 to Jane Doe (246810)", "marked settled", "no money moves"],
    "reject": [
        "$25.00 from account 123456 to Jane Doe (246810)",
        "$25.00 goes back to account 123456",
        "balance now $662.50",
        "reversing ledger entry",
    ],
    "reverse_deposit": [
        "deposit of $600.00, account 123456",
        "correction entry of -$600.00",
        "takes it back from account 123456",
        "balance now $662.50",
    ],
}


@pytest.mark.parametrize(("model", "action"), [(m, a) for m, a in ALL_ACTIONS if a in CONFIRMATION_SAYS])
def test_it_shows_an_operator_what_will_change_before_acting(operator, world, model, action):
    assert action in action_menu(operator, model)
    before = snapshot()
    response = run(operator, model, action, target(world, action).pk, confirmed=False)
    assert response.status_code == 200
    assert next(t.name for t in response.templates) == "admin/accounts/confirm_action.html"
    page = response.content.decode()
    for words in CONFIRMATION_SAYS[action]:
        assert words in page, re.search(r'<table id="planned-changes">.*?</table>', page, re.S).group(0)
    # The form that acts: the selected id, the action and post=yes, as Django's delete confirmation has.
    assert f'name="_selected_action" value="{target(world, action).pk}"' in page
    assert f'name="action" value="{action}"' in page
    assert 'name="post" value="yes"' in page
    assert snapshot() == before


def changed(world: dict, action: str) -> object:
    """What the action changes, read from the database."""
    obj = target(world, action)
    if action == "unlock":
        obj.refresh_from_db()
        return (obj.locked_until, obj.failed_pin_count, obj.lock_count)
    if action == "verify":
        obj.refresh_from_db()
        return obj.status
    if action == "reject_registration":
        return Account.objects.filter(pk=obj.pk).exists()
    if action in ("settle", "reject"):
        obj.refresh_from_db()
        return obj.status
    if action == "reverse_deposit":
        return LedgerEntry.objects.filter(corrects=obj).count()
    obj.refresh_from_db()
    return obj.active


EXPECTED = {
    "unlock": (None, 0, 0),
    "verify": "active",
    "reject_registration": False,
    "settle": "settled",
    "reject": "rejected",
    "reverse_deposit": 1,
    "deactivate": False,
}


@pytest.mark.parametrize(("model", "action"), [(m, a) for m, a in ALL_ACTIONS if a in EXPECTED])
def test_it_acts_once_when_an_operator_confirms_twice(operator, world, model, action, caplog):
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            response = run(operator, model, action, target(world, action).pk, confirmed=True, follow=True)
            assert response.status_code == 200
    assert changed(world, action) == EXPECTED[action]
    account = Account.objects.get(pk=world["account"].pk)
    assert account.balance_cents == selectors.ledger_balance_cents(account=account)
    if action == "reject":
        assert account.balance_cents == 662_50 + 25_00
        assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REVERSAL).count() == 1
    if action == "reverse_deposit":
        assert account.balance_cents == 662_50 - 600_00
    history = LogEntry.objects.filter(object_id=str(target(world, action).pk))
    assert history.count() == 1, list(history.values_list("change_message", flat=True))
    entry = history.get()
    assert entry.user.username == "olivia"
    assert entry.action_flag == (DELETION if action == "reject_registration" else CHANGE)
    assert entry.change_message
    # The app's log names the operator for each try, the one that changed and the one that did not.
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"admin {action}:")]
    assert all("operator=olivia" in line for line in lines), lines
    if action == "reject_registration":
        assert len(lines) == 1, "the second time, the account is gone: nothing was selected"
    else:
        assert len(lines) == 2 and "nothing changed" in lines[1], lines
    assert PASSWORD not in caplog.text and "8052" not in caplog.text


def test_it_records_what_each_action_did_in_the_history(operator, world):
    run(operator, "transfer", "reject", world["transfer"].pk, confirmed=True)
    run(operator, "ledgerentry", "reverse_deposit", world["deposit"].pk, confirmed=True)
    run(operator, "account", "verify", world["pending"].pk, confirmed=True)
    messages = dict(LogEntry.objects.values_list("object_repr", "change_message"))
    assert messages[str(world["transfer"])].startswith("Rejected: $25.00 returned to account 123456")
    correction = LedgerEntry.objects.get(kind=LedgerEntry.Kind.CORRECTION)
    assert messages[str(world["deposit"])] == (
        f"Reversed: the deposit of $600.00 taken back from account 123456 by correction entry {correction.pk}."
    )
    assert messages["Account 654321"].startswith("Verified the registration")
    assert set(LogEntry.objects.values_list("user__username", flat=True)) == {"olivia"}


def test_it_says_when_nothing_selected_would_change(operator, world):
    ledger.transfer_settle(transfer=world["transfer"])
    page = run(operator, "transfer", "reject", world["transfer"].pk, confirmed=False).content.decode()
    assert "already settled: nothing changes" in page
    assert "Nothing selected would change." in page
    assert 'name="post"' not in page


def test_it_refuses_an_operator_a_deposit_already_spent(operator, world):
    ledger.transfer_submit(
        account=world["account"], recipient_code="246810", amount_cents=500_00, idempotency_key="roles:spend"
    )
    page = run(operator, "ledgerentry", "reverse_deposit", world["deposit"].pk, confirmed=False).content.decode()
    assert "the money was spent (balance $162.50)" in page
    response = run(operator, "ledgerentry", "reverse_deposit", world["deposit"].pk, confirmed=True, follow=True)
    assert "the money was spent; it cannot be taken back" in response.content.decode()
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CORRECTION).exists()
    assert not LogEntry.objects.exists()


def test_it_lets_an_operator_verify_a_code_and_records_it(operator, account, recipient, pending, caplog):
    receipt = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="roles:code"
    )
    url = reverse("admin:accounts_confirmationcode_verify")
    codes = operator.get(reverse("admin:accounts_confirmationcode_changelist"), secure=True).content.decode()
    assert "Verify a code" in codes
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            assert operator.post(url, {"code": receipt.code}, secure=True).status_code == 200
    code = ConfirmationCode.objects.get(transfer=receipt.transfer)
    assert code.verified_at is not None
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.user.username) == (str(code.pk), "olivia")
    assert f"transfer {receipt.transfer.pk} of $25.00" in entry.change_message
    assert receipt.code not in entry.change_message and receipt.code not in caplog.text
    assert "admin verification: operator=olivia" in caplog.text


def test_an_operator_cannot_add_recipients_or_shared_lines(operator):
    # Where money may go, and which phones sign in by PIN alone, stay with superusers.
    assert operator.get(reverse("admin:accounts_recipient_add"), secure=True).status_code == 403
    assert operator.get(reverse("admin:accounts_sharedline_add"), secure=True).status_code == 403


@postgres_only("real concurrent transactions and the row locks that order them: SQLite has no row locks")
@pytest.mark.django_db(transaction=True)
def test_two_operators_confirming_one_rejection_at_once_give_the_money_back_once(django_user_model, account, recipient):
    transfer = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="roles:race"
    ).transfer
    clients = []
    for name in ("olivia", "oscar"):
        django_user_model.objects.create_superuser(name, f"{name}@example.com", PASSWORD)
        client = Client()
        client.force_login(django_user_model.objects.get(username=name))
        clients.append(client)
    barrier = threading.Barrier(2)
    statuses = []

    def confirm(client: Client) -> None:
        try:
            barrier.wait()
            statuses.append(run(client, "transfer", "reject", transfer.pk, confirmed=True).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=confirm, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [302, 302]
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REVERSAL).count() == 1
    assert LogEntry.objects.count() == 1
    account.refresh_from_db()
    assert account.balance_cents == 100_00
