"""Registration limits (README, Configuration): per personal line per day, and across the service per hour."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from accounts import identity
from accounts.models import Account, ConfirmationCode, Registration, SharedLine
from ivr.models import CallSession

pytestmark = pytest.mark.django_db

LINE = "+12027770000"
NO_MORE = "We cannot create more accounts right now. Please call again later."


def register(make_phone, caller: str, member_id: str, language: str = "en"):
    phone = make_phone(caller)
    phone.dial(language=language)
    choice = phone.press("#")
    answer = phone.press("3" if "To create a new account, press 3" in choice.text else "1")
    if answer.hangs_up:
        return answer
    phone.press(member_id)
    phone.press("4682")
    return phone.press("4682")


def test_one_line_registers_three_accounts_a_day_then_is_refused_calmly(make_phone, settings):
    settings.REGISTRATIONS_PER_LINE_PER_DAY = 3
    for number in range(3):
        assert "Your account is created." in register(make_phone, LINE, f"30000{number}").text
    before = (Account.objects.count(), ConfirmationCode.objects.count(), Registration.objects.count())
    refused = register(make_phone, LINE, "300009")
    assert NO_MORE in refused.text and refused.hangs_up
    assert (Account.objects.count(), ConfirmationCode.objects.count(), Registration.objects.count()) == before
    assert "Your account is created." in register(make_phone, "+12028880000", "300010").text, "another line may"


def test_the_refusal_is_said_in_spanish_too(make_phone, settings):
    settings.REGISTRATIONS_PER_HOUR = 1
    register(make_phone, LINE, "300001")
    refused = register(make_phone, "+12028880000", "300002", language="es")
    assert "No podemos crear más cuentas por ahora. Por favor, llame más tarde." in refused.text


def test_shared_lines_and_withheld_numbers_are_bounded_only_by_the_hourly_limit(make_phone, settings):
    settings.REGISTRATIONS_PER_LINE_PER_DAY = 1
    SharedLine.objects.create(phone_number="+12024440000")
    for number in range(3):
        assert "Your account is created." in register(make_phone, "+12024440000", f"31000{number}").text
        assert "Your account is created." in register(make_phone, "anonymous", f"32000{number}").text


def test_the_service_wide_hourly_limit_refuses_everyone_and_lets_in_again_after_the_hour(make_phone, settings):
    settings.REGISTRATIONS_PER_HOUR = 2
    register(make_phone, "+12027770001", "330001")
    register(make_phone, "+12027770002", "330002")
    assert NO_MORE in register(make_phone, "+12027770003", "330003").text
    assert Account.objects.count() == 2
    Registration.objects.update(created=timezone.now() - timedelta(minutes=61))
    assert "Your account is created." in register(make_phone, "+12027770003", "330003").text


def test_a_limit_reached_during_the_call_writes_nothing_at_the_confirmation(make_phone, settings):
    settings.REGISTRATIONS_PER_HOUR = 1
    phone = make_phone(LINE)
    phone.dial()
    phone.press("#")
    phone.press("1")
    phone.press("340001")
    phone.press("4682")
    identity.account_register(member_id="340002", pin_hash="x", line="+12028880000")  # another call takes the place
    answer = phone.press("4682")
    assert NO_MORE in answer.text and answer.hangs_up
    assert not Account.objects.filter(member_id="340001").exists()
    assert not CallSession.objects.get(call_sid=phone.call_sid).signed_in


def test_the_registration_keeps_no_phone_number(make_phone):
    register(make_phone, LINE, "350001")
    assert LINE not in Registration.objects.get().line and len(Registration.objects.get().line) == 64


def test_the_dashboard_shows_the_service_wide_limit_reached(client, settings):
    settings.REGISTRATIONS_PER_HOUR = 2
    for number in range(2):
        identity.account_register(member_id=f"36000{number}", pin_hash="x", line=f"+1202777000{number}")
    admin = User.objects.create_superuser("boss", password="a long admin password 1")
    client.force_login(admin)
    page = client.get(reverse("admin:index"), secure=True).content.decode()
    assert 'id="registration-limit"' in page and "New registrations are refused until" in page
    Registration.objects.update(created=timezone.now() - timedelta(hours=2))
    assert 'id="registration-limit"' not in client.get(reverse("admin:index"), secure=True).content.decode()
