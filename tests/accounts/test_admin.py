from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from accounts import ledger
from accounts.models import Account, ConfirmationCode, LedgerEntry, Recipient, SharedLine, SignInSpray, Transfer
from ivr.models import CallSession

pytestmark = pytest.mark.django_db

MODELS = ["account", "recipient", "transfer", "ledgerentry", "confirmationcode", "sharedline", "signinspray"]


@pytest.fixture
def staff(admin_client):
    admin_client.defaults["wsgi.url_scheme"] = "https"
    admin_client.defaults["SERVER_PORT"] = "443"
    return admin_client


@pytest.fixture
def transfer(account, recipient) -> Transfer:
    return ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="CA1:1"
    ).transfer


@pytest.fixture
def call(db, account) -> CallSession:
    return CallSession.objects.create(
        call_sid="CA" + "1" * 32,
        caller=account.home_number,
        account=account,
        scratch={"pin_hash": "argon2id$secret-looking-hash"},
    )


@pytest.mark.parametrize("app, model", [("accounts", m) for m in MODELS] + [("ivr", "callsession")])
def test_every_list_and_page_loads_for_staff(staff, transfer, call, app, model):
    response = staff.get(reverse(f"admin:{app}_{model}_changelist"), secure=True)
    assert response.status_code == 200
    instance = {
        "account": transfer.account,
        "recipient": transfer.recipient,
        "transfer": transfer,
        "ledgerentry": LedgerEntry.objects.first(),
        "confirmationcode": ConfirmationCode.objects.first(),
        "callsession": call,
        "sharedline": SharedLine.objects.create(phone_number="+12024440000", name="Unit B"),
        "signinspray": SignInSpray.objects.create(until=timezone.now() + timedelta(minutes=15), failures=31),
    }[model]
    response = staff.get(reverse(f"admin:{app}_{model}_change", args=[instance.pk]), secure=True)
    assert response.status_code == 200


@pytest.mark.parametrize("url", ["/admin/", "/admin/accounts/account/", "/admin/accounts/confirmationcode/verify/"])
def test_anonymous_and_non_staff_users_are_sent_to_log_in(client, django_user_model, url):
    assert client.get(url, secure=True).status_code == 302
    user = django_user_model.objects.create_user("caller", password="a-long-password-1")
    client.force_login(user)
    response = client.get(url, secure=True)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_account_page_never_shows_the_pin_hash(staff, account):
    page = staff.get(reverse("admin:accounts_account_change", args=[account.pk]), secure=True).content.decode()
    assert account.pin_hash not in page
    assert "pin_hash" not in page
    assert "$100.00" in page


def test_the_account_list_searches_by_phone_and_member_id(staff, account):
    for term in (account.home_number, account.member_id):
        page = staff.get(reverse("admin:accounts_account_changelist"), {"q": term}, secure=True).content.decode()
        assert account.home_number in page


def test_the_account_list_shows_the_lock_and_the_balance(staff, account):
    Account.objects.filter(pk=account.pk).update(locked_until=timezone.now() + timedelta(minutes=15))
    page = staff.get(reverse("admin:accounts_account_changelist"), secure=True).content.decode()
    assert "locked until" in page
    assert "$100.00" in page


def test_operators_cannot_edit_a_balance_or_identity(staff, account):
    url = reverse("admin:accounts_account_change", args=[account.pk])
    staff.post(
        url,
        {"home_number": "+12029990000", "member_id": "999999", "balance_cents": "999999", "status": "pending"},
        secure=True,
    )
    account.refresh_from_db()
    assert (account.balance_cents, account.member_id, account.home_number, account.status) == (
        10000,
        "123456",
        "+12026230001",
        "active",
    )


def test_the_unlock_action(staff, account):
    Account.objects.filter(pk=account.pk).update(
        locked_until=timezone.now() + timedelta(minutes=15), failed_pin_count=3
    )
    response = staff.post(
        reverse("admin:accounts_account_changelist"),
        {"action": "unlock", "_selected_action": [account.pk], "post": "yes"},
        secure=True,
        follow=True,
    )
    assert "Unlocked 1 account(s)." in response.content.decode()
    account.refresh_from_db()
    assert not account.is_locked()


