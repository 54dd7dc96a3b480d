"""Backup throughput: our full backup against a bare pg_dump of the same clinic.

What it measures, for each benchmark clinic (schema ``bench_<S>``, about S MB of
plain SQL, generated once with the demo data and reused between runs):

* **bare pg_dump** — the pg_dump binary our engine chooses, with the same
  arguments (SQL style included) and libpq environment, stdout to /dev/null;
* **ours** — ``backup_create`` (what the API, ``backup_clinics`` and the
  scheduler all call) in a fresh worker process, with zstd compression and age
  encryption on, storing into a temporary local folder. The worker times the
  backup itself; its parent times the whole process (Python and Django start-up
  included) and reads its peak RSS (``os.wait4``).

The headline ratio is bare pg_dump time / backup time: throughput of the backup
as it runs in the API server and the scheduler, which start once and back up
many clinics. Start-up (~0.4 s, paid once per process) is printed beside it,
with the whole-process ratio, because a one-off ``backup_clinics`` pays it.

Each measurement is repeated (alternating bare/ours); the best and the median
are reported. The script only prints figures; it asserts nothing.

Run it from the project root::

    .venv/bin/python bench/backup_throughput.py                  # scales 50 and 500, BACKUP_SQL_STYLE
    .venv/bin/python bench/backup_throughput.py --scales 5,50 --style inserts --repeats 3

Generating the 500 MB clinic takes several minutes the first time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
CHUNK = 1024 * 1024

TARGET_RATIO = 0.8  # bare_time / ours_time, at least
TARGET_PEAK_RSS_MB = 150  # our process, at most
TARGET_RSS_GROWTH_MB = 20  # peak RSS, largest minus smallest clinic, at most


@dataclass(frozen=True)
class Run:
    seconds: float  # wall time of the whole process
    peak_rss_kb: int = 0
    backup_seconds: float | None = None  # our backup_create call, timed inside the worker


@dataclass(frozen=True)
class Result:
    schema_name: str
    plain_bytes: int
    bare_runs: list[Run]
    our_runs: list[Run]

    @property
    def plain_mb(self) -> float:
        return self.plain_bytes / MB

    def bare_seconds(self, pick) -> float:
        return pick(run.seconds for run in self.bare_runs)

    def backup_seconds(self, pick) -> float:
        return pick(run.backup_seconds for run in self.our_runs)

    def process_seconds(self, pick) -> float:
        return pick(run.seconds for run in self.our_runs)

    def ratio(self, pick) -> float:
        return self.bare_seconds(pick) / self.backup_seconds(pick)

    def process_ratio(self, pick) -> float:
        return self.bare_seconds(pick) / self.process_seconds(pick)

    @property
    def peak_rss_mb(self) -> float:
        # Peak RSS does not depend on luck the way time does: report the largest seen.
        return max(run.peak_rss_kb for run in self.our_runs) / 1024


# --- set-up -------------------------------------------------------------------


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="50,500", help="comma-separated clinic sizes in MB (default 50,500)")
    parser.add_argument("--style", choices=["copy", "inserts"], help="override BACKUP_SQL_STYLE for both sides")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (best and median reported)")
    arguments = parser.parse_args()
    arguments.scales = sorted({int(value) for value in arguments.scales.split(",") if value.strip()})
    if not arguments.scales or arguments.repeats < 1:
        parser.error("--scales needs at least one size and --repeats must be at least 1")
    return arguments


def django_setup(style: str | None) -> None:
    """Settings read the environment, so the style override must be in place first."""
    if style:
        os.environ["BACKUP_SQL_STYLE"] = style
    sys.path.insert(0, str(PROJECT_ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


@contextmanager
def own_database(default_name: str):
    """A database of the benchmark's own, created and migrated here and dropped at the end
    (``BENCH_DATABASE_NAME``), on the configured server: the benchmark clinics never land
    in the demo's database. Child processes reach it through ``DATABASE_URL``."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    print(f"creating database {settings.DATABASES['default']['TEST']['NAME']}…", flush=True)
    config = setup_databases(verbosity=0, interactive=False, aliases={"default", "backup_reader"})
    db = settings.DATABASES["default"]
    user, password = quote(db["USER"] or "", safe=""), quote(db["PASSWORD"] or "", safe="")
    os.environ["DATABASE_URL"] = f"postgres://{user}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    name = db["NAME"]
    try:
        yield name
    finally:
        connection.close()
        teardown_databases(config, verbosity=0)
        print(f"database {name} dropped", flush=True)


