"""Identity on any phone (docs/CALL_FLOW.md): member ID + PIN,
home numbers, shared lines, withheld numbers, doubtful caller IDs, locks and sprays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts import errors, identity, pins, selectors
from accounts.ledger import deposit
from accounts.models import Account, SharedLine, SignInFailure, SignInSpray
from ivr.models import CallSession
from tests.conftest import spoken_code

pytestmark = pytest.mark.django_db

SHARED = "+12024440000"
WITHHELD_FORMS = [
    "",
    "anonymous",
    "Anonymous",
    "restricted",
    "unknown",
    "private",
    "unavailable",
    "+266696687",
    "+7378742833",
    "+86282452253",
    "+2562533",
    "+8656696",
    "5551230001",
    "client:alice",
    "sip:bob@example.com",
    "+15551230001",
    "+10000000000",
    None,
]


def register(phone, member_id: str, pin: str = "4682"):
    """From the member-ID prompt: # then the member ID, the PIN twice; returns the code's answer."""
    assert "To create a new account, press pound" in phone.dial().text
    assert "To create an account" in phone.to_registration().text
    phone.press(member_id)
    phone.press(pin)
    return phone.press(pin)


def sign_in_by_member_id(phone, member_id: str, pin: str = "4682"):
    assert "Please enter your 6-digit member ID" in phone.dial().text
    assert "Please enter your 4-digit PIN" in phone.press(member_id).text
    return phone.press(pin)


def test_two_members_register_and_sign_in_from_one_shared_line_and_hear_their_own_balance(make_phone):
    SharedLine.objects.create(phone_number=SHARED, name="Unit B")
    register(make_phone(SHARED), "200001", "4682")
    register(make_phone(SHARED), "200002", "7315")
    first, second = Account.objects.get(member_id="200001"), Account.objects.get(member_id="200002")
    assert first.home_number is None and second.home_number is None, "a shared line is nobody's home number"
    deposit(account=first, amount_cents=1250)
    deposit(account=second, amount_cents=4000)

    for member_id, pin, balance in (("200001", "4682", "12 dollars and 50 cents"), ("200002", "7315", "40 dollars")):
        phone = make_phone(SHARED)
        assert "Main menu" in sign_in_by_member_id(phone, member_id, pin).text
        assert f"Your balance is {balance}." in phone.press("1").text


def test_one_members_wrong_pins_on_a_shared_line_lock_only_that_member(make_phone):
    SharedLine.objects.create(phone_number=SHARED)
    register(make_phone(SHARED), "200001", "4682")
    register(make_phone(SHARED), "200002", "7315")
    for _ in range(5):
        sign_in_by_member_id(make_phone(SHARED), "200001", "1111")
    assert Account.objects.get(member_id="200001").is_locked()
    assert "Main menu" in sign_in_by_member_id(make_phone(SHARED), "200002", "7315").text


@pytest.mark.parametrize("caller_id", WITHHELD_FORMS)
def test_withheld_numbers_register_and_sign_in_by_member_id_and_are_never_stored(make_phone, caller_id):
    answer = register(make_phone(caller_id), "300001")
    assert "registration code is" in answer.text
    account = Account.objects.get(member_id="300001")
    assert account.home_number is None
    assert set(CallSession.objects.values_list("caller", flat=True)) == {""}

    phone = make_phone(caller_id)
    assert "Main menu" in sign_in_by_member_id(phone, "300001").text
    assert "Your balance is 0 dollars." in phone.press("1").text


def test_a_home_number_signs_in_with_the_pin_alone_two_entries_to_the_balance(phone, account):
    assert "Please enter your 4-digit PIN. For other options, press pound." in phone.dial().text
    assert "Main menu" in phone.press("3971").text
    assert "Your balance is 100 dollars." in phone.press("1").text
    assert len(phone.responses) == 3, "the call, the PIN, the 1"


@pytest.mark.parametrize("verstat", ["TN-Validation-Failed-A", "TN-Validation-Failed-B", "TN-Validation-Failed-C"])
def test_a_failed_stir_validation_on_a_home_number_must_give_the_member_id(phone, account, verstat):
    def post(url, params=None, **kwargs):
        return original(url, {**(params or {}), "StirVerstat": verstat}, **kwargs)

    original, phone.post = phone.post, post
    answer = phone.dial()
    assert "Please enter your 6-digit member ID" in answer.text
    assert "For other options" not in answer.text
    phone.press("123456")
    assert "Main menu" in phone.press("3971").text


def test_an_attested_caller_id_keeps_pin_only_entry(phone, account):
    answer = phone.twiml(phone.post("/twilio/voice", {"StirVerstat": "TN-Validation-Passed-A"}))
    assert "For other options, press pound" in answer.text


