"""A night of automatic backups: the cron path against Celery workers.

    .venv/bin/python bench/celery_fleet.py [--clinics 1000] [--workers 1 2 4]

Runs in its own database (``BENCH_DATABASE_NAME``, default ``bench_jobs``),
created, migrated and dropped here, with its own throw-away Redis (a free
loopback port, files in a temporary folder). ``--clinics`` small clinics
(copies of an empty template clinic, ``apps.tenants.services.clinic_clone``),
all ``daily``, are due at once; each round is another day, so all are due again:

1. the cron path: ``run_scheduled_backups --inline --workers 2`` (threads in one process);
2. Celery: ``run_scheduled_backups`` with a broker enqueues one job per clinic,
   and 1, 2, 4 worker processes (``celery worker --pool solo``) back them up.

For each: clinics per second (from the start of the command until every slot
of the day is succeeded) and peak RSS per process (the cron process; each
worker's VmHWM). Prints its figures; asserts only that every clinic got
exactly one backup per day.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["TEST_DATABASE_NAME"] = os.environ.get("BENCH_DATABASE_NAME", "bench_jobs")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from apps.tenants.models import Clinic, ScheduledBackupClaim  # noqa: E402
from apps.tenants.services import clinic_clone, clinic_create, clinic_template_dump  # noqa: E402
from config.embedded_redis import redis_server_binary  # noqa: E402

START = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_start(folder: Path) -> tuple[subprocess.Popen, str]:
    import redis

    port = free_port()
    process = subprocess.Popen(
        [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder), "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            if redis.Redis.from_url(url).ping():
                return process, url
        except redis.RedisError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def clinics_create(count: int) -> None:
    started = time.perf_counter()
    template = clinic_create(schema_name="fleet_template", name="Plantilla", domain="fleet-template.bench.localhost")
    template_sql = clinic_template_dump(template=template)
    for number in range(count):
        clinic_clone(
            template=template,
            template_sql=template_sql,
            schema_name=f"fleet_{number:04d}",
            name=f"Clínica {number:04d}",
            domain=f"fleet-{number:04d}.bench.localhost",
        )
    Clinic.objects.filter(schema_name__regex=r"^fleet_\d+$").update(backup_schedule="daily")
    print(f"{count} small clinics cloned in {time.perf_counter() - started:.1f} s")


def slot_done(day: datetime) -> int:
    return ScheduledBackupClaim.objects.filter(slot=f"daily:{day:%Y-%m-%d}", status="succeeded").count()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cron_round(env: dict, day: datetime, count: int) -> tuple[float, float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduled_backups", "--inline", "--workers", "2", "--now", day.isoformat()],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0 or slot_done(day) != count:
        raise SystemExit(f"cron round failed: {slot_done(day)}/{count}: {process.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def worker_start(env: dict, name: str, log: Path) -> subprocess.Popen:
    from tests.support.celery_workers import worker_command

    process = subprocess.Popen(
        worker_command(name),
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while " ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return process


def celery_round(env: dict, day: datetime, count: int, workers: int, folder: Path) -> tuple[float, list[float]]:
    logs = [folder / f"worker-{workers}-{index}.log" for index in range(workers)]
    processes = [worker_start(env, f"bench{index}", log) for index, log in enumerate(logs)]
    try:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "manage.py", "run_scheduled_backups", "--now", day.isoformat()],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"enqueue failed: {result.stderr[-2000:]}")
        while slot_done(day) < count:
            failed = ScheduledBackupClaim.objects.filter(slot=f"daily:{day:%Y-%m-%d}", status="failed").count()
            if failed:
                raise SystemExit(f"{failed} backups failed")
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        rss = [peak_rss_mb(process.pid) for process in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clinics", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    config = setup_databases(verbosity=0, interactive=False, aliases={"default", "backup_reader"})
    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    broker, url = redis_start(folder)
    try:
        print(f"database {settings.DATABASES['default']['NAME']}, {os.cpu_count()} CPUs, broker {url}")
        clinics_create(args.clinics)
        db = settings.DATABASES["default"]
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "CELERY_"))} | {
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "BACKUP_LOCAL_ROOT": str(folder / "bucket"),
            "PSICO_DATA_DIR": str(folder / "data"),
            "LOG_LEVEL": "WARNING",
        }
        celery_env = base_env | {"CELERY_BROKER_URL": url}
        rows = []
        day = START
        elapsed, rss = cron_round(base_env, day, args.clinics)
        rows.append(("cron --workers 2 (threads)", elapsed, f"{rss:.0f} (1 process)"))
        for workers in args.workers:
            day += timedelta(days=1)
            elapsed, rss_list = celery_round(celery_env, day, args.clinics, workers, folder)
            per_worker = f"{max(rss_list):.0f} max, {sum(rss_list) / len(rss_list):.0f} mean ({workers} processes)"
            rows.append((f"Celery, {workers} worker process(es)", elapsed, per_worker))
        print(f"\n{args.clinics} clinics due at once, one backup each (local storage, zstd, no encryption):")
        print(f"{'mode':<34} {'seconds':>8} {'clinics/s':>10}  peak RSS per process (MB)")
        for mode, elapsed, rss_text in rows:
            print(f"{mode:<34} {elapsed:>8.1f} {args.clinics / elapsed:>10.2f}  {rss_text}")
        for number in range(args.clinics):
            schema = f"fleet_{number:04d}"
            with connection.cursor() as cursor:
                cursor.execute(
                    f'SELECT count(*), count(DISTINCT schedule_slot) FROM "{schema}".backups_backuprecord '  # noqa: S608
                    "WHERE status = 'succeeded'"
                )
                total, distinct = cursor.fetchone()
            assert total == distinct == len(rows), (schema, total, distinct)
        print(f"every clinic: exactly one succeeded backup per day ({len(rows)} days)")
    finally:
        broker.terminate()
        broker.wait(timeout=30)
        connection.close()
        teardown_databases(config, verbosity=0)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