def bench_database_name(default: str) -> None:
    """Before Django starts: the name ``own_database`` creates (settings read it at import)."""
    os.environ["TEST_DATABASE_NAME"] = os.environ.get("BENCH_DATABASE_NAME", default)


def clinic_ensure(scale: int) -> None:
    """Create ``bench_<scale>`` and fill it, unless it already has data."""
    from django_tenants.utils import schema_context

    from apps.tenants.demo_data import clinic_has_data, demo_data_generate
    from apps.tenants.models import Clinic
    from apps.tenants.services import clinic_create

    schema_name = f"bench_{scale}"
    if not Clinic.objects.filter(schema_name=schema_name).exists():
        clinic_create(schema_name=schema_name, name=f"Bench {scale} MB", domain=f"bench-{scale}.localhost")
    with schema_context(schema_name):
        if clinic_has_data():
            print(f"{schema_name}: reusing existing data")
            return
        print(f"{schema_name}: generating scale {scale}…", flush=True)
        started = time.perf_counter()
        demo_data_generate(schema_name=schema_name, scale=scale)
        print(f"{schema_name}: generated in {time.perf_counter() - started:.1f} s", flush=True)


# --- measurements ---------------------------------------------------------------


def pg_dump_command(schema_name: str) -> list[str]:
    """Exactly the pg_dump our engine would run (no snapshot: there is no exporting transaction)."""
    from django.conf import settings
    from django.db import connection

    from apps.backups.engine.dumpers import pg_dump_arguments
    from apps.backups.engine.pg_clients import find_client, server_major

    client = find_client("pg_dump", min_major=server_major(connection))
    return pg_dump_arguments(
        client=client, schema_name=schema_name, sql_style=settings.BACKUP_SQL_STYLE, snapshot_id=None
    )


def plain_dump_size(command: list[str]) -> int:
    """Bytes pg_dump writes, counted by reading its output once (not timed)."""
    from apps.backups.engine.pg_clients import libpq_environment

    size = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, env=libpq_environment()) as process:
        while chunk := process.stdout.read(CHUNK):
            size += len(chunk)
    if process.returncode != 0:
        raise RuntimeError(f"pg_dump failed with code {process.returncode}")
    return size


def bare_pg_dump_run(command: list[str]) -> Run:
    from apps.backups.engine.pg_clients import libpq_environment

    environment = libpq_environment()
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, env=environment, check=True)
    return Run(seconds=time.perf_counter() - started)


