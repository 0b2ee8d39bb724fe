"""End to end: gunicorn's master adds up its workers' metrics on METRICS_PORT, and only there.

One server, two workers, recycled every 5 requests so that the counts of
workers that have ended must still add up. The simulator's phone registers,
then signs in after a wrong PIN and sends money; the scrape must count exactly
what it did. Runs on PostgreSQL when the suite does, else on a SQLite file.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from bench.servers import AUTH_TOKEN, PUBLIC_URL, Server, free_port, fresh_database, manage, production_env
from phone.call import SimulatedCall, scripted
from phone.transport import OverHttp

pytestmark = pytest.mark.e2e

RECIPIENT = "246810"
CALLER = "+12022100001"
MAX_REQUESTS = 5


@dataclass
class Running:
    server: Server
    metrics_port: int
    database_url: str

    @property
    def metrics_directory(self) -> Path:
        """Where the workers write, as the master logged it when it began serving."""
        found = re.search(r"metrics on 127\.0\.0\.1:\d+, from (\S+)", self.server.log.read_text())
        assert found, self.server.log.read_text()
        return Path(found.group(1))

    def scrape(self) -> dict[str, list]:
        """Every sample on the metrics port, by sample name."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples: dict[str, list] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append(sample)
        return samples


@pytest.fixture(scope="module")
def running():
    kind = "postgres" if connection.vendor == "postgresql" else "sqlite"
    with fresh_database(kind) as url:
        setup = production_env(url)
        manage(setup, "migrate", "--noinput")
        manage(setup, "create_recipient", RECIPIENT, "Jane", "Doe")
        metrics_port = free_port()
        env = production_env(url, WEB_CONCURRENCY="2", METRICS_PORT=str(metrics_port))
        # The directory gunicorn.conf.py makes for itself, as on Fly.
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        server = Server(env).start("--max-requests", str(MAX_REQUESTS), "--max-requests-jitter", "0")
        try:
            yield Running(server, metrics_port, url)
        finally:
            server.stop()
            server.log.unlink(missing_ok=True)


def place(running: Running, keys: list[str]) -> tuple[SimulatedCall, str]:
    call = SimulatedCall(
        base_url=PUBLIC_URL, auth_token=AUTH_TOKEN, transport=OverHttp(running.server.url), caller=CALLER
    )
    call.place(scripted(keys))
    assert all(answer.status == 200 for _, answer in call.answers)
    return call, " ".join(event.text for event in call.transcript if event.kind == "say")


def test_it_adds_up_every_workers_counts_on_the_metrics_port(running):
    register, heard = place(running, ["#", "1", "200001", "3971", "3971", "2"])
    assert "Your account is created" in heard
    code = re.search(r"registration code is: ((?:\d, ){5}\d)", heard).group(1).replace(", ", "")
    manage(production_env(running.database_url), "verify_code", code)
    manage(production_env(running.database_url), "deposit", CALLER, "100")
    # A wrong PIN, the right one, then 25 dollars to Jane Doe.
    send, heard = place(running, ["1111", "3971", "2", "25", RECIPIENT, "1"])
    assert "That PIN is not correct" in heard
    assert "is submitted" in heard
    webhooks = len(register.answers) + len(send.answers)
    assert webhooks > 2 * MAX_REQUESTS, "enough requests that the workers were recycled"

    samples = running.scrape()

    def total(name: str, **labels: str) -> float:
        return sum(s.value for s in samples.get(name, []) if labels.items() <= s.labels.items())

    assert total("myibot_webhooks_total") == webhooks
    assert total("myibot_webhook_seconds_count") == webhooks
    assert total("myibot_webhook_seconds_bucket", le="+Inf") == webhooks
    assert total("myibot_webhooks_total", step="entry", outcome="started") == 2
    assert total("myibot_webhooks_total", step="entry", outcome="refused") == 1  # the wrong PIN
    assert total("myibot_webhooks_total", step="status completed", outcome="forgotten") == 2
    assert total("myibot_calls_total") == 2
    assert total("myibot_sign_ins_total") == 1
    assert total("myibot_sign_in_failures_total") == 1
    assert total("myibot_transfers_total") == 1
    assert total("myibot_transfer_cents_total") == 25_00
    assert total("myibot_locks_total") == 0
    assert total("myibot_sprays_total") == 0
    # No label carries what the caller typed or who they are.
    label_values = {value for name in samples for s in samples[name] for value in s.labels.values()}
    assert not {value for value in label_values if re.search(r"\d{4}", value)}, label_values

    # Written by more workers than ever ran at once: recycled workers' counts were kept.
    pids = Counter(int(path.stem.rsplit("_", 1)[1]) for path in running.metrics_directory.glob("*.db"))
    workers = set(pids) - {running.server.process.pid}
    assert len(workers) >= 3, pids


def test_it_serves_no_metrics_on_the_public_port(running):
    # As Fly's proxy forwards a request from the internet.
    request = urllib.request.Request(
        running.server.url + "/metrics",
        headers={"Host": PUBLIC_URL.removeprefix("https://"), "X-Forwarded-Proto": "https"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 404
    assert b"myibot_" not in refused.value.read()


def test_it_leaves_no_files_behind_when_it_stops(running):
    directory = running.metrics_directory
    assert directory.is_dir()
    running.server.stop()
    assert not directory.exists()
