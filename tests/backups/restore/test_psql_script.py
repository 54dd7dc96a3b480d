"""Our closing lines run with every psql this machine could pick for the server.

psql 15 stops reading its script, silently and with exit code 0, at an empty
statement (a line starting with ";") right after a COPY block; our closing
``COMMIT`` then never ran and a restore whose dump ended with a COPY block
failed. Each psql new enough for the server replays a script that ends that way.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from django.db import connection

from apps.backups.engine.pg_clients import PgClient, candidate_dirs, client_versions, libpq_params, server_major
from apps.backups.engine.psql import psql_run

SCHEMA = "psql_script_check"


def usable_psql_clients() -> list[PgClient]:
    paths = [str(folder / "psql") for folder in candidate_dirs() if (folder / "psql").is_file()]
    unique = {str(Path(path).resolve()): path for path in paths}
    versions = client_versions(list(unique.values()))
    minimum = server_major(connection)
    return [
        PgClient(path=path, version=version)
        for path, version in versions.items()
        if version and int(version.split(".")[0]) >= minimum
    ]


@pytest.fixture
def scratch_schema():
    with psycopg.connect(**libpq_params(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    yield SCHEMA
    with psycopg.connect(**libpq_params(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


# Not transaction=True: its teardown flushes every table, the session's clinics and
# domains with them, and every later test that uses them failed (404 for their domains).
@pytest.mark.django_db
def test_a_script_ending_in_a_copy_block_commits_with_every_usable_psql(scratch_schema):
    clients = usable_psql_clients()
    assert clients, "no psql for this server"
    for client in clients:
        chunks = [
            f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;\nCREATE SCHEMA {SCHEMA};\n".encode(),
            f"CREATE TABLE {SCHEMA}.rows (n integer, t text);\n".encode(),
            f"COPY {SCHEMA}.rows (n, t) FROM stdin;\n1\tuno\n2\tdos\n\\.\n\n".encode(),
        ]
        psql_run(client=client, chunks=chunks)
        with psycopg.connect(**libpq_params()) as conn:
            rows = conn.execute(f"SELECT n, t FROM {SCHEMA}.rows ORDER BY n").fetchall()  # noqa: S608
        assert rows == [(1, "uno"), (2, "dos")], client.describe()
