"""fly.toml, the Dockerfile, gunicorn.conf.py and the settings agree with each other."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from bench.servers import free_port, production_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fly() -> dict:
    return tomllib.loads((ROOT / "fly.toml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


@pytest.fixture(autouse=True)
def metrics_directory(monkeypatch):
    """gunicorn.conf.py makes its metrics directory as it is read: here, one this fixture removes."""
    with tempfile.TemporaryDirectory(prefix="myibot-metrics-test-") as folder:
        monkeypatch.delenv("METRICS_PORT", raising=False)
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", folder)
        yield folder


def load_gunicorn_conf(monkeypatch, **env: str):
    for name in ("PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_release_command_migrates(fly):
    # Straight to PostgreSQL (DATABASE_DIRECT_URL), with the migrations' own limits: no statement limit,
    # which a long index build would pass (docs/TIME_BUDGET.md), and a minute for a lock.
    assert fly["deploy"]["release_command"] == "python manage.py migrate --database direct --noinput"


def test_the_port_agrees_everywhere(fly, dockerfile, monkeypatch):
    conf = load_gunicorn_conf(monkeypatch)
    assert conf.bind == "0.0.0.0:3001"
    assert fly["http_service"]["internal_port"] == 3001
    assert fly["env"]["PORT"] == "3001"
    assert "EXPOSE 3001" in dockerfile
    assert "PORT=3001" in dockerfile


def test_the_health_check_is_the_apps(fly, client, db):
    checks = fly["http_service"]["checks"]
    assert [check["path"] for check in checks] == ["/healthz"]
    assert checks[0]["method"] == "GET"
    # Fly's check arrives over plain HTTP with the machine's address as the host.
    assert client.get(checks[0]["path"], HTTP_HOST="172.19.5.3:3001").status_code == 200


def test_https_is_forced_and_a_machine_always_runs(fly):
    service = fly["http_service"]
    assert service["force_https"] is True
    assert service["min_machines_running"] >= 1
    assert service["auto_stop_machines"] in ("off", False)


def test_base_url_is_set_and_https(fly):
    assert re.fullmatch(r"https://[a-z0-9.-]+", fly["env"]["BASE_URL"])


def test_the_vm_is_sized(fly):
    vm = fly["vm"][0]
    assert vm["memory"] == "256mb"


def test_the_image_is_slim_non_root_and_serves_the_wsgi_app(dockerfile):
    assert re.search(r"^FROM python:3\.12-slim", dockerfile, re.M)
    assert "pip install -r requirements.txt" in dockerfile
    assert "requirements-dev" not in dockerfile
    assert "collectstatic --noinput" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert 'CMD ["gunicorn", "--config", "gunicorn.conf.py", "myibot.wsgi"]' in dockerfile


def test_the_image_leaves_the_phone_simulator_out_and_the_service_starts_without_it(tmp_path):
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert {"phone", "tests", "bench"} <= ignored, "test and bench tooling stays out of the image"
    # As in the image: no phone package to import. Settings leave the app out, the deploy checks pass,
    # and the WSGI application loads.
    script = "\n".join(
        [
            "import sys",
            "sys.modules['phone'] = None",
            "import django",
            "django.setup()",
            "from django.conf import settings",
            "from django.core.management import call_command, get_commands",
            "assert 'phone' not in settings.INSTALLED_APPS and 'call' not in get_commands()",
            "call_command('check', '--deploy', '--fail-level', 'WARNING')",
            "from myibot.wsgi import application",
        ]
    )
    env = production_env(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_gunicorn_defaults(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch)
    assert conf.workers == 2
    assert conf.timeout < 15, "below Twilio's 15 s, so a stuck worker is restarted before Twilio gives up"
    assert conf.worker_class == "gthread"


def test_gunicorn_reads_the_environment(monkeypatch):
    conf = load_gunicorn_conf(monkeypatch, PORT="8080", WEB_CONCURRENCY="3")
    assert (conf.bind, conf.workers) == ("0.0.0.0:8080", 3)


def test_fly_scrapes_the_metrics_port_which_is_not_the_public_one(fly):
    assert fly["metrics"] == {"port": 9091, "path": "/metrics"}
    assert fly["env"]["METRICS_PORT"] == str(fly["metrics"]["port"])
    assert fly["metrics"]["port"] != fly["http_service"]["internal_port"]
    # Fly's proxy opens only [http_service] ports (and [[services]], of which there are none) to the internet.
    assert "services" not in fly


def test_gunicorn_counts_in_one_directory_and_serves_from_the_master(monkeypatch, metrics_directory):
    conf = load_gunicorn_conf(monkeypatch)
    # The master imports the app after setting PROMETHEUS_MULTIPROC_DIR, and the workers inherit both.
    assert conf.preload_app is True
    assert conf.metrics_directory == metrics_directory == os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert all(callable(hook) for hook in (conf.when_ready, conf.child_exit, conf.on_exit))


def test_gunicorn_makes_its_own_metrics_directory_and_removes_it_on_exit(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    conf = load_gunicorn_conf(monkeypatch)
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made == Path(conf.metrics_directory) and made.is_dir()
    assert made.parent == Path(tempfile.gettempdir())
    (made / "counter_123.db").write_bytes(b"")
    conf.on_exit(None)
    assert not made.exists()


def test_gunicorn_empties_a_metrics_directory_it_was_given_but_keeps_it(monkeypatch, metrics_directory):
    conf = load_gunicorn_conf(monkeypatch)
    stale = Path(metrics_directory, "counter_123.db")
    stale.write_bytes(b"")
    conf.on_exit(None)
    assert not stale.exists()
    assert Path(metrics_directory).is_dir()


def test_gunicorn_makes_no_metrics_directory_when_metrics_port_is_empty(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    conf = load_gunicorn_conf(monkeypatch, METRICS_PORT="")
    assert conf.metrics_directory is None
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    arbiter = FakeArbiter(3001)
    conf.when_ready(arbiter)
    assert arbiter.said == ["metrics off: METRICS_PORT is empty"]


class FakeArbiter:
    """What when_ready reads of gunicorn's arbiter: its listeners, and its log (kept in said)."""

    def __init__(self, port: int) -> None:
        self.LISTENERS = [type("Listener", (), {"getsockname": lambda listener: ("0.0.0.0", port)})()]
        self.said: list[str] = []
        self.log = self

    def info(self, message: str, *args: object) -> None:
        self.said.append(message % args)

    error = info


