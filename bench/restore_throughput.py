"""Restore speed: our restore path against a bare psql replay of the same dump.

For the benchmark clinic ``bench_<S>`` (see ``backup_throughput.py``), and for
each SQL style:

* a backup is made with ``manage.py backup_clinics`` (zstd + age, temporary storage);
* **bare psql** — the backup's plain dump, written to a file, replayed by
  ``psql -X -1 -v ON_ERROR_STOP=1 -f`` into a scratch database;
* **ours** — ``manage.py restore_backup <id> --clinic bench_<S>`` as a fresh
  process: checksum verification, decryption, decompression, the replay into an
  incoming schema, migrations check and the swap.

It prints the times and the ratio ours/bare (target ≤ 1.5 for ``copy``). Run::

    .venv/bin/python bench/restore_throughput.py               # scale 500, copy and inserts
    .venv/bin/python bench/restore_throughput.py --scale 50 --styles copy
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backup_throughput import (
    MB,
    PROJECT_ROOT,
    bench_database_name,
    clinic_ensure,
    django_setup,
    our_environment,
    own_database,
)

TARGET_RATIO = 1.5  # ours / bare, at most, in copy style


def manage(*arguments: str, environment: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def newest_backup(schema_name: str):
    from django_tenants.utils import schema_context

    from apps.backups.models import BackupRecord

    with schema_context(schema_name):
        return BackupRecord.objects.filter(status="succeeded").latest("created_at")


def dump_to_file(record, environment: dict[str, str], path: Path) -> None:
    from django.test.utils import override_settings

    from apps.backups.services import backup_open_plain

    with override_settings(
        BACKUP_LOCAL_ROOT=environment["BACKUP_LOCAL_ROOT"],
        BACKUP_AGE_IDENTITY_FILE=environment["BACKUP_AGE_IDENTITY_FILE"],
    ):
        with backup_open_plain(record=record) as chunks, open(path, "wb") as output:
            for chunk in chunks:
                output.write(chunk)


def bare_psql_seconds(dump: Path) -> float:
    import psycopg
    from psycopg import sql

    from apps.backups.engine.pg_clients import find_client, libpq_environment, libpq_params

    scratch = f"bench_restore_{os.getpid()}"
    admin = libpq_params() | {"dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        environment = libpq_environment() | {"PGDATABASE": scratch}
        from django.db import connection

        from apps.backups.engine.pg_clients import server_major

        psql = find_client("psql", min_major=server_major(connection))
        started = time.perf_counter()
        subprocess.run(
            [psql.path, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(dump)],
            env=environment,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch)))


def leftovers_drop(schema_name: str) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.backups.restore.swap import incoming_drop, restore_leftover_schemas

    for name in restore_leftover_schemas(older_than=timezone.now() + timedelta(days=1)):
        if name.startswith(f"{schema_name}_"):
            incoming_drop(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=500)
    parser.add_argument("--styles", default="copy,inserts")
    arguments = parser.parse_args()
    bench_database_name("bench_restore")
    django_setup(None)
    with own_database("bench_restore"):
        rows = measure(arguments)
    print(f"\n{'style':<8} {'plain MB':>9} {'bare psql s':>12} {'ours s':>8} {'ours/bare':>10}")
    for style, size, bare, ours in rows:
        verdict = ("ok" if ours / bare <= TARGET_RATIO else "MISS") if style == "copy" else ""
        print(f"{style:<8} {size:>9.1f} {bare:>12.2f} {ours:>8.2f} {ours / bare:>10.2f} {verdict}")
    print(f"(target for copy: ours/bare ≤ {TARGET_RATIO})")


def measure(arguments) -> list[tuple]:
    clinic_ensure(arguments.scale)
    schema_name = f"bench_{arguments.scale}"
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for style in arguments.styles.split(","):
            environment, _ = our_environment(Path(work) / style, style)
            manage("backup_clinics", schema_name, environment=environment)
            record = newest_backup(schema_name)
            dump = Path(work) / f"{style}.sql"
            dump_to_file(record, environment, dump)
            bare = bare_psql_seconds(dump)
            ours = manage("restore_backup", str(record.pk), "--clinic", schema_name, environment=environment)
            leftovers_drop(schema_name)
            rows.append((style, dump.stat().st_size / MB, bare, ours))
            print(f"{style}: bare psql {bare:.2f} s, ours {ours:.2f} s", flush=True)
    return rows


if __name__ == "__main__":
    main()
