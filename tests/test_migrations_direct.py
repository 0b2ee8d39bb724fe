"""The release command migrates straight to PostgreSQL (migrate --database direct), as Fly runs it behind
PgBouncer: no migration may reach the pooled database meanwhile, where it would wait behind the migration's
own locks with no time limit yet."""

from __future__ import annotations

import os
import subprocess
import sys

from django.db import connection

from bench.servers import ROOT, fresh_database, same_database
from tests.conftest import postgres_only


@postgres_only("migrations on a second road to the same PostgreSQL database")
def test_every_migration_runs_on_the_direct_database_alone():
    with fresh_database("postgres") as url:
        # The pooled URL leads nowhere: any query sent there fails at once instead of passing unseen.
        nowhere = same_database("postgres://postgres@127.0.0.1:1/x", url)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))},
            "DEBUG": "false",
            "SECRET_KEY": "direct-" + "k" * 40,
            "TWILIO_AUTH_TOKEN": "t",
            "BASE_URL": "https://myibot.fly.dev",
            "PIN_PEPPER": "p",
            "DATABASE_URL": nowhere,
            "DATABASE_DIRECT_URL": url,
            "DATABASE_POOLER": "transaction",
            "DB_CONNECT_TIMEOUT": "2",
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--database", "direct", "--noinput"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Applying accounts.0014_database_role_time_limits... OK" in result.stdout
        assert connection.vendor == "postgresql"