def test_recipients_are_created_edited_and_deactivated(staff):
    staff.post(
        reverse("admin:accounts_recipient_add"), {"code": "135790", "name": "John Roe", "active": "on"}, secure=True
    )
    recipient = Recipient.objects.get(code="135790")
    staff.post(
        reverse("admin:accounts_recipient_change", args=[recipient.pk]),
        {"name": "John Roe Jr", "active": "on"},
        secure=True,
    )
    recipient.refresh_from_db()
    assert recipient.name == "John Roe Jr"
    staff.post(
        reverse("admin:accounts_recipient_changelist"),
        {"action": "deactivate", "_selected_action": [recipient.pk]},
        secure=True,
    )
    recipient.refresh_from_db()
    assert not recipient.active


def test_a_recipient_code_must_be_six_digits(staff):
    response = staff.post(
        reverse("admin:accounts_recipient_add"), {"code": "12345", "name": "X", "active": "on"}, secure=True
    )
    assert response.status_code == 200  # the form again, with the error
    assert not Recipient.objects.exists()


def test_the_settle_action_goes_through_the_service(staff, transfer):
    staff.post(
        reverse("admin:accounts_transfer_changelist"),
        {"action": "settle", "_selected_action": [transfer.pk], "post": "yes"},
        secure=True,
    )
    transfer.refresh_from_db()
    assert transfer.status == "settled"
    assert transfer.decided is not None


def test_the_reject_action_writes_the_reversing_entry(staff, transfer, account):
    response = staff.post(
        reverse("admin:accounts_transfer_changelist"),
        {"action": "reject", "_selected_action": [transfer.pk], "post": "yes"},
        secure=True,
        follow=True,
    )
    assert "Rejected 1 transfer(s)." in response.content.decode()
    transfer.refresh_from_db()
    assert transfer.status == "rejected"
    assert LedgerEntry.objects.get(kind="reversal").amount_cents == 2500
    account.refresh_from_db()
    assert account.balance_cents == 10000


def test_a_decided_transfer_is_skipped_not_reversed_twice(staff, transfer):
    for _ in range(2):
        response = staff.post(
            reverse("admin:accounts_transfer_changelist"),
            {"action": "reject", "_selected_action": [transfer.pk], "post": "yes"},
            secure=True,
            follow=True,
        )
    assert "Rejected 0 transfer(s)." in response.content.decode()
    assert "already settled or rejected" in response.content.decode()
    assert LedgerEntry.objects.filter(kind="reversal").count() == 1


def test_the_transfer_list_filters_by_status_and_shows_dollars(staff, transfer):
    page = staff.get(
        reverse("admin:accounts_transfer_changelist"), {"status__exact": "submitted"}, secure=True
    ).content.decode()
    assert "$25.00" in page
    page = staff.get(
        reverse("admin:accounts_transfer_changelist"), {"status__exact": "settled"}, secure=True
    ).content.decode()
    assert "$25.00" not in page


def test_history_is_read_only(staff, transfer, call):
    for name in ["accounts_ledgerentry", "accounts_confirmationcode", "accounts_transfer", "ivr_callsession"]:
        assert staff.get(reverse(f"admin:{name}_add"), secure=True).status_code == 403
    entry = LedgerEntry.objects.first()
    assert (
        staff.post(
            reverse("admin:accounts_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}, secure=True
        ).status_code
        == 403
    )


def test_code_and_call_pages_hide_hashes_and_scratch(staff, transfer, call):
    code = ConfirmationCode.objects.first()
    page = staff.get(reverse("admin:accounts_confirmationcode_change", args=[code.pk]), secure=True).content.decode()
    assert code.code_hash not in page
    page = staff.get(reverse("admin:ivr_callsession_change", args=[call.pk]), secure=True).content.decode()
    assert "secret-looking-hash" not in page


def test_the_verify_form_verifies_a_code_once(staff, account, recipient):
    receipt = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="k"
    )
    url = reverse("admin:accounts_confirmationcode_verify")
    assert (
        "Verify a code"
        in staff.get(reverse("admin:accounts_confirmationcode_changelist"), secure=True).content.decode()
    )

    page = staff.post(url, {"code": receipt.code}, secure=True).content.decode()
    assert "verified now" in page
    assert f"transfer {receipt.transfer.pk} of $25.00" in page
    assert ConfirmationCode.objects.get(transfer=receipt.transfer).verified_at is not None
    assert "already verified" in staff.post(url, {"code": receipt.code}, secure=True).content.decode()


