"""Scheduler benchmark: choosing due clinics among 10,000, and a round of 200 clinics.

    .venv/bin/python bench/scheduler_due.py [--clinics 10000] [--round 200]

Runs in its own database (``BENCH_DATABASE_NAME``, default ``bench_scheduler``),
created, migrated and dropped here, on the configured server (embedded unless
DATABASE_URL is set). Prints its figures; asserts nothing about time.

1. 10,000 clinics in the public table (rows only, no schemas: ``bulk_create``
   skips schema creation), mixed schedules and time zones: time and number of
   queries of ``backups_due``.
2. 200 small clinics (copies of an empty template clinic), all ``daily``: one
   ``run_scheduled_backups --workers 1`` round, then the next day's round with
   ``--workers 2`` (real processes, real pg_dump, local storage).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["TEST_DATABASE_NAME"] = os.environ.get("BENCH_DATABASE_NAME", "bench_scheduler")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_databases, teardown_databases  # noqa: E402

from apps.backups.monitoring.status import backup_status_list  # noqa: E402
from apps.backups.scheduling.selectors import backups_due  # noqa: E402
from apps.tenants.models import Clinic  # noqa: E402
from apps.tenants.services import clinic_clone, clinic_create, clinic_template_dump  # noqa: E402

NOW = datetime(2025, 11, 30, 12, 0, tzinfo=UTC)  # a Sunday
ZONES = ["UTC", "America/Mexico_City", "America/Bogota", "Europe/Madrid", "Asia/Tokyo", "Pacific/Auckland"]
SCHEDULES = ["disabled", "daily", "daily", "daily", "weekly", "scheduled"]


def own_queries(context: CaptureQueriesContext) -> int:
    """Queries, without the ``SET search_path`` django-tenants sends before each."""
    return len([q for q in context.captured_queries if not q["sql"].startswith("SET search_path")])


def due_selection(count: int) -> None:
    rng = random.Random(6)
    clinics = []
    for number in range(count):
        schedule = rng.choice(SCHEDULES)
        clinics.append(
            Clinic(
                schema_name=f"bench_{number:05d}",
                name=f"Clínica {number}",
                time_zone=rng.choice(ZONES),
                backup_schedule=schedule,
                last_backup_at=NOW - timedelta(hours=rng.randint(1, 200)) if rng.random() < 0.9 else None,
                next_scheduled_backup=NOW + timedelta(hours=rng.randint(-48, 48)) if schedule == "scheduled" else None,
                backup_retry_at=NOW + timedelta(minutes=5) if rng.random() < 0.02 else None,
            )
        )
    started = time.perf_counter()
    Clinic.objects.bulk_create(clinics, batch_size=2000)
    print(f"{count} clinics inserted in {time.perf_counter() - started:.2f} s")
    backups_due(now=NOW)  # warm up (connection, zoneinfo cache)
    timings, query_counts, due = [], [], []
    for _ in range(5):
        with CaptureQueriesContext(connection) as context:
            started = time.perf_counter()
            due = backups_due(now=NOW)
            timings.append(time.perf_counter() - started)
        query_counts.append(own_queries(context))
    print(
        f"backups_due over {count} clinics: median {statistics.median(timings) * 1000:.0f} ms, "
        f"max {max(timings) * 1000:.0f} ms, queries {sorted(set(query_counts))}, due {len(due)}"
    )
    Clinic.objects.filter(schema_name__startswith="bench_").delete()


def run_round(env: dict, now: datetime, workers: int, expected: int) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", "run_scheduled_backups", "--now", now.isoformat(), "--workers", str(workers)],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    done = result.stdout.count("Subido exitosamente")
    if result.returncode != 0 or done != expected:
        print(result.stdout[-2000:], result.stderr[-2000:])
        raise SystemExit(f"round failed: {done}/{expected} backups, exit {result.returncode}")
    return elapsed


def backup_round(count: int, bucket: Path) -> None:
    started = time.perf_counter()
    template = clinic_create(schema_name="round_template", name="Plantilla", domain="round-template.bench.localhost")
    template_sql = clinic_template_dump(template=template)
    for number in range(count):
        clinic_clone(
            template=template,
            template_sql=template_sql,
            schema_name=f"round_{number:03d}",
            name=f"Clínica de ronda {number:03d}",
            domain=f"round-{number:03d}.bench.localhost",
        )
    Clinic.objects.filter(schema_name__regex=r"^round_\d+$").update(backup_schedule="daily")
    print(f"{count} small clinics cloned in {time.perf_counter() - started:.1f} s")

    db = settings.DATABASES["default"]
    env = os.environ | {
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "BACKUP_LOCAL_ROOT": str(bucket),
        "PSICO_DATA_DIR": str(bucket.parent / "data"),
        "LOG_LEVEL": "WARNING",
    }
    one = run_round(env, NOW, 1, count)
    two = run_round(env, NOW + timedelta(days=1), 2, count)
    print(f"round of {count} clinics: --workers 1 {one:.1f} s ({one / count * 1000:.0f} ms/clinic)")
    print(f"round of {count} clinics: --workers 2 {two:.1f} s ({two / count * 1000:.0f} ms/clinic), x{one / two:.2f}")

    with CaptureQueriesContext(connection) as context:
        started = time.perf_counter()
        statuses = backup_status_list(now=NOW + timedelta(days=1))
        elapsed = time.perf_counter() - started
    print(f"backup_status over {len(statuses)} clinics: {elapsed * 1000:.0f} ms, {own_queries(context)} queries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clinics", type=int, default=10_000)
    parser.add_argument("--round", type=int, default=200)
    args = parser.parse_args()
    config = setup_databases(verbosity=0, interactive=False, aliases={"default", "backup_reader"})
    try:
        print(f"database {settings.DATABASES['default']['NAME']}, {os.cpu_count()} CPUs")
        due_selection(args.clinics)
        if args.round:
            with tempfile.TemporaryDirectory() as folder:
                backup_round(args.round, Path(folder) / "bucket")
    finally:
        connection.close()
        teardown_databases(config, verbosity=0)


if __name__ == "__main__":
    main()
