"""What operators see and correct: the dashboard, deposits and their reversal, exports, quiet commands."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from accounts import activity, dashboard, ledger
from accounts.models import Account, HourlyActivity, LedgerEntry, SignInSpray, Transfer

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def staff(admin_client):
    admin_client.defaults["wsgi.url_scheme"] = "https"
    admin_client.defaults["SERVER_PORT"] = "443"
    return admin_client


# Dashboard ----------------------------------------------------------------------------


def bar_totals(chart: dashboard.Chart) -> dict[str, float]:
    totals: dict[str, float] = {}
    for bar in chart.bars:
        _label, _, rest = bar.title.partition(": ")
        value, _, name = rest.partition(" ")
        name = {"calls without a sign-in": "calls"}.get(name, name)
        totals[name] = totals.get(name, 0) + float(value.replace("$", "").replace(",", ""))
    return totals


def test_the_dashboard_counts_what_happened(account, recipient, django_capture_on_commit_callbacks):
    now = timezone.now()
    # Counted when each step's transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            activity.call_started()
        activity.signed_in()
        activity.signed_in()
        activity.sign_in_failed()
        activity.account_locked()
    HourlyActivity.objects.create(
        hour=now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=49), kind="call", count=100
    )  # older than two days: not shown
    first = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="a"
    )
    ledger.transfer_submit(account=account, recipient_code=recipient.code, amount_cents=1000, idempotency_key="b")
    ledger.transfer_settle(transfer=first.transfer)
    old = ledger.transfer_submit(account=account, recipient_code=recipient.code, amount_cents=500, idempotency_key="c")
    Transfer.objects.filter(pk=old.transfer.pk).update(created=now - timedelta(days=31))

    shown = dashboard.build(now)
    calls, failures, transfers, amounts = shown["charts"]
    assert bar_totals(calls) == {"calls": 1, "sign-ins": 2}, "3 calls, 2 of them signed in"
    assert bar_totals(failures) == {"failed PINs": 1, "locks": 1}
    assert bar_totals(transfers) == {"settled": 1, "submitted": 1}
    assert bar_totals(amounts) == {"settled": 25, "submitted": 10}
    assert [t.amount_cents for t in shown["awaiting_settlement"].items] == [500, 1000]
    assert shown["awaiting_settlement"].total == 2
    assert shown["awaiting_verification"].total == 0 and shown["spray"] is None


def test_the_dashboard_lists_what_needs_action(account):
    pending = [Account.objects.create(member_id=f"9{n:05d}", pin_hash="x") for n in range(25)]
    Account.objects.filter(pk=account.pk).update(locked_until=timezone.now() + timedelta(minutes=10))
    spray = SignInSpray.objects.create(until=timezone.now() + timedelta(minutes=15), failures=31)
    shown = dashboard.build()
    assert shown["awaiting_verification"].total == 25
    assert [a.member_id for a in shown["awaiting_verification"].items] == [a.member_id for a in pending[:20]]
    assert [a.member_id for a in shown["locked_accounts"].items] == ["123456"]
    assert shown["spray"] == spray


def test_the_dashboard_page_is_the_branded_admin_index(staff, account, recipient):
    ledger.transfer_submit(account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="a")
    page = staff.get("/admin/", secure=True).content.decode()
    assert "<title>Dashboard | MyiBot operations</title>" in page
    assert "Django administration" not in page and "View site" not in page
    assert page.count('<svg class="chart"') == 6  # four of accounts, two of card deposits
    assert '<ul id="awaiting-settlement">' in page and "$25.00 to Jane Doe (246810)" in page
    assert 'id="awaiting-verification"' in page and 'id="locked-accounts"' in page and 'id="spray"' in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page, (
        "nothing from another host"
    )


def test_the_dashboard_is_a_fixed_few_queries_on_a_year_of_data(
    staff, account, recipient, django_assert_max_num_queries
):
    start = timezone.now() - timedelta(days=365)
    transfers = Transfer.objects.bulk_create(
        [
            Transfer(
                account=account,
                recipient=recipient,
                amount_cents=100,
                idempotency_key=f"year:{n}",
                status="settled",
                created=start + timedelta(minutes=10 * n),
            )
            for n in range(50_000)
        ]
    )
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                account=account, amount_cents=-100, kind="transfer", transfer=transfer, created=transfer.created
            )
            for transfer in transfers
        ]
        + [LedgerEntry(account=account, amount_cents=100, kind="deposit", created=start) for _ in range(50_000)]
    )
    assert LedgerEntry.objects.count() > 100_000
    HourlyActivity.objects.bulk_create(
        [
            HourlyActivity(
                hour=(start + timedelta(hours=n)).replace(minute=0, second=0, microsecond=0), kind="call", count=3
            )
            for n in range(365 * 24)
        ],
        ignore_conflicts=True,
    )
    # The session and user, then: activity, transfers by day, and three lists with their counts, one spray;
    # card deposits by day, those needing a look, and lines failing in a row; refunds and disputes by day
    # (two), refunds and disputes needing a look, members owing, Stripe's events not applied.
    with django_assert_max_num_queries(21):
        response = staff.get("/admin/", secure=True)
    assert response.status_code == 200


# Deposits and their correction ------------------------------------------------------------


def test_a_large_deposit_needs_confirm(account, capsys, settings):
    settings.DEPOSIT_CONFIRM_DOLLARS = 1000
    with pytest.raises(CommandError, match=r"\$5,000.00 is more than \$1,000.00 .*--confirm. Nothing was deposited"):
        call_command("deposit", account.home_number, "5000")
    assert LedgerEntry.objects.count() == 1
    call_command("deposit", account.home_number, "1000", "--confirm")
    call_command("deposit", account.home_number, "1000.01", "--confirm")
    account.refresh_from_db()
    assert account.balance_cents == 10000 + 100000 + 100001


def test_deposit_prints_the_entry_number_and_how_to_undo_it(account, capsys):
    call_command("deposit", account.member_id, "12.50")
    entry = LedgerEntry.objects.latest("pk")
    out = capsys.readouterr().out
    assert f"as ledger entry {entry.pk};" in out and f"reverse_deposit {entry.pk}" in out


def test_reverse_deposit_writes_its_own_kind_of_entry(account, capsys):
    call_command("deposit", account.member_id, "40")
    entry = LedgerEntry.objects.latest("pk")
    call_command("reverse_deposit", str(entry.pk))
    correction = LedgerEntry.objects.latest("pk")
    assert (correction.kind, correction.amount_cents, correction.corrects_id) == ("correction", -4000, entry.pk)
    account.refresh_from_db()
    assert account.balance_cents == 10000
    assert f"with entry {correction.pk}" in capsys.readouterr().out


def test_reverse_deposit_refusals(account, recipient):
    deposit_entry = LedgerEntry.objects.get(kind="deposit")
    with pytest.raises(CommandError, match="a ledger entry is a number"):
        call_command("reverse_deposit", "abc")
    with pytest.raises(CommandError, match="there is no ledger entry 999"):
        call_command("reverse_deposit", "999")
    ledger.transfer_submit(account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="a")
    with pytest.raises(CommandError, match="the money was spent"):
        call_command("reverse_deposit", str(deposit_entry.pk))
    sent = LedgerEntry.objects.get(kind="transfer")
    with pytest.raises(CommandError, match="is a transfer, not a deposit"):
        call_command("reverse_deposit", str(sent.pk))
    extra = ledger.deposit(account=account, amount_cents=100)
    call_command("reverse_deposit", str(extra.pk))
    with pytest.raises(CommandError, match="already reversed"):
        call_command("reverse_deposit", str(extra.pk))


def test_the_admin_shows_the_pair_and_reverses_a_deposit(staff, account):
    extra = ledger.deposit(account=account, amount_cents=700)
    staff.post(
        reverse("admin:accounts_ledgerentry_changelist"),
        {"action": "reverse_deposit", "_selected_action": [extra.pk], "post": "yes"},
        secure=True,
    )
    correction = LedgerEntry.objects.get(kind="correction")
    page = staff.get(reverse("admin:accounts_ledgerentry_changelist"), secure=True).content.decode()
    assert f"takes back the deposit in entry {extra.pk}" in page and f"reversed by entry {correction.pk}" in page


# Exports ---------------------------------------------------------------------------------


def test_transfers_export_as_csv_for_settlement(staff, account, recipient, settings):
    settings.TIME_ZONE = "America/New_York"
    evening = datetime(2025, 12, 2, 2, 30, tzinfo=UTC)  # 21:30 on December 1 in New York
    done = ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=2550, idempotency_key="a", now=evening
    )
    ledger.transfer_settle(transfer=done.transfer)
    ledger.transfer_submit(account=account, recipient_code=recipient.code, amount_cents=1000, idempotency_key="b")
    response = staff.post(
        reverse("admin:accounts_transfer_changelist"),
        {"action": "export_csv", "_selected_action": list(Transfer.objects.values_list("pk", flat=True))},
        secure=True,
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="transfers-')
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "transfer",
        "member ID",
        "recipient code",
        "recipient name",
        "amount (dollars)",
        "status",
        "created (America/New_York)",
        "decided (America/New_York)",
    ]
    assert [row[1:6] for row in rows[1:]] == [
        ["123456", "246810", "Jane Doe", "25.50", "settled"],
        ["123456", "246810", "Jane Doe", "10.00", "submitted"],
    ]
    # The service's local time, as the admin's lists show it, with its offset.
    assert rows[1][6] == "2025-12-01 21:30:00-05:00"
    assert rows[1][7] and not rows[2][7]


def test_transfers_are_shown_by_member_id_and_recipient(staff, account, recipient):
    ledger.transfer_submit(account=account, recipient_code=recipient.code, amount_cents=2500, idempotency_key="a")
    page = staff.get(reverse("admin:accounts_transfer_changelist"), secure=True).content.decode()
    assert "Jane Doe (246810)" in page and "123456" in page


# Quiet commands -----------------------------------------------------------------------------


def test_an_operator_command_prints_only_its_own_summary(tmp_path):
    env = {"DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp_path}/quiet.sqlite3", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, capture_output=True)
    result = subprocess.run(
        [sys.executable, "manage.py", "create_recipient", "246810", "Jane", "Doe"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("Created recipient Jane Doe")
    server_side = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert server_side.stderr.count("insecure development values") == 1, "the development warning, once, elsewhere"
