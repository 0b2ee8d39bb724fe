"""How many SQL queries each step may make: every round trip is time a caller waits.

Counted as Django captures them, including the two savepoints the test's own
transaction adds around each step's atomic block (in production those are the
BEGIN and COMMIT of the step's transaction). The hourly activity counts run
after the commit (accounts/activity.py), which a test's transaction never
reaches: the budgets leave room for them.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_double")]

SAVEPOINTS = 2
# A PIN attempt is counted in a transaction of its own before the step's, and the step's outcome
# for the account is a transaction nested in the step's: three pairs of savepoints in a test.
PIN_SAVEPOINTS = 3 * SAVEPOINTS


def test_entry(phone, account, django_assert_max_num_queries):
    # Whose home number is this, in which language, open to PIN-only sign-in (one query: not shared,
    # no spray)? Then the call's row, inserted with its first prompt: no transaction. The hour's call
    # count follows (one upsert, after the insert; a test's own transaction never gets there).
    with django_assert_max_num_queries(2):
        assert "For other options" in phone.dial().text


def test_entry_again_for_a_call_already_there(phone, account, django_assert_max_num_queries):
    # Twilio's retry of the first webhook: the insert finds the call there, and the call is restarted,
    # locked: the same look-up and insert, then the call locked, looked up again, and written.
    phone.dial()
    with django_assert_max_num_queries(2 + SAVEPOINTS + 3):
        assert "For other options" in phone.dial().text


def test_entry_unknown_number_then_language(phone, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        assert "Para español" in phone.dial(language=None).text
    # The call, and its update: the language is not looked up.
    with django_assert_max_num_queries(2):
        assert "miembro" in phone.press("2").text


def test_entry_withheld(phone, django_assert_max_num_queries):
    # A withheld number needs no look-up: the language prompt.
    phone.caller = "anonymous"
    with django_assert_max_num_queries(1):
        phone.dial(language=None)


def test_pin_only(phone, account, django_assert_max_num_queries):
    phone.dial()
    # Counted first: the call; still PIN-only?; the account, locked (shared line?); its count.
    # Then the step: the call, locked; the account, locked; its count taken back; the call.
    # (The hour's sign-ins are counted after the commit, which a test never reaches.)
    with django_assert_max_num_queries(PIN_SAVEPOINTS + 4 + 4):
        assert "Main menu" in phone.press("3971").text


def test_member_id_then_pin(phone, account, django_assert_max_num_queries):
    phone.caller = "+12025009999"
    phone.dial()
    # The member ID is not looked up: the call, and its update where it was read.
    with django_assert_max_num_queries(2):
        phone.press("123456")
    # Counted first: the call; the account by member ID, locked; its count. Then the step:
    # the call, locked; the account, locked; its count taken back; the call.
    with django_assert_max_num_queries(PIN_SAVEPOINTS + 3 + 4):
        assert "Main menu" in phone.press("3971").text


def test_wrong_pin(phone, account, django_assert_max_num_queries):
    phone.caller = "+12025009999"
    phone.dial()
    phone.press("123456")
    # Counted first: the call; the account, locked; its count. Then the step: the call, locked;
    # the account, locked; a lock?; the service-wide failure mark, the failures of the last
    # minute, is a spray on?; the call.
    with django_assert_max_num_queries(PIN_SAVEPOINTS + 3 + 6):
        assert "not correct" in phone.press("1357").text


@pytest.mark.parametrize("keys, budget", [("1", 3), ("3", 2)], ids=["to balance", "repeat"])
def test_menu(signed_in, django_assert_max_num_queries, keys, budget):
    # The call with its account in one query, then its update where it was
    # read (UPDATE ... WHERE prompt_number = n): no transaction, 2 round trips.
    # The balance adds one: the card money still held (on the card deposits' account index) and the week's
    # last card deposit, which it names when none is held, asked in one statement.
    with django_assert_max_num_queries(budget):
        signed_in.press(keys)


def test_balance_again(signed_in, django_assert_max_num_queries):
    signed_in.press("1")
    with django_assert_max_num_queries(3):
        assert "Your balance is" in signed_in.press("1").text


@pytest.mark.parametrize(
    "before, keys, budget",
    [
        (["2"], "25", 4),  # amount: the balance already loaded, the card money held, and what was sent today
        (["2", "25"], "246810", 3),  # recipient: and the recipient
        # Cancel: no transaction; only the key that sends holds the call locked.
        (["2", "25", "246810"], "2", 2),
        # Confirm: the account locked, the key checked, the recipient, the card money held, what was
        # sent today, the transfer, its ledger entry, the debit, a free code checked and stored.
        (["2", "25", "246810"], "1", SAVEPOINTS + 2 + 10 + SAVEPOINTS),
        (["2", "25", "246810", "1"], "1", 2),  # hear the code again
    ],
    ids=["amount", "recipient", "cancel", "confirm", "code again"],
)
def test_send_money(signed_in, recipient, django_assert_max_num_queries, before, keys, budget):
    for earlier in before:
        signed_in.press(earlier)
    with django_assert_max_num_queries(budget):
        signed_in.press(keys)


def test_registration_steps(phone, django_assert_max_num_queries):
    phone.caller = "+12027770000"
    phone.dial()
    with django_assert_max_num_queries(2):
        phone.press("#")
    with django_assert_max_num_queries(3):
        phone.press("654321")  # is the member ID taken?
    with django_assert_max_num_queries(2):
        phone.press("4682")
    # Is the number shared or taken? The account, inserted ON CONFLICT DO
    # NOTHING, and read back; a free code checked and stored.
    with django_assert_max_num_queries(SAVEPOINTS + 2 + 6 + SAVEPOINTS):
        phone.press("4682")


def test_fallback_and_status(phone, django_assert_max_num_queries, django_assert_num_queries):
    with django_assert_max_num_queries(0):
        phone.post("/twilio/fallback")
    # A call we know ends in one statement (its DELETE); one we do not, in two (why nothing was deleted, for the log).
    phone.dial()
    with django_assert_num_queries(1):
        phone.hang_up()
    with django_assert_max_num_queries(2):
        phone.hang_up()


def test_history(signed_in, django_assert_max_num_queries):
    # The call with its account; the last five entries in one query; the call.
    with django_assert_max_num_queries(3):
        signed_in.press("4")


def test_change_pin_steps(signed_in, django_assert_max_num_queries):
    signed_in.press("5")
    # Counted first: the call; the account, locked; its count. Then the step: the call, locked;
    # the account, locked; its count taken back; the call.
    with django_assert_max_num_queries(PIN_SAVEPOINTS + 3 + 4):
        signed_in.press("3971")
    with django_assert_max_num_queries(2):
        signed_in.press("4682")  # the new PIN is hashed, nothing read
    # The call; the account, locked, and its new hash; the call.
    with django_assert_max_num_queries(SAVEPOINTS + 2 + 2 + SAVEPOINTS):
        assert "Your PIN is changed" in signed_in.press("4682").text


def test_the_deposit_line_step_by_step(make_phone, account, django_assert_max_num_queries):
    """Each deposit-line webhook's round trips, savepoints included (docs/DEPOSITS.md)."""
    phone = make_phone(caller="+12025550177")
    steps = [
        # the call inserted with its first prompt
        (lambda: phone.twiml(phone.post("/twilio/deposit")), 4),
        # the call read, then written where it was read
        (lambda: phone.press("1"), 2),
        # locked: the call; the attempt counted under the line's lock (on PostgreSQL an advisory lock, one query
        # more; the line's and the service's counts, the insert); the member
        (lambda: phone.press("123456"), 8),
        # the member, and what is left of today's limit
        (lambda: phone.press("1"), 4),
        (lambda: phone.press("25#"), 4),
        # locked: the call, the member; one payment at a time, the line's failures; the room; the pending deposit
        (lambda: phone.press("1"), 14),
        # the token taken (who charges it read first, a version 3 deposit taking the member's lock before its own;
        # then locked: the deposit); the card's limits under its lock (on PostgreSQL an advisory lock, one more
        # query) and the member's room again, charging; the credit (locked: the member, the deposit; the room, the
        # entry, its code); then the call
        (lambda: phone.pay(), 37),
        (lambda: phone.press("1"), 3),
    ]
    for step, budget in steps:
        with django_assert_max_num_queries(budget):
            step()
    assert "Thank you. 25 dollars are on the account." in phone.last.text