@pytest.mark.parametrize(
    "verstat",
    [
        "TN-Validation-Passed-B",
        "TN-Validation-Passed-C",
        "No-TN-Validation",
        "",
        None,
        "tn-validation-passed-a-forged",
        "TN-Validation-Failed-A",
    ],
)
def test_a_caller_id_no_carrier_vouches_for_must_give_the_member_id(phone, account, verstat):
    phone.stir = verstat
    answer = phone.dial()
    assert "Please enter your 6-digit member ID" in answer.text
    assert "For other options" not in answer.text
    phone.press("123456")
    assert "Main menu" in phone.press("3971").text
    assert Account.objects.get(pk=account.pk).home_number == phone.caller, "an existing home number stays"


@pytest.mark.parametrize("verstat", ["No-TN-Validation", "", None, "TN-Validation-Passed-B"])
def test_unless_failed_trusts_what_version_2_trusted(phone, account, settings, verstat):
    settings.CALLER_ID_TRUST = "unless-failed"
    phone.stir = verstat
    assert "For other options, press pound" in phone.dial().text


def test_unless_failed_still_refuses_a_failed_validation(phone, account, settings):
    settings.CALLER_ID_TRUST = "unless-failed"
    phone.stir = "TN-Validation-Failed-B"
    assert "Please enter your 6-digit member ID" in phone.dial().text


@pytest.mark.parametrize("verstat", ["TN-Validation-Passed-B", None])
def test_registering_from_a_caller_id_no_carrier_vouches_for_sets_no_home_number(phone, verstat):
    phone.caller, phone.stir = "+12027770000", verstat
    register(phone, "400001")
    assert Account.objects.get(member_id="400001").home_number is None


def test_a_home_number_made_a_shared_line_asks_for_the_member_id(make_phone, account):
    call_command("add_shared_line", account.home_number)
    assert "Please enter your 6-digit member ID" in make_phone(account.home_number).dial().text


def test_a_shared_line_added_mid_call_sends_the_pin_to_the_member_id_prompt(phone, account):
    phone.dial()
    SharedLine.objects.create(phone_number=account.home_number)
    answer = phone.press("3971")
    assert "Please enter your 6-digit member ID" in answer.text
    assert not CallSession.objects.get(call_sid=phone.call_sid).signed_in


def test_a_spoofed_home_number_registers_no_second_home_and_spends_nothing(make_phone, account):
    """An attacker spoofing the owner's number gets the PIN prompt, and registering gives them no home number."""
    attacker = make_phone(account.home_number)
    assert "For other options" in attacker.dial().text
    attacker.to_registration()
    attacker.press("777777")
    attacker.press("4682")
    attacker.press("4682")
    squatter = Account.objects.get(member_id="777777")
    assert (squatter.home_number, squatter.status) == (None, "pending")
    deposit(account=squatter, amount_cents=5000)
    attacker.press("2")
    assert "not verified" in attacker.press("2").text


def test_registering_takes_a_free_trusted_personal_number_as_home_number(make_phone):
    register(make_phone("+12027770000"), "400001")
    assert Account.objects.get(member_id="400001").home_number == "+12027770000"


def test_registering_from_a_doubtful_caller_id_sets_no_home_number(phone):
    original = phone.post
    phone.post = lambda url, params=None, **kw: original(
        url, {**(params or {}), "StirVerstat": "TN-Validation-Failed-C"}, **kw
    )
    phone.caller = "+12027770000"
    register(phone, "400001")
    assert Account.objects.get(member_id="400001").home_number is None


def test_a_squatted_member_id_is_freed_by_reject_registration(make_phone):
    register(make_phone("+12027770000"), "500001")
    owner = make_phone("+12028880000")
    owner.dial()
    owner.to_registration()
    assert "That member ID already has an account. Staff can help." in owner.press("500001").text
    call_command("reject_registration", "500001")
    assert not Account.objects.filter(member_id="500001").exists()
    assert "registration code is" in register(make_phone("+12027770000"), "500001").text
    assert Account.objects.get(member_id="500001").home_number == "+12027770000", "the number was freed too"


def test_a_squatted_member_id_is_freed_by_expiry(make_phone, settings):
    register(make_phone("+12027770000"), "500001")
    Account.objects.filter(member_id="500001").update(created=timezone.now() - timedelta(days=15))
    register(make_phone("+12029990000"), "500002")  # recent: kept
    call_command("purge_call_sessions")
    assert list(Account.objects.values_list("member_id", flat=True)) == ["500002"]
    assert "registration code is" in register(make_phone("+12028880000"), "500001").text


def test_expiry_keeps_verified_accounts_and_pending_ones_holding_money(db):
    old = timezone.now() - timedelta(days=30)
    Account.objects.create(member_id="600001", pin_hash="x", created=old, status="active", verified_at=old)
    funded = Account.objects.create(member_id="600002", pin_hash="x", created=old)
    deposit(account=funded, amount_cents=100)
    Account.objects.create(member_id="600003", pin_hash="x", created=old)
    assert identity.registrations_release_expired() == 1
    assert sorted(Account.objects.values_list("member_id", flat=True)) == ["600001", "600002"]