@pytest.mark.parametrize("code, heard", [("000000", "Unknown code"), ("12345", "exactly 6 digits")])
def test_the_verify_form_refuses_unknown_and_malformed_codes(staff, code, heard):
    page = staff.post(reverse("admin:accounts_confirmationcode_verify"), {"code": code}, secure=True).content.decode()
    assert heard in page


def test_the_verify_form_needs_the_change_permission(client, django_user_model):
    # Verifying marks a code, and a registration code activates its account: seeing codes is not enough.
    user = django_user_model.objects.create_user("clerk", password="a-long-password-1", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:accounts_confirmationcode_verify"), secure=True).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_confirmationcode"))
    assert client.get(reverse("admin:accounts_confirmationcode_verify"), secure=True).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="change_confirmationcode"))
    assert client.get(reverse("admin:accounts_confirmationcode_verify"), secure=True).status_code == 200


@pytest.fixture
def pending(db) -> Account:
    return Account.objects.create(member_id="654321", home_number="+12027770000", pin_hash="x")


def test_the_account_list_filters_by_status(staff, account, pending):
    page = staff.get(
        reverse("admin:accounts_account_changelist") + "?status__exact=pending", secure=True
    ).content.decode()
    assert "654321" in page and "123456" not in page


def test_the_verify_action_activates_pending_accounts(staff, account, pending):
    response = staff.post(
        reverse("admin:accounts_account_changelist"),
        {"action": "verify", "_selected_action": [account.pk, pending.pk], "post": "yes"},
        secure=True,
        follow=True,
    )
    assert "Verified 1 account(s)." in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == "active" and pending.verified_at is not None


def test_the_reject_action_removes_only_unverified_accounts_without_money(staff, account, pending):
    response = staff.post(
        reverse("admin:accounts_account_changelist"),
        {"action": "reject_registration", "_selected_action": [account.pk, pending.pk], "post": "yes"},
        secure=True,
        follow=True,
    )
    page = response.content.decode()
    assert "Rejected 1 registration(s)." in page
    assert "Account 123456: verified: kept" in page
    assert list(Account.objects.values_list("member_id", flat=True)) == ["123456"]


def test_shared_lines_are_added_in_national_form_and_removed(staff):
    staff.post(
        reverse("admin:accounts_sharedline_add"), {"phone_number": "(202) 444-0000", "name": "Unit B"}, secure=True
    )
    line = SharedLine.objects.get()
    assert (line.phone_number, line.name) == ("+12024440000", "Unit B")
    response = staff.post(reverse("admin:accounts_sharedline_add"), {"phone_number": "12", "name": ""}, secure=True)
    assert "Not a phone number in E.164 or national form." in response.content.decode()
    staff.post(reverse("admin:accounts_sharedline_delete", args=[line.pk]), {"post": "yes"}, secure=True)
    assert not SharedLine.objects.exists()


def test_an_account_locked_only_at_its_home_number_shows_and_unlocks_that_route(client, account):
    from django.contrib.auth.models import User

    Account.objects.filter(pk=account.pk).update(
        home_locked_until=timezone.now() + timedelta(minutes=15), home_failed_pin_count=2
    )
    client.force_login(User.objects.create_superuser("boss", password="a long admin password 1"))
    page = client.get(reverse("admin:accounts_account_changelist"), secure=True).content.decode()
    assert "locked until" in page and "the trusted home number" in page
    plan = client.post(
        reverse("admin:accounts_account_changelist"),
        {"action": "unlock", "_selected_action": [account.pk]},
        secure=True,
    ).content.decode()
    assert "2 wrong PIN(s) counted (the trusted home number)" in plan


def test_every_list_in_the_admin_is_named_as_the_readme_names_it(staff):
    """The README's Operating section names each list in bold, in the admin's own words ("Sign-in sprays")."""
    from pathlib import Path

    from django.contrib import admin
    from django.utils.text import capfirst

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    index = staff.get("/admin/", secure=True).content.decode()
    assert index, "the dashboard"
    for model in admin.site._registry:
        if model._meta.app_label not in ("accounts", "ivr"):
            continue
        label = capfirst(model._meta.verbose_name_plural)
        assert f"**{label}**" in readme, label
        assert f">{label}<" in index, label
    assert "**Sign-in sprays**" in readme and ">Sign-in sprays<" in index
