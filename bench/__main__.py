"""Load benchmark: `python -m bench` (or `make bench`). See docs/PERFORMANCE.md.

Starts gunicorn with production settings and gunicorn.conf.py on a fresh
database of the configured kind (DATABASE_URL, PostgreSQL for the reported
figures), registers N callers, then runs N concurrent simulated callers over
real HTTP for a set time, each signing in and walking the menus (balance,
repeat, send money, cancel). Prints latency percentiles and webhooks per
second for the PIN step and for all other steps, errors, peak memory (RSS and PSS of
the master and its workers), and the same latencies for signed requests to
/twilio/fallback under the same concurrency: the floor, a request that does
no database work.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import AUTH_TOKEN, PUBLIC_URL, Server, fresh_database, manage, memory_kb, production_env
from phone.call import SimulatedCall, scripted
from phone.transport import Answer, OverHttp, Transport

PIN = "4682"
RECIPIENT = "246810"
# Sign in, balance, hear it again, menu, repeat the menu, send money, 1 dollar, recipient, cancel.
WALK = [PIN, "1", "1", "2", "3", "2", "1", RECIPIENT, "2"]


class Recorder(Transport):
    """Times every webhook by kind: the PIN step, the other steps, the floor."""

    def __init__(self, server: str) -> None:
        self.http = OverHttp(server)
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.by_step: dict[str, list[float]] = defaultdict(list)  # the same, per step (the URL's last part)
        self.errors: dict[str, int] = defaultdict(int)

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        path = urlsplit(signed_url).path
        kind = (
            "fallback"
            if path.endswith("/fallback")
            else "status"
            if path.endswith("/status")
            else ("pin" if path.endswith("/step/entry") and len(params.get("Digits", "")) == 4 else "other")
        )
        try:
            answer = self.http.post(signed_url, params, headers)
        except OSError:
            with self.lock:
                self.errors[kind] += 1
            raise
        with self.lock:
            self.latencies[kind].append(answer.milliseconds)
            self.by_step["PIN" if kind == "pin" else path.rsplit("/", 1)[-1]].append(answer.milliseconds)
            if answer.status != 200 or ("temporarily unavailable" in answer.body and kind != "fallback"):
                self.errors[kind] += 1
        return answer


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def argon2_check_ms(repeats: int = 20) -> dict[str, float]:
    """One PIN check with our hasher and with Django's default Argon2, measured in this process."""
    import django
    from django.conf import settings

    if not settings.configured:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myibot.settings")
        os.environ.update({k: v for k, v in production_env("sqlite:///:memory:").items() if k not in os.environ})
        django.setup()
    from django.contrib.auth.hashers import Argon2PasswordHasher

    from accounts.hashers import PinArgon2idHasher

    figures = {}
    for name, hasher in (
        ("ours (19 MiB, t=2, p=1)", PinArgon2idHasher()),
        ("Django default (100 MiB, t=2, p=8)", Argon2PasswordHasher()),
    ):
        encoded = hasher.encode("x" * 64, hasher.salt())
        started = time.perf_counter()
        for _ in range(repeats):
            hasher.verify("x" * 64, encoded)
        figures[name] = (time.perf_counter() - started) * 1000 / repeats
    return figures


