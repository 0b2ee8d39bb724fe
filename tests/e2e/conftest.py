"""What every end-to-end module shares: a fresh database of the suite's kind, per module."""

from __future__ import annotations

import pytest
from django.db import connection

from bench.servers import Server, fresh_database, manage, production_env

RECIPIENT = "246810"


@pytest.fixture(scope="module")
def database_url():
    kind = "postgres" if connection.vendor == "postgresql" else "sqlite"
    with fresh_database(kind) as url:
        env = production_env(url)
        manage(env, "migrate", "--noinput")
        manage(env, "create_recipient", RECIPIENT, "Jane", "Doe")
        yield url


# Two servers share one database, as two Fly machines do.
@pytest.fixture(scope="module")
def two_servers(database_url):
    servers = [Server(production_env(database_url)).start(), Server(production_env(database_url)).start()]
    yield servers
    for server in servers:
        server.stop()