def test_gunicorn_refuses_to_serve_metrics_on_a_port_it_serves_the_public_on(monkeypatch, settings):
    conf = load_gunicorn_conf(monkeypatch)
    settings.METRICS_PORT = 8080
    with pytest.raises(RuntimeError, match="METRICS_PORT 8080 is the port gunicorn serves the public on"):
        conf.when_ready(FakeArbiter(8080))


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        pytest.param("::1", marks=pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")),
    ],
)
def test_gunicorn_serves_metrics_on_metrics_address_only(monkeypatch, settings, address):
    from myibot import metrics

    conf = load_gunicorn_conf(monkeypatch)
    settings.METRICS_PORT, settings.METRICS_ADDRESS = free_port(), address
    servers = []
    serve = metrics.serve
    monkeypatch.setattr(metrics, "serve", lambda *args, **kwargs: servers.append(serve(*args, **kwargs)))
    arbiter = FakeArbiter(3001)
    conf.when_ready(arbiter)
    try:
        [server] = servers
        assert server.server_address[0] == address
        assert arbiter.said[-1].startswith(f"metrics on {address}:{settings.METRICS_PORT}, from ")
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_fly_serves_metrics_on_its_private_address(fly):
    # fly-local-6pn: the machine's private IPv6 address, which Fly's scraper reaches and the internet does not.
    assert fly["env"]["METRICS_ADDRESS"] == "fly-local-6pn"


def test_the_master_freezes_what_it_loaded_before_each_fork(monkeypatch):
    """Frozen objects are never scanned by a worker's collector, so their pages stay shared (PERFORMANCE.md)."""
    import gc

    conf = load_gunicorn_conf(monkeypatch)
    try:
        conf.pre_fork(None, None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_image_make_serve_and_the_benchmark_run_with_the_same_malloc_tunables(dockerfile):
    from bench.servers import production_env

    tunables = "glibc.malloc.hugetlb=1"
    assert f"GLIBC_TUNABLES={tunables}" in dockerfile
    assert f"GLIBC_TUNABLES:-{tunables}" in (ROOT / "Makefile").read_text()
    assert production_env("sqlite:///x")["GLIBC_TUNABLES"] == tunables
