"""End to end: a hundred callers on bad lines press random keys against two real servers.

In a module of its own, so in a database of its own: the wrong PINs it presses
set off the sign-in spray alarm, which rightly closes PIN-only entry for every
caller for a while, and no other test should hear that.
"""

from __future__ import annotations

import itertools
import random
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.servers import AUTH_TOKEN, PUBLIC_URL, manage, production_env
from phone.call import Prompt, SimulatedCall
from tests.e2e.calls import FUNDED, Checked, place
from tests.e2e.conftest import RECIPIENT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def funded(two_servers, database_url):
    _call, heard = place(two_servers, ["#", "1", "200001", "3971", "3971", "2"], caller=FUNDED)
    assert "Your account is created" in heard
    code = re.search(r"registration code is: ((?:\d, ){5}\d)", heard).group(1).replace(", ", "")
    manage(production_env(database_url), "verify_code", code)
    manage(production_env(database_url), "deposit", FUNDED, "100")
    return FUNDED


RIGHT_ANSWERS = [
    ("enter your 4-digit PIN", ["3971", "#"]),
    ("To create an account", None),  # six random digits
    ("enter your 6-digit member ID", ["200001", "200001", "#"]),  # the funded caller's member ID
    ("To create a new account, press 1", ["1", "2", "0"]),
    ("To enter your PIN, press 1", ["1", "2", "3"]),
    ("create a 4-digit PIN", ["4682"]),
    ("same PIN again", ["4682"]),
    ("To hear the code again", ["1", "2"]),
    ("Main menu", ["1", "2", "3", "0", "9"]),
    ("Your balance is", ["1", "2", "*"]),
    ("whole dollars", ["1", "5", "25", "500"]),
    ("6-digit code of the person", [RECIPIENT]),
    ("To confirm, press 1", ["1", "2"]),
]


def random_keys(rng: random.Random):
    """A caller on a bad line: the right keys half the time, else garbage, long runs, * and #, or silence."""

    def press(prompt: Prompt) -> str | None:
        roll = rng.random()
        if roll < 0.02:
            return None  # the caller hangs up
        if roll < 0.55:
            for words, answers in RIGHT_ANSWERS:
                if words in prompt.heard:
                    return rng.choice(answers) if answers else f"{rng.randrange(10**6):06d}"
        if roll < 0.70:
            return ""
        if roll < 0.80:
            return "".join(rng.choice("0123456789*#") for _ in range(rng.randint(20, 300)))
        return "".join(rng.choice("0123456789*#") for _ in range(rng.randint(1, 7)))

    return press


def test_a_hundred_calls_pressing_random_keys_never_break(two_servers, funded):
    rng = random.Random(20261123)
    callers = [FUNDED, "withheld"] + [f"+120230{n:05d}" for n in range(100)]
    jobs = [(random.Random(rng.random()), rng.choice(callers)) for _ in range(100)]

    def one_call(job) -> int:
        call_rng, caller = job
        call = SimulatedCall(
            base_url=PUBLIC_URL,
            auth_token=AUTH_TOKEN,
            transport=Checked(two_servers),
            caller="anonymous" if caller == "withheld" else caller,
        )
        press, counter = random_keys(call_rng), itertools.count()
        # A caller who never hangs up still stops after 40 prompts.
        call.place(lambda prompt: None if next(counter) >= 40 else press(prompt))
        return call

    with ThreadPoolExecutor(max_workers=4) as pool:
        calls = list(pool.map(one_call, jobs))
    assert len(calls) == 100
    heard = [" ".join(event.text for event in call.transcript if event.kind == "say") for call in calls]
    # The keys reached deep into the call, not only the entry prompt.
    assert sum("Main menu" in text for text in heard) >= 5
    assert sum(len(call.answers) for call in calls) > 500
