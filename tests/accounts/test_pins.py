from __future__ import annotations

import fcntl
import itertools
import multiprocessing
import os

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import VerifyMismatchError
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password

from accounts import errors, identity, pins
from accounts.models import Account

pytestmark = pytest.mark.django_db


def test_a_stored_hash_is_argon2id_at_owasps_minimum():
    stored = pins.hash_pin("4682")
    algorithm, argon2_hash = stored.split("$", 1)
    assert algorithm == "argon2id"
    parameters = extract_parameters("$" + argon2_hash)
    assert parameters.type is Type.ID
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)


def test_a_stored_hash_does_not_verify_the_bare_pin_with_plain_argon2():
    stored = pins.hash_pin("4682")
    argon2_hash = "$" + stored.split("$", 1)[1]
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(argon2_hash, "4682")
    assert pins.pin_matches("4682", stored)


def test_a_stored_hash_does_not_verify_with_another_pepper(settings):
    stored = pins.hash_pin("4682")
    settings.PIN_PEPPER = "another-pepper"
    assert not pins.pin_matches("4682", stored)


def test_two_hashes_of_one_pin_differ():
    assert pins.hash_pin("4682") != pins.hash_pin("4682")


def sign_in(account: Account, pin: str) -> Account:
    return identity.account_sign_in(pin=pin, attempt=identity.pin_attempt_count(member_id=account.member_id))


def test_a_hash_made_with_djangos_default_argon2_verifies_and_is_upgraded(account):
    old = Argon2PasswordHasher().encode(pins._peppered("3971"), Argon2PasswordHasher().salt())
    Account.objects.filter(pk=account.pk).update(pin_hash=old)
    assert old.startswith("argon2$")

    sign_in(account, "3971")
    account.refresh_from_db()
    assert account.pin_hash.startswith("argon2id$")
    assert extract_parameters("$" + account.pin_hash.split("$", 1)[1]).memory_cost == 19456
    assert sign_in(account, "3971") == account


def test_a_wrong_pin_does_not_upgrade_an_old_hash(account):
    old = make_password(pins._peppered("3971"), hasher="argon2")
    Account.objects.filter(pk=account.pk).update(pin_hash=old)
    with pytest.raises(errors.WrongPin):
        sign_in(account, "1357")
    account.refresh_from_db()
    assert account.pin_hash == old


def test_the_weak_pin_rules_refuse_repeats_runs_years_steps_pairs_and_common_pins():
    refused = {"".join(p) for p in itertools.product("0123456789", repeat=4) if pins.pin_weakness("".join(p))}
    # DataGenetics' top 20, years 1950-2029, equal steps, pairs, three of a kind, keypad shapes.
    assert {
        "1234",
        "1111",
        "0000",
        "1212",
        "7777",
        "1004",
        "2000",
        "4444",
        "2222",
        "6969",
        "9999",
        "3333",
        "5555",
        "6666",
        "1122",
        "1313",
        "8888",
        "4321",
        "2001",
        "1010",
    } <= refused
    assert {
        "1950",
        "1984",
        "2029",
        "2468",
        "1357",
        "8642",
        "0369",
        "9630",
        "0007",
        "1000",
        "7770",
        "3344",
        "2580",
        "0852",
        "5683",
    } <= refused
    assert not {"3971", "4682", "1949", "2030", "5927", "8153"} & refused
    # Most PINs stay available: the rules refuse about 4 in 100.
    assert 300 < len(refused) < 500


@pytest.mark.parametrize(
    "pin, reason",
    [
        ("7777", "one digit four times"),
        ("6789", "run in order"),
        ("2468", "equal steps"),
        ("1987", "a year"),
        ("1122", "a pair"),
        ("6969", "a pair"),
        ("0007", "three times in a row"),
        ("2580", "most common"),
    ],
)
def test_each_weak_pin_has_its_reason(pin, reason):
    assert reason in pins.pin_weakness(pin)


# One Argon2 check at a time in an instance (pins._Argon2Turn) --------------------------------------------


def _child_holding_the_turn(lock_file: str, holding, release) -> None:
    """A worker of the same instance, in the middle of a check."""
    os.environ["ARGON2_LOCK_FILE"] = lock_file
    with pins._Argon2Turn():
        holding.set()
        release.wait(10)


@pytest.fixture
def instance_turns(tmp_path, monkeypatch) -> str:
    lock_file = str(tmp_path / "argon2.lock")
    monkeypatch.setenv("ARGON2_LOCK_FILE", lock_file)
    return lock_file


def test_workers_of_one_instance_take_turns_at_argon2(instance_turns):
    forked = multiprocessing.get_context("fork")
    holding, release = forked.Event(), forked.Event()
    worker = forked.Process(target=_child_holding_the_turn, args=(instance_turns, holding, release))
    worker.start()
    try:
        assert holding.wait(10)
        with open(instance_turns, "ab") as ours, pytest.raises(BlockingIOError):
            fcntl.flock(ours, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the other worker's turn
        release.set()
        worker.join(10)
        # Then ours: now another worker would wait.
        with pins._Argon2Turn(), open(instance_turns, "ab") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        release.set()
        worker.join(10)


def test_a_worker_that_dies_holding_the_turn_gives_it_up(instance_turns):
    forked = multiprocessing.get_context("fork")
    holding, release = forked.Event(), forked.Event()
    worker = forked.Process(target=_child_holding_the_turn, args=(instance_turns, holding, release))
    worker.start()
    assert holding.wait(10)
    worker.kill()  # gunicorn's timeout, the OOM killer: no __exit__ runs
    worker.join(10)
    assert pins.pin_matches("4682", pins.hash_pin("4682"))
    with open(instance_turns, "ab") as free:
        fcntl.flock(free, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and nobody holds it after


def test_a_turn_not_had_in_time_is_taken_anyway(instance_turns, monkeypatch, caplog):
    """A worker frozen mid-check (until gunicorn's timeout ends it) never leaves a caller's PIN unchecked."""
    monkeypatch.setattr(pins._Argon2Turn, "TURN_WAIT_SECONDS", 0.01)
    with open(instance_turns, "ab") as frozen:
        fcntl.flock(frozen, fcntl.LOCK_EX)
        assert pins.pin_matches("4682", pins.hash_pin("4682"))
    assert "no turn within" in caplog.text


def test_outside_gunicorn_a_process_takes_turns_only_among_its_threads(monkeypatch):
    monkeypatch.delenv("ARGON2_LOCK_FILE", raising=False)
    turn = pins._Argon2Turn()
    with turn:
        assert not turn._holding and turn._threads.locked()
    assert not turn._threads.locked()
