"""The service's local time (TIME_ZONE): dates callers hear, "today" for the daily limit, the dashboard, operators.

New York is 5 hours behind UTC in winter (EST) and 4 in summer (EDT): an
evening there is already tomorrow in UTC. In 2026 its clocks go forward on
March 8 (a 23-hour day) and back on November 1 (a 25-hour day). The clock is
replaced by passing now=.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone, translation

from accounts import confirmations, dashboard, errors, ledger, selectors
from accounts.models import HourlyActivity, LedgerEntry, SignInSpray, Transfer
from accounts.spoken import spoken_date
from ivr.steps.menu import describe_entry
from myibot import local_time

pytestmark = pytest.mark.django_db


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def new_york(settings):
    # Django resets its default time zone when the setting changes.
    settings.TIME_ZONE = "America/New_York"


@pytest.fixture
def rich(account):
    """The account with 5,000 dollars: only the limits stop a transfer."""
    ledger.deposit(account=account, amount_cents=4900_00)
    return account


def send(account, recipient, dollars: int, at: datetime) -> Transfer:
    return ledger.transfer_submit(
        account=account,
        recipient_code=recipient.code,
        amount_cents=dollars * 100,
        idempotency_key=f"at:{at.isoformat()}",
        now=at,
    ).transfer


# Dates callers hear ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "moment", "heard"),
    [
        ("America/New_York", utc(2026, 12, 2, 2, 30), "December 1st"),  # 21:30 the evening before
        ("Asia/Tokyo", utc(2026, 12, 1, 20, 0), "December 2"),  # 05:00 the next morning
        ("UTC", utc(2026, 12, 2, 2, 30), "December 2"),
    ],
)
def test_it_speaks_a_moment_as_its_date_in_the_service_zone(settings, zone, moment, heard):
    settings.TIME_ZONE = zone
    assert spoken_date(moment, now=utc(2026, 12, 2, 12, 0)) == heard


def test_it_speaks_the_local_date_in_spanish_too():
    with translation.override("es"):
        assert spoken_date(utc(2026, 12, 2, 2, 30), now=utc(2026, 12, 2, 12, 0)) == "primero de diciembre"


def test_it_says_the_year_only_when_it_is_not_this_local_year():
    new_years_eve = utc(2027, 1, 1, 4, 45)  # 23:45 on December 31, 2026 in New York
    assert spoken_date(utc(2026, 12, 31, 17, 0), now=new_years_eve) == "December 31"
    just_after = utc(2027, 1, 1, 5, 30)  # 00:30 on January 1, 2027
    assert spoken_date(utc(2027, 1, 1, 4, 30), now=just_after) == "December 31, 2026"
    with translation.override("es"):
        assert spoken_date(utc(2027, 1, 1, 4, 30), now=just_after) == "31 de diciembre de 2026"


def test_it_still_speaks_a_plain_date_as_it_is():
    assert spoken_date(date(2026, 12, 2), now=utc(2026, 12, 2, 2, 30)) == "December 2"


def test_it_reads_an_evening_deposit_to_the_caller_with_its_local_date(account):
    entry = LedgerEntry.objects.get(kind="deposit")
    year = timezone.localdate().year  # this local year, so no year is spoken whenever the test runs
    LedgerEntry.objects.filter(pk=entry.pk).update(created=utc(year, 12, 2, 2, 30))
    entry.refresh_from_db()
    assert describe_entry(entry) == "On December 1st, 100 dollars was added to your account."
    with translation.override("es"):
        assert describe_entry(entry) == "El primero de diciembre, recibió un depósito de 100 dólares."


def test_it_reads_the_local_date_in_the_call(signed_in, account):
    year = timezone.localdate().year
    LedgerEntry.objects.filter(account=account).update(created=utc(year, 12, 2, 2, 30))
    assert "On December 1st, 100 dollars was added to your account." in signed_in.press("4").text


# The local day -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "start", "hours"),
    [
        (utc(2026, 12, 2, 2, 30), utc(2026, 12, 1, 5, 0), 24),  # December 1, EST
        (utc(2026, 7, 1, 12, 0), utc(2026, 7, 1, 4, 0), 24),  # July 1, EDT
        (utc(2026, 3, 9, 3, 45), utc(2026, 3, 8, 5, 0), 23),  # March 8: 02:00 never happens
        (utc(2026, 11, 2, 4, 30), utc(2026, 11, 1, 4, 0), 25),  # November 1: 01:00 to 02:00 twice
    ],
)
def test_it_bounds_a_local_day_by_the_zones_rules_not_an_offset(moment, start, hours):
    first, last = local_time.day_bounds(moment)
    assert (first, last - first) == (start, timedelta(hours=hours))
    assert first.utcoffset() == timedelta(0)


def test_it_starts_a_day_whose_midnight_the_clocks_skip_at_the_change(settings):
    settings.TIME_ZONE = "America/Santiago"  # on September 6, 2026 its clocks go from 00:00 to 01:00
    start = local_time.day_start(date(2026, 9, 6))
    assert start == utc(2026, 9, 6, 4, 0)
    assert f"{local_time.local(start):%H:%M}" == "01:00"


# The daily transfer limit ----------------------------------------------------------------------


@pytest.fixture
def limit_100(settings):
    settings.DAILY_TRANSFER_LIMIT_DOLLARS = 100


def test_it_counts_23_30_and_00_30_local_toward_different_days_within_one_utc_day(rich, recipient, limit_100):
    send(rich, recipient, 60, utc(2026, 12, 2, 4, 30))  # 23:30 on December 1 in New York
    assert selectors.daily_room_cents(account=rich, now=utc(2026, 12, 2, 4, 45)) == 40_00
    # 00:30 on December 2, the same UTC day: a new local day, with its whole limit.
    assert selectors.daily_room_cents(account=rich, now=utc(2026, 12, 2, 5, 30)) == 100_00
    send(rich, recipient, 60, utc(2026, 12, 2, 5, 30))
    assert selectors.daily_room_cents(account=rich, now=utc(2026, 12, 2, 6, 0)) == 40_00


def test_it_counts_two_utc_days_as_one_local_evening(rich, recipient, limit_100):
    send(rich, recipient, 60, utc(2026, 12, 1, 23, 30))  # 18:30 on December 1 in New York
    # 19:30 the same evening, though already December 2 in UTC: still today.
    with pytest.raises(errors.DailyLimitReached) as refused:
        send(rich, recipient, 60, utc(2026, 12, 2, 0, 30))
    assert refused.value.room_cents == 40_00
    assert Transfer.objects.count() == 1


def test_it_counts_the_23_hour_day_of_the_spring_change_from_local_midnight(rich, recipient, limit_100):
    send(rich, recipient, 30, utc(2026, 3, 8, 4, 30))  # 23:30 EST on March 7: yesterday
    send(rich, recipient, 50, utc(2026, 3, 8, 5, 30))  # 00:30 EST on March 8
    # 23:45 EDT on March 8. Midnight at today's offset (-4) would be 04:00 UTC and count both.
    assert selectors.daily_room_cents(account=rich, now=utc(2026, 3, 9, 3, 45)) == 50_00
    assert selectors.daily_room_cents(account=rich, now=utc(2026, 3, 9, 4, 15)) == 100_00  # 00:15 on March 9


def test_it_counts_the_25_hour_day_of_the_autumn_change_from_local_midnight(rich, recipient, limit_100):
    send(rich, recipient, 30, utc(2026, 11, 1, 3, 30))  # 23:30 EDT on October 31: yesterday
    send(rich, recipient, 50, utc(2026, 11, 1, 4, 30))  # 00:30 EDT on November 1
    # 23:30 EST on November 1. Midnight at today's offset (-5) would be 05:00 UTC and miss the 50.
    assert selectors.daily_room_cents(account=rich, now=utc(2026, 11, 2, 4, 30)) == 50_00


# The dashboard ------------------------------------------------------------------------------


def day_totals(chart: dashboard.Chart) -> dict[str, float]:
    totals: dict[str, float] = {}
    for bar in chart.bars:
        label, _, rest = bar.title.partition(": ")
        totals[label] = totals.get(label, 0) + float(rest.split(" ")[0].replace("$", "").replace(",", ""))
    return totals


def test_the_dashboard_puts_a_transfer_at_03_00_utc_in_the_previous_local_day(rich, recipient):
    send(rich, recipient, 25, utc(2026, 12, 2, 3, 0))  # 22:00 on December 1
    send(rich, recipient, 10, utc(2026, 12, 2, 15, 0))  # 10:00 on December 2
    _, _, transfers, amounts = dashboard.build(utc(2026, 12, 2, 20, 0))["charts"]
    assert day_totals(transfers) == {"Dec 1": 1, "Dec 2": 1}
    assert day_totals(amounts) == {"Dec 1": 25, "Dec 2": 10}


def test_the_dashboard_shows_today_as_the_local_date(rich, recipient):
    send(rich, recipient, 25, utc(2026, 12, 2, 1, 0))  # 20:00 on December 1
    # 21:00 on December 1 in New York, already December 2 in UTC: the 30 days end on December 1.
    _, _, transfers, _ = dashboard.build(utc(2026, 12, 2, 2, 0))["charts"]
    assert day_totals(transfers) == {"Dec 1": 1}
    assert transfers.ticks[0][1] == "Nov 2"


def test_the_dashboard_groups_the_days_around_a_change_of_the_clocks(rich, recipient):
    send(rich, recipient, 1, utc(2026, 3, 8, 4, 30))  # 23:30 EST on March 7
    send(rich, recipient, 2, utc(2026, 3, 9, 3, 30))  # 23:30 EDT on March 8
    send(rich, recipient, 4, utc(2026, 3, 9, 4, 30))  # 00:30 EDT on March 9
    _, _, _, amounts = dashboard.build(utc(2026, 3, 9, 12, 0))["charts"]
    assert day_totals(amounts) == {"Mar 7": 1, "Mar 8": 2, "Mar 9": 4}


def test_the_dashboard_labels_hours_in_local_time(db):
    HourlyActivity.objects.create(hour=utc(2026, 12, 2, 3, 0), kind="call", count=7)
    calls, _, _, _ = dashboard.build(utc(2026, 12, 2, 4, 10))["charts"]
    assert [bar.title for bar in calls.bars] == ["Tue 22:00: 7 calls without a sign-in"]


def test_the_dashboard_hours_skip_the_hour_the_clocks_skip(db):
    for hour in (utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 7, 0)):  # one hour after the other
        HourlyActivity.objects.create(hour=hour, kind="call", count=1)
    calls, _, _, _ = dashboard.build(utc(2026, 3, 8, 12, 0))["charts"]
    assert [bar.title.partition(": ")[0] for bar in calls.bars] == ["Sun 01:00", "Sun 03:00"]


# What operators read ---------------------------------------------------------------------------


def test_operators_read_times_in_local_time_with_the_zones_abbreviation(account):
    spray = SignInSpray(started=utc(2026, 12, 2, 2, 30), until=utc(2026, 12, 2, 2, 45), failures=31)
    assert str(spray) == "Sign-in spray from 2026-12-01 21:30 EST to 21:45 EST"
    summer = SignInSpray(started=utc(2026, 7, 1, 16, 0), until=utc(2026, 7, 1, 16, 15), failures=31)
    assert str(summer) == "Sign-in spray from 2026-07-01 12:00 EDT to 12:15 EDT"
    assert str(HourlyActivity(hour=utc(2026, 12, 2, 3, 0), kind="call", count=7)) == "7 calls at 2026-12-01 22:00 EST"
    code = confirmations.confirmation_code_issue(account=account, purpose="registration", now=utc(2026, 12, 2, 2, 30))
    check = confirmations.confirmation_code_verify(code=code, now=utc(2026, 12, 2, 3, 0))
    said = confirmations.describe_code_check(check)
    assert "issued 2026-12-01 21:30 EST" in said and "UTC" not in said


def test_the_dashboard_page_says_its_zone_and_never_utc(admin_client, account):
    now = timezone.now()
    SignInSpray.objects.create(started=now, until=now + timedelta(minutes=15), failures=31)
    page = admin_client.get("/admin/", secure=True).content.decode()
    assert "Hours, days and times in America/New_York." in page
    spray = page[page.index('id="spray"') : page.index("All sprays")]
    assert f"{local_time.local(now):%H:%M %Z}" in spray and "UTC" not in spray