def our_backup_run(schema_name: str, environment: dict[str, str], storage_root: Path) -> Run:
    """A fresh worker process backs up the clinic; wall time and peak RSS via wait4."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", schema_name]
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment, stdout=output, stderr=output)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    shutil.rmtree(storage_root, ignore_errors=True)
    reported = re.search(r"^backup_seconds=([\d.]+)$", text, re.MULTILINE)
    if process.returncode != 0 or not reported:
        raise RuntimeError(f"backup of {schema_name} failed ({process.returncode}):\n{text}")
    return Run(seconds=seconds, peak_rss_kb=usage.ru_maxrss, backup_seconds=float(reported.group(1)))


def worker_main(schema_name: str) -> None:
    """In the worker process: one backup, timed around the service call alone."""
    django_setup(style=None)
    from apps.backups.services import backup_create
    from apps.tenants.models import Clinic

    clinic = Clinic.objects.get(schema_name=schema_name)
    started = time.perf_counter()
    backup_create(clinic=clinic, backup_type="manual")
    print(f"backup_seconds={time.perf_counter() - started:.4f}", flush=True)


def our_environment(work_dir: Path, style: str) -> tuple[dict[str, str], Path]:
    """Environment for ``backup_clinics``: a temporary storage and a fresh age key."""
    from apps.backups.engine.crypto import identity_file_create

    identity_file = work_dir / "age" / "identity.txt"
    if not identity_file.exists():
        identity_file_create(identity_file)
    storage_root = work_dir / "storage"
    environment = dict(os.environ)
    environment.update(
        BACKUP_LOCAL_ROOT=str(storage_root),
        BACKUP_AGE_IDENTITY_FILE=str(identity_file),
        BACKUP_SQL_STYLE=style,
    )
    environment.pop("BACKUP_AGE_RECIPIENTS", None)  # the identity's own recipient, nothing else
    return environment, storage_root


def measure_clinic(scale: int, repeats: int, work_dir: Path) -> Result:
    from django.conf import settings

    schema_name = f"bench_{scale}"
    command = pg_dump_command(schema_name)
    plain_bytes = plain_dump_size(command)
    print(f"{schema_name}: plain dump {plain_bytes / MB:.1f} MB ({settings.BACKUP_SQL_STYLE})", flush=True)
    environment, storage_root = our_environment(work_dir, settings.BACKUP_SQL_STYLE)
    bare_runs, our_runs = [], []
    for attempt in range(1, repeats + 1):
        bare_runs.append(bare_pg_dump_run(command))
        our_runs.append(our_backup_run(schema_name, environment, storage_root))
        print(
            f"{schema_name}: run {attempt}: bare {bare_runs[-1].seconds:.2f} s, "
            f"ours {our_runs[-1].backup_seconds:.2f} s backup / {our_runs[-1].seconds:.2f} s process, "
            f"peak RSS {our_runs[-1].peak_rss_kb / 1024:.0f} MB",
            flush=True,
        )
    return Result(schema_name, plain_bytes, bare_runs, our_runs)


# --- report ---------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def print_table(results: list[Result], style: str, repeats: int) -> None:
    print()
    print(
        f"SQL style: {style}; {repeats} runs each; MB = MiB. 'backup' is backup_create inside the worker, "
        "'process' the worker's whole life (start-up included); ratio = bare / ours"
    )
    header = (
        f"{'clinic':<11} {'plain MB':>9} {'':>6} {'bare s':>7} {'backup s':>9} {'ratio':>6} "
        f"{'(≥' + str(TARGET_RATIO) + ')':>6} {'process s':>10} {'ratio':>6} {'RSS MB':>7} "
        f"{'(≤' + str(TARGET_PEAK_RSS_MB) + ')':>6}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        for label, pick in (("best", min), ("median", statistics.median)):
            print(
                f"{result.schema_name:<11} {result.plain_mb:>9.1f} {label:>6} {result.bare_seconds(pick):>7.2f} "
                f"{result.backup_seconds(pick):>9.2f} {result.ratio(pick):>6.2f} "
                f"{verdict(result.ratio(pick) >= TARGET_RATIO):>6} {result.process_seconds(pick):>10.2f} "
                f"{result.process_ratio(pick):>6.2f} {result.peak_rss_mb:>7.1f} "
                f"{verdict(result.peak_rss_mb <= TARGET_PEAK_RSS_MB):>6}"
            )
    if len(results) > 1:
        smallest, largest = results[0], results[-1]
        growth = largest.peak_rss_mb - smallest.peak_rss_mb
        print(
            f"\nRSS growth {smallest.schema_name} → {largest.schema_name}: {growth:+.1f} MB "
            f"(target ≤ {TARGET_RSS_GROWTH_MB} MB: {verdict(growth <= TARGET_RSS_GROWTH_MB)})"
        )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
        return
    arguments = parse_arguments()
    bench_database_name("bench_backups")
    django_setup(arguments.style)
    from django.conf import settings

    with own_database("bench_backups"):
        for scale in arguments.scales:
            clinic_ensure(scale)
        with tempfile.TemporaryDirectory(prefix="backup-bench-") as work_dir:
            results = [measure_clinic(scale, arguments.repeats, Path(work_dir)) for scale in arguments.scales]
    print_table(results, settings.BACKUP_SQL_STYLE, arguments.repeats)


if __name__ == "__main__":
    main()