def test_verifying_the_registration_code_activates_the_account(make_phone, capsys):
    code = spoken_code(register(make_phone("+12027770000"), "700001").text)
    call_command("verify_code", code)
    account = Account.objects.get(member_id="700001")
    assert account.status == "active" and account.verified_at is not None
    assert "registration of Account 700001 (active)" in capsys.readouterr().out


def lock(make_phone, account):
    for _ in range(5):
        phone = make_phone("+12025009999")
        phone.dial()
        phone.press(account.member_id)
        phone.press("1357")
    account.refresh_from_db()
    assert account.is_locked()
    return account.locked_until - timezone.now()


def test_lock_unlock_right_pin_lock_again_is_15_minutes_not_30(make_phone, account):
    assert lock(make_phone, account) <= timedelta(minutes=15)
    call_command("unlock", account.member_id)
    phone = make_phone("+12025009999")
    assert "Main menu" in sign_in_by_member_id(phone, account.member_id, "3971").text
    assert timedelta(minutes=14) < lock(make_phone, account) <= timedelta(minutes=15)


def test_a_right_pin_after_a_lock_expires_resets_the_escalation(make_phone, account):
    lock(make_phone, account)
    Account.objects.filter(pk=account.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert "Main menu" in sign_in_by_member_id(make_phone("+12025009999"), account.member_id, "3971").text
    account.refresh_from_db()
    assert (account.lock_count, account.failed_pin_count) == (0, 0)
    assert lock(make_phone, account) <= timedelta(minutes=15)


@pytest.mark.parametrize(
    "minutes_left, heard",
    [
        (15, "15 minutes"),
        (1, "1 minute"),
        (61, "2 hours"),
        (120, "2 hours"),
        (60, "60 minutes"),
        (23 * 60 + 1, "24 hours"),
    ],
)
def test_the_locked_caller_hears_how_long_is_left_and_that_staff_can_help(phone, account, minutes_left, heard):
    Account.objects.filter(pk=account.pk).update(
        home_locked_until=timezone.now() + timedelta(minutes=minutes_left, seconds=-1)
    )
    phone.dial()
    answer = phone.press("3971")
    assert f"This account is locked for {heard}." in answer.text
    assert "Staff can help. For help, press 0." in answer.text
    assert not answer.hangs_up, "a prompt, so that 0 reaches help"
    assert not CallSession.objects.get(call_sid=phone.call_sid).signed_in
    goodbye = phone.silence()
    assert goodbye.hangs_up and "Goodbye." in goodbye.text


def test_any_key_but_0_at_the_lock_says_goodbye(phone, account):
    Account.objects.filter(pk=account.pk).update(home_locked_until=timezone.now() + timedelta(minutes=15))
    phone.dial()
    phone.press("3971")
    assert phone.press("1").hangs_up


def test_a_spray_of_one_guess_calls_from_many_numbers_suspends_pin_only_entry_and_locks_nobody(
    make_phone, settings, caplog
):
    settings.SIGN_IN_SPRAY_PER_MINUTE = 30
    pin_hash = pins.hash_pin("3971")
    victims = [
        Account.objects.create(
            member_id=f"8{n:05d}",
            home_number=f"+1202600{n:04d}",
            pin_hash=pin_hash,
            status="active",
            verified_at=timezone.now(),
        )
        for n in range(40)
    ]
    heard = []
    for victim in victims:
        phone = make_phone(victim.home_number)
        answer = phone.dial()
        heard.append("For other options" in answer.text)
        if heard[-1]:
            phone.press("1234")
    assert heard[:31] == [True] * 31, "PIN-only entry until the 31st failure in a minute"
    assert heard[31:] == [False] * 9, "then every caller must give a member ID"
    assert SignInSpray.objects.count() == 1
    assert caplog.text.count("sign-in spray") == 1, "logged once"
    assert not Account.objects.filter(home_locked_until__isnull=False).exists(), "nobody is locked out"
    assert not Account.objects.filter(home_failed_pin_count__gt=1).exists()

    # The owner still gets in, with the member ID.
    owner = make_phone(victims[0].home_number)
    assert "Main menu" in sign_in_by_member_id(owner, victims[0].member_id, "3971").text


def test_a_spray_ends_after_15_minutes(phone, account):
    SignInSpray.objects.create(
        started=timezone.now() - timedelta(minutes=16), until=timezone.now() - timedelta(minutes=1), failures=31
    )
    assert "For other options" in phone.dial().text


def test_failures_older_than_a_minute_do_not_count_toward_a_spray(db, settings):
    settings.SIGN_IN_SPRAY_PER_MINUTE = 3
    old = timezone.now() - timedelta(minutes=2)
    SignInFailure.objects.bulk_create([SignInFailure(created=old) for _ in range(10)])

    def guess() -> None:
        with pytest.raises(errors.WrongPin):
            identity.account_sign_in(pin="1234", attempt=identity.pin_attempt_count(member_id="999999"))

    for _ in range(3):
        guess()
    assert selectors.spray_active() is None
    guess()
    assert selectors.spray_active() is not None