def seed(database_url: str, scale: float) -> None:
    """A year of history for many accounts, written by PostgreSQL itself (generate_series): seconds, not hours."""
    import psycopg

    accounts, transfers, entries = int(100_000 * scale), int(100_000 * scale), int(1_000_000 * scale)
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("SET statement_timeout = 0")
        db.execute(
            """
            INSERT INTO accounts_account (member_id, home_number, status, language, verified_at, pin_hash,
                failed_pin_count, locked_until, lock_count, balance_cents, created)
            SELECT lpad((500000 + g)::text, 6, '0'), '+1202' || (2000000 + g)::text, 'active', 'en', now(),
                'seeded', 0, NULL, 0, 0, now() - (g %% 365) * interval '1 day'
            FROM generate_series(1, %(n)s) g""",
            {"n": accounts},
        )
        first = db.execute("SELECT min(id) FROM accounts_account WHERE pin_hash = 'seeded'").fetchone()[0]
        recipient = db.execute("SELECT id FROM accounts_recipient LIMIT 1").fetchone()[0]
        db.execute(
            """
            INSERT INTO accounts_transfer (account_id, recipient_id, amount_cents, status, idempotency_key, created, decided)
            SELECT %(first)s + (g %% %(accounts)s), %(recipient)s, 100 * (1 + g %% 50), 'settled', 'seed:' || g,
                now() - (g %% 365) * interval '1 day', now() - (g %% 365) * interval '1 day'
            FROM generate_series(1, %(n)s) g""",
            {"first": first, "accounts": accounts, "recipient": recipient, "n": transfers},
        )
        db.execute("""
            INSERT INTO accounts_ledgerentry (account_id, amount_cents, kind, transfer_id, corrects_id, created)
            SELECT account_id, -amount_cents, 'transfer', id, NULL, created FROM accounts_transfer
            WHERE idempotency_key LIKE 'seed:%%'""")
        db.execute(
            """
            INSERT INTO accounts_ledgerentry (account_id, amount_cents, kind, transfer_id, corrects_id, created)
            SELECT %(first)s + (g %% %(accounts)s), 10000, 'deposit', NULL, NULL, now() - (g %% 365) * interval '1 day'
            FROM generate_series(1, %(n)s) g""",
            {"first": first, "accounts": accounts, "n": max(entries - transfers, 0)},
        )
        # The cached balance equals the ledger, as the constraint and the services keep it.
        db.execute("""
            UPDATE accounts_account a SET balance_cents = s.total
            FROM (SELECT account_id, sum(amount_cents) AS total FROM accounts_ledgerentry GROUP BY account_id) s
            WHERE a.id = s.account_id AND a.pin_hash = 'seeded'""")
        db.execute("ANALYZE")
        counts = db.execute(
            "SELECT (SELECT count(*) FROM accounts_account), (SELECT count(*) FROM accounts_ledgerentry), "
            "(SELECT count(*) FROM accounts_transfer)"
        ).fetchone()
    print(
        f"seeded {counts[0]:,} accounts, {counts[1]:,} ledger entries, {counts[2]:,} transfers "
        f"in {time.monotonic() - started:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=24, help="concurrent callers (default 24)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of calls (default 30)")
    parser.add_argument(
        "--floor-duration",
        type=float,
        default=10,
        help="seconds of fallback requests after the calls, when saturating (default 10); paced, "
        "the floor is measured during the calls",
    )
    parser.add_argument("--workers", help="WEB_CONCURRENCY for gunicorn (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", help="GUNICORN_THREADS (default: gunicorn.conf.py's)")
    parser.add_argument("--conn-max-age", help="CONN_MAX_AGE (default: the settings')")
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds a caller waits before answering each prompt (default 0: as fast as possible)",
    )
    parser.add_argument(
        "--seed-scale",
        type=float,
        default=0.0,
        help="first fill the database (PostgreSQL) with SCALE x 100,000 accounts, 1,000,000 ledger "
        "entries and 100,000 transfers, spread over a year (default 0: empty)",
    )
    parser.add_argument(
        "--evening",
        action="store_true",
        help="an evening instead (bench/evening.py): --instances servers through PgBouncer, --callers members "
        "(and a quarter as many families paying by card), with --think seconds a prompt (default 2)",
    )
    parser.add_argument("--instances", type=int, default=1, help="with --evening: gunicorn instances (default 1)")
    args = parser.parse_args()
    if args.evening:
        from bench import evening

        if args.think == 0.0:
            args.think = 2.0
        evening.run(args)
        return

    database_kind = "postgres" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    extra = {
        name: value
        for name, value in (
            ("WEB_CONCURRENCY", args.workers),
            ("GUNICORN_THREADS", args.threads),
            ("CONN_MAX_AGE", args.conn_max_age),
        )
        if value
    }
    print(
        f"MyiBot benchmark: {args.callers} callers for {args.duration:.0f} s on {database_kind}, think {args.think} s, "
        f"{os.cpu_count()} CPUs, gunicorn.conf.py {extra or 'defaults'}"
    )

    if args.seed_scale and database_kind != "postgres":
        parser.error("--seed-scale needs DATABASE_URL=postgres://...")
    with fresh_database(database_kind) as database_url:
        env = production_env(database_url, **extra)
        manage(env, "migrate", "--noinput")
        manage(env, "create_recipient", RECIPIENT, "Jane", "Doe")
        if args.seed_scale:
            seed(database_url, args.seed_scale)
        server = Server(env).start()
        peak = [0, 0]  # RSS, PSS
        sampling = threading.Event()

        def sample_memory() -> None:
            while not sampling.is_set():
                rss, pss = memory_kb(server.pids())
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample_memory, daemon=True)
        sampler.start()
        try:
            callers = [f"+1202400{n:04d}" for n in range(args.callers)]
            setup = Recorder(server.url)
            with ThreadPoolExecutor(max_workers=min(args.callers, 8)) as pool:
                list(
                    pool.map(
                        lambda caller: SimulatedCall(PUBLIC_URL, AUTH_TOKEN, setup, caller=caller).place(
                            scripted(["#", "1", f"{callers.index(caller) + 300000:06d}", PIN, PIN, "2"])
                        ),
                        callers,
                    )
                )
            # Staff verify the registrations; each account gets money to send.
            manage(
                env,
                "shell",
                "-c",
                "from django.utils import timezone; from accounts.models import Account\n"
                "from accounts.ledger import deposit\n"
                "callers = Account.objects.filter(member_id__startswith='3')\n"
                "callers.update(status='active', verified_at=timezone.now())\n"
                "for a in callers: deposit(account=a, amount_cents=1000000)",
            )

            recorder = Recorder(server.url)
            stop_at = time.monotonic() + args.duration
            calls = [0]

            def caller_loop(caller: str) -> None:
                # Callers do not all press keys in step: each waits think +/- 50%.
                rng = random.Random(caller)
                while time.monotonic() < stop_at:
                    keys = scripted(WALK)

                    def answer(prompt, keys=keys):
                        time.sleep(args.think * rng.uniform(0.5, 1.5))
                        return keys(prompt)

                    SimulatedCall(PUBLIC_URL, AUTH_TOKEN, recorder, caller=caller).place(answer)
                    with recorder.lock:
                        calls[0] += 1

            floor = Recorder(server.url)

            def floor_loop(caller: str) -> None:
                call = SimulatedCall(PUBLIC_URL, AUTH_TOKEN, floor, caller=caller)
                rng = random.Random(caller + "floor")
                while time.monotonic() < stop_at:
                    time.sleep(args.think * rng.uniform(0.5, 1.5))
                    call.post(PUBLIC_URL + "/twilio/fallback", call.params())

            started = time.monotonic()
            if args.think:
                # Paced: the floor is measured in the same seconds as the calls, by as many
                # callers again pacing the same way, so that the machine's drift from one
                # minute to the next (a shared VM) cannot pass for a difference between them.
                with ThreadPoolExecutor(max_workers=2 * args.callers) as pool:
                    list(
                        pool.map(
                            lambda job: job[0](job[1]),
                            [(caller_loop, c) for c in callers] + [(floor_loop, c) for c in callers],
                        )
                    )
                elapsed = floor_elapsed = time.monotonic() - started
            else:
                # Saturating: the floor gets the machine to itself afterwards, under the same concurrency.
                with ThreadPoolExecutor(max_workers=args.callers) as pool:
                    list(pool.map(caller_loop, callers))
                elapsed = time.monotonic() - started
                stop_at = time.monotonic() + args.floor_duration
                floor_started = time.monotonic()
                with ThreadPoolExecutor(max_workers=args.callers) as pool:
                    list(pool.map(floor_loop, callers))
                floor_elapsed = time.monotonic() - floor_started
        finally:
            sampling.set()
            sampler.join()
            workers = len(server.pids()) - 1
            server.stop()

    print(f"\n{calls[0]} calls in {elapsed:.1f} s; {args.callers} callers\n")
    print(f"{'webhooks':<14}{'count':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'per s':>9}{'errors':>8}")
    rows = [
        ("PIN step", recorder, "pin", elapsed),
        ("other steps", recorder, "other", elapsed),
        ("fallback floor", floor, "fallback", floor_elapsed),
    ]
    for label, source, kind, seconds in rows:
        values = source.latencies[kind]
        print(
            f"{label:<14}{len(values):>8}{percentile(values, 0.50):>9.1f}{percentile(values, 0.95):>9.1f}"
            f"{percentile(values, 0.99):>9.1f}{len(values) / seconds:>9.1f}{source.errors[kind]:>8}"
        )
    print(
        "\nper step (p50 ms, count):",
        ", ".join(
            f"{step} {percentile(values, 0.5):.1f} ({len(values)})" for step, values in sorted(recorder.by_step.items())
        ),
    )
    other, fallback = recorder.latencies["other"], floor.latencies["fallback"]
    if other and fallback:
        print(
            f"\nother-step p50 / floor p50: {statistics.median(other) / statistics.median(fallback):.2f} (target <= 1.5)"
        )
    print(f"peak RSS, master + {workers} workers: {peak[0] / 1024:.0f} MB (target < 256 MB)")
    print(f"peak PSS, master + {workers} workers: {peak[1] / 1024:.0f} MiB (target <= 150 MiB)")
    print(f"errors during calls (all kinds): {sum(recorder.errors.values())}")
    for name, ms in argon2_check_ms().items():
        print(f"Argon2 check, {name}: {ms:.1f} ms")


if __name__ == "__main__":
    main()
