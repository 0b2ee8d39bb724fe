"""An evening on the phones: `make bench BENCH_ARGS="--evening --instances 3"` (docs/PERFORMANCE.md).

Several instances of the app, each gunicorn as shipped (gunicorn.conf.py), share one PostgreSQL
database through Debian's PgBouncer in transaction mode, as Fly machines share Fly Managed
Postgres. Hundreds of callers with a person's think time call in, round-robin across the
instances as Fly's proxy spreads them: members sign in with their PIN and hear their balance
twice; families call the deposit line and pay by card, charged through a stand-in for Stripe's
API on this machine (phone/processor.py behind an HTTP server: the real `stripe` library, real
HTTP). It reports webhooks per second, p50 and p99 as the callers saw them and as the servers'
own log lines timed them, errors, the peak number of database connections, the app's CPU
milliseconds per call, each instance's peak memory (proportional set size: shared pages split),
and checks the money at the end: every balance equals its ledger, and every card deposit the
callers heard credited is in it once.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from bench.servers import (
    AUTH_TOKEN,
    PUBLIC_URL,
    ROOT,
    Server,
    free_port,
    fresh_database,
    manage,
    memory_kb,
    production_env,
    same_database,
)
from phone.call import DEPOSIT_PATH, SimulatedCall, scripted
from phone.transport import Answer, OverHttp, Transport

PIN = "4682"
MEMBER_WALK = [PIN, "1", "1", "2"]  # sign in, the balance, again, the main menu; then the caller hangs up
CARD_STEPS = ["4242424242424242#", "1230", "123", "20001"]
DEPOSIT_NUMBER = "+12025000100"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Timed(Transport):
    """Times each webhook as the caller saw it, one instance at a time (Fly's proxy picks one)."""

    def __init__(self, servers: list[Server]) -> None:
        self.http = [OverHttp(server.url) for server in servers]
        self.lock = threading.Lock()
        self.milliseconds: list[float] = []
        self.pin_milliseconds: list[float] = []
        self.errors = 0
        self.turn = 0

    def post(self, signed_url: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        with self.lock:
            self.turn = (self.turn + 1) % len(self.http)
            http = self.http[self.turn]
        try:
            answer = http.post(signed_url, params, headers)
        except OSError:
            with self.lock:
                self.errors += 1
            raise
        pin = urlsplit(signed_url).path.endswith("/step/entry") and len(params.get("Digits", "")) == 4
        with self.lock:
            (self.pin_milliseconds if pin else self.milliseconds).append(answer.milliseconds)
            if answer.status != 200 or "temporarily unavailable" in answer.body:
                self.errors += 1
        return answer


def stripe_stand_in() -> tuple[ThreadingHTTPServer, str]:
    """Stripe's API on this machine, over HTTP, answered by the simulator's test processor."""
    from phone.processor import TestProcessor

    processor = TestProcessor()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else None
            text, status, headers = processor.request(
                self.command.lower(), "https://api.stripe.com" + self.path, dict(self.headers), body
            )
            payload = text.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def cpu_ms(pids: list[int]) -> float:
    """User and system CPU time of these processes so far, in milliseconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total * 1000 / CLOCK_TICKS


def run(args) -> None:
    members, families = args.callers, max(args.callers // 4, 1)
    print(
        f"MyiBot evening: {args.instances} instance(s) through PgBouncer (transaction mode), {members} members "
        f"and {families} families calling for {args.duration:.0f} s, think {args.think} s, {os.cpu_count()} CPUs"
    )
    stand_in, stripe_url = stripe_stand_in()
    pooler_port = free_port()
    subprocess.run([str(ROOT / ".ci" / "pgbouncer"), "start", "transaction", str(pooler_port)], check=True)
    try:
        with fresh_database("postgres") as direct_url:
            pooled_url = (
                urlsplit(direct_url)
                ._replace(netloc=f"{urlsplit(direct_url).netloc.split('@')[0]}@127.0.0.1:{pooler_port}")
                .geturl()
            )
            env = production_env(
                pooled_url,
                DATABASE_DIRECT_URL=direct_url,
                DATABASE_POOLER="transaction",
                LOG_LEVEL="INFO",
                STRIPE_SECRET_KEY="sk_test_bench_evening",
                STRIPE_WEBHOOK_SECRET="whsec_bench_evening",
                STRIPE_API_BASE=stripe_url,
                # One test card pays for every family: its own limits are not what is measured.
                CARD_MEMBERS_PER_WEEK="1000000",
                CARD_DAILY_LIMIT_DOLLARS="100000000",
            )
            manage(env, "migrate", "--database", "direct", "--noinput")
            manage(env, "create_recipient", "246810", "Jane", "Doe")
            manage(
                env,
                "shell",
                "-c",
                "from django.utils import timezone\nfrom accounts import pins\nfrom accounts.ledger import deposit\n"
                "from accounts.models import Account\n"
                f"pin = pins.hash_pin({PIN!r})\n"
                f"for n in range({members}):\n"
                "    a = Account.objects.create(member_id=f'{400000 + n:06d}', home_number=f'+1202401{n:04d}',"
                " pin_hash=pin, status='active', verified_at=timezone.now())\n"
                "    deposit(account=a, amount_cents=10000)",
            )
            servers = [Server(env).start() for _ in range(args.instances)]
            try:
                report = _evening(args, servers, members, families, direct_url)
            finally:
                for server in servers:
                    server.stop()
            report["server_ms"] = [
                float(ms)
                for server in servers
                for ms in re.findall(r"webhook call=\S+ step=\S+ outcome=[^=]+ ms=(\d+)", server.log.read_text())
            ]
            _money_checked(env, report)
    finally:
        subprocess.run([str(ROOT / ".ci" / "pgbouncer"), "stop", str(pooler_port)], check=False)
        stand_in.shutdown()
    _print(report, args)


def _evening(args, servers: list[Server], members: int, families: int, direct_url: str) -> dict:
    import psycopg

    timed = Timed(servers)
    peaks: dict[str, object] = {"pss": [0] * len(servers), "connections": 0}
    sampling = threading.Event()
    database = urlsplit(direct_url).path.lstrip("/")

    def sample() -> None:
        with psycopg.connect(same_database(direct_url, "/postgres"), autocommit=True) as db:
            while not sampling.is_set():
                for index, server in enumerate(servers):
                    peaks["pss"][index] = max(peaks["pss"][index], memory_kb(server.pids())[1])
                count = db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]).fetchone()[0]
                peaks["connections"] = max(peaks["connections"], count)
                time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stop_at = time.monotonic() + args.duration
    calls = defaultdict(int)
    credited = [0]

    def thinking(rng: random.Random, keys):
        """The keys, each after a person's pause: think +/- 50%."""

        def answer(prompt):
            time.sleep(args.think * rng.uniform(0.5, 1.5))
            return keys(prompt)

        return answer

    def member(n: int) -> None:
        rng = random.Random(n)
        time.sleep(rng.uniform(0, args.think * 4))  # callers do not all dial at once
        while time.monotonic() < stop_at:
            SimulatedCall(PUBLIC_URL, AUTH_TOKEN, timed, caller=f"+1202401{n:04d}").place(
                thinking(rng, scripted(MEMBER_WALK))
            )
            calls["member"] += 1
            time.sleep(rng.uniform(0, args.think * 4))

    def family(n: int) -> None:
        rng = random.Random(-n - 1)
        time.sleep(rng.uniform(0, args.think * 4))
        while time.monotonic() < stop_at:
            target = f"{400000 + rng.randrange(members):06d}"
            keys = scripted([target, "1", "5#", "1", *CARD_STEPS])  # then hangs up, the code heard
            heard: list[str] = []

            def hear(event, heard=heard) -> None:
                if event.kind == "say":
                    heard.append(event.text)

            call = SimulatedCall(
                PUBLIC_URL,
                AUTH_TOKEN,
                timed,
                caller=f"+1303{n:07d}",
                entry_path=DEPOSIT_PATH,
                called=DEPOSIT_NUMBER,
                lang="en",
                on_event=hear,
            )
            call.place(thinking(rng, keys))
            calls["family"] += 1
            if any("dollars are on the account" in text for text in heard):
                with timed.lock:
                    credited[0] += 1
            time.sleep(rng.uniform(0, args.think * 4))

    cpu_before = sum(cpu_ms(server.pids()) for server in servers)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=members + families) as pool:
        jobs = [pool.submit(member, n) for n in range(members)] + [pool.submit(family, n) for n in range(families)]
        for job in jobs:
            job.result()
    elapsed = time.monotonic() - started
    cpu_after = sum(cpu_ms(server.pids()) for server in servers)
    sampling.set()
    sampler.join()
    return {
        "elapsed": elapsed,
        "calls": dict(calls),
        "credited": credited[0],
        "client_ms": timed.milliseconds,
        "pin_ms": timed.pin_milliseconds,
        "errors": timed.errors,
        "pss_mib": [kb / 1024 for kb in peaks["pss"]],
        "connections": peaks["connections"],
        "cpu_ms_per_call": (cpu_after - cpu_before) / max(sum(calls.values()), 1),
    }


def _money_checked(env: dict[str, str], report: dict) -> None:
    out = manage(
        env,
        "shell",
        "-c",
        "import json\nfrom django.db.models import Sum\nfrom accounts.models import Account, LedgerEntry\n"
        "from payments.models import CardDeposit\n"
        "ledger = dict(LedgerEntry.objects.values_list('account_id').annotate(s=Sum('amount_cents')))\n"
        "wrong = [a.pk for a in Account.objects.all() if a.balance_cents != ledger.get(a.pk, 0)]\n"
        "paid = CardDeposit.objects.filter(status='paid')\n"
        "print(json.dumps({'wrong': wrong, 'paid': paid.count(), 'entries': LedgerEntry.objects.filter(kind='card')"
        ".count(), 'open': CardDeposit.objects.exclude(status__in=['paid', 'not_charged']).count()}))",
    )
    report["money"] = json.loads(out.strip().splitlines()[-1])


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def _print(report: dict, args) -> None:
    client, server, pin = report["client_ms"], report["server_ms"], report["pin_ms"]
    total = len(client) + len(pin)
    money = report["money"]
    exact = not money["wrong"] and money["paid"] == money["entries"] == report["credited"]
    print(
        f"\n{sum(report['calls'].values())} calls ({report['calls'].get('member', 0)} members', "
        f"{report['calls'].get('family', 0)} deposit line) in {report['elapsed']:.0f} s: "
        f"{total / report['elapsed']:.1f} webhooks/s"
    )
    print(
        f"webhooks as callers saw them: p50 {_pct(client, 0.5):.1f} ms, p99 {_pct(client, 0.99):.1f} ms; "
        f"PIN step p50 {_pct(pin, 0.5):.1f} ms, p99 {_pct(pin, 0.99):.1f} ms"
    )
    print(
        f"as the servers' own log lines timed them: p50 {statistics.median(server) if server else float('nan'):.0f} ms, "
        f"p99 {_pct(server, 0.99):.0f} ms ({len(server)} lines)"
    )
    print(f"errors: {report['errors']}")
    print(f"peak database connections: {report['connections']} (PgBouncer's server connections to this database)")
    print(f"app CPU per call: {report['cpu_ms_per_call']:.0f} ms (gunicorn masters and workers, user + system)")
    print(
        "peak memory per instance (PSS, master + workers): "
        + ", ".join(f"{mib:.0f} MiB" for mib in report["pss_mib"])
        + " (target <= 150 MiB)"
    )
    print(
        f"money: {'exact' if exact else 'NOT EXACT'}: {money['paid']} card deposits paid, {money['entries']} card "
        f"ledger entries, {report['credited']} heard credited, {money['open']} left open, "
        f"{len(money['wrong'])} balances unlike their ledger"
    )
