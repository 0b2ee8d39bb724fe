"""`make run PORT=...` serves on that port, and `make call PORT=...` follows it: the port reaches the call,
and the development BASE_URL (what the server checks signatures against) follows the port on both sides."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.servers import Server, free_port, production_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The virtualenv running these tests, whose install make must take as done: a test never reinstalls it.
VENV = Path(sys.prefix)
MAKE = ["make", "--no-print-directory", "-o", str(VENV / ".installed"), f"VENV_DIR={VENV}"]


def development_env(database_url: str) -> dict[str, str]:
    """A developer's shell: no secrets, no BASE_URL, no PORT; make sets DEBUG and PORT itself."""
    unset = {"DEBUG", "SECRET_KEY", "TWILIO_AUTH_TOKEN", "BASE_URL", "PIN_PEPPER", "PORT", "ALLOWED_HOSTS"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST")) and k not in unset}
    return {**env, "DATABASE_URL": database_url, "METRICS_PORT": ""}


def dry_run(*args: str) -> list[str]:
    result = subprocess.run([*MAKE, "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_make_call_with_a_port_calls_make_runs_server_on_that_port(tmp_path):
    env = development_env(f"sqlite:///{tmp_path}/development.sqlite3")
    port = free_port()
    server = subprocess.Popen(
        [*MAKE, "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "make run stopped"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "make run did not answer"
                time.sleep(0.3)
        call = subprocess.run(
            [*MAKE, "call", f"PORT={port}", "CALL_ARGS=--keys '#,1,123456,3971,3971,2,1'"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert call.returncode == 0, call.stdout + call.stderr
    (banner,) = [line for line in call.stdout.splitlines() if line.startswith("Calling from")]
    assert f"(server http://127.0.0.1:{port};" in banner
    assert "Your balance is 0 dollars." in call.stdout


def test_make_call_without_a_port_calls_in_process_and_make_run_defaults_to_3001():
    call = dry_run("call")
    assert call[-1].startswith("DEBUG=true PORT=3001 ") and "manage.py call" in call[-1] and "--url" not in call[-1]
    assert dry_run("run")[-1].endswith("manage.py runserver 127.0.0.1:3001")
    assert dry_run("run", "PORT=3005")[-1] == (
        f"DEBUG=true PORT=3005 {VENV}/bin/python manage.py runserver 127.0.0.1:3005"
    )


def test_make_serve_listens_on_this_machine_only_with_an_https_base_url():
    serve = dry_run("serve", "PORT=3005", "LOCAL_SECRETS=/nonexistent/secrets")[-1]
    assert "export DEBUG=false PORT=3005 " in serve
    assert 'BASE_URL="${BASE_URL:-https://127.0.0.1:3005}"' in serve
    assert serve.endswith("gunicorn --config gunicorn.conf.py --bind 127.0.0.1:3005 myibot.wsgi")
    served_call = dry_run("call-served", "PORT=3005", "LOCAL_SECRETS=/nonexistent/secrets")[-1]
    assert served_call.rstrip().endswith('manage.py call --url http://127.0.0.1:3005 --base-url "$BASE_URL"')


def test_a_call_to_a_production_server_over_plain_http_says_to_sign_for_https(tmp_path):
    """Without X-Forwarded-Proto: https, the server redirects to https, which its plain-HTTP port cannot speak."""
    port = free_port()
    # As make serve has it: this machine's address, with an https BASE_URL.
    env = production_env(f"sqlite:///{tmp_path}/production.sqlite3") | {"BASE_URL": f"https://127.0.0.1:{port}"}
    server = Server(env, port=port).start()
    try:
        call = subprocess.run(
            [sys.executable, "manage.py", "call", "--url", server.url, "--keys", "1"],
            cwd=ROOT,
            env=development_env(f"sqlite:///{tmp_path}/development.sqlite3") | {"DEBUG": "true"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop()
    assert call.returncode == 1
    assert f"{server.url} redirected the call to https" in call.stderr
    assert "Give --base-url its https BASE_URL" in call.stderr and "make call-served" in call.stderr
