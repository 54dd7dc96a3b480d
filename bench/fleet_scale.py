"""Fleet-scale benchmark: does a small clinic's backup cost the same with 10 clinics
in the database as with 5,000?

    .venv/bin/python bench/fleet_scale.py [--sizes 10,1000,5000] [--repeats 5] [--round 1000] [--profile FILE]

Runs in its own database (``BENCH_DATABASE_NAME``, default ``bench_fleet``),
created, migrated and dropped here, on the configured server (embedded unless
DATABASE_URL is set); never the demo's. Clinics are copies of an empty template
(``apps.tenants.services.clinic_clone``). Prints its figures; asserts nothing.

At each size, for the same small clinic (``fleet_00000``):

- our backup: ``backup_create`` called in a fresh worker process, ``--repeats``
  times in a row (as the scheduler does: one process, many backups), with the
  DDL cache warm; median and best. Peak RSS of the worker and, separately, of
  its largest child process (psql, or pg_dump when it falls back);
- bare ``pg_dump -n fleet_00000 --no-owner --no-privileges`` to /dev/null: time
  and peak RSS;
- the database server's CPU time per backup and per bare pg_dump: the
  postmaster's and all its children's utime+stime from ``/proc`` (ended
  backends are accounted to the postmaster when reaped), before and after;
- the cost of filling the DDL cache once (pg_dump --schema-only + pg_restore);
- whether the structure query's plan scans any catalog sequentially;
- the restore of the clinic's newest backup: psql replay + rename to the
  incoming schema, the forward migration step, and the whole ``backup_restore``.

At the largest size: ``run_scheduled_backups --workers 2`` over ``--round`` due clinics.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
DATABASE_NAME = os.environ.get("BENCH_DATABASE_NAME", "bench_fleet")
NOW = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)
SUBJECT = "fleet_00000"
BIG_CATALOGS = {
    "pg_class",
    "pg_attribute",
    "pg_depend",
    "pg_constraint",
    "pg_index",
    "pg_attrdef",
    "pg_description",
    "pg_trigger",
    "pg_sequence",
    "pg_type",
}


def django_setup(*, worker: bool) -> None:
    if worker:
        # The worker uses the database the parent created (its name is in DATABASE_URL).
        os.environ["LOG_LEVEL"] = "WARNING"
    else:
        os.environ["TEST_DATABASE_NAME"] = DATABASE_NAME
    import django

    django.setup()


# Measuring -----------------------------------------------------------------------------------------


def server_cpu_seconds() -> float | None:
    """utime+stime of the PostgreSQL server: postmaster (with its reaped children) and live children."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        postmaster = int(_proc_stat(backend)[3])
        ticks = os.sysconf("SC_CLK_TCK")
        fields = _proc_stat(postmaster)
        total = sum(int(value) for value in fields[13:17])  # utime stime cutime cstime
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    child = _proc_stat(int(entry.name))
                except OSError:
                    continue
                if int(child[3]) == postmaster:
                    total += int(child[13]) + int(child[14])
        return total / ticks
    except (OSError, ValueError, IndexError):
        return None  # a remote server: not readable from here


def _proc_stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces: fields after the last ')'.
    return [str(pid), text[text.index("(") + 1 : text.rindex(")")], *text[text.rindex(")") + 2 :].split()]


def vm_hwm_kb(pid: int) -> int:
    """The process's own peak RSS so far (0 once it has exited). Unlike wait4's
    ru_maxrss, not inflated by the parent's memory it was forked from."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class ChildPeakSampler:
    """Samples the peak RSS (VmHWM, a high-water mark) of this process's children
    every few milliseconds while it runs: psql, pg_dump, --version probes."""

    def __init__(self, interval: float = 0.005):
        import threading

        self.peak_kb = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        own_exe = os.readlink("/proc/self/exe")
        while not self._stop.is_set():
            try:
                tasks = os.listdir(f"/proc/{me}/task")
            except OSError:
                tasks = []
            for task in tasks:
                try:
                    children = Path(f"/proc/{me}/task/{task}/children").read_text().split()
                except OSError:
                    continue
                for child in children:
                    try:
                        if os.readlink(f"/proc/{child}/exe") == own_exe:
                            continue  # forked, not yet exec'd: still this process's memory
                    except OSError:
                        continue
                    self.peak_kb = max(self.peak_kb, vm_hwm_kb(int(child)))
            self._stop.wait(self._interval)


def run_worker(arguments: list[str], environment: dict) -> tuple[dict, float, int]:
    """A worker process; (its JSON answer, wall seconds, peak RSS in KB of it or its largest descendant)."""
    command = [sys.executable, str(Path(__file__).resolve()), *arguments]
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=BASE_DIR, env=environment, stdout=output, stderr=output)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    answers = [line for line in text.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not answers:
        raise RuntimeError(f"worker {arguments} failed ({process.returncode}):\n{text[-3000:]}")
    return json.loads(answers[-1]), seconds, usage.ru_maxrss


def worker_backup(schema_name: str, repeats: int) -> None:
    from apps.backups.services import backup_create
    from apps.tenants.models import Clinic

    clinic = Clinic.objects.get(schema_name=schema_name)
    backup_create(clinic=clinic, backup_type="manual")  # warm-up: imports, connections
    times, cpu, methods = [], [], []
    sampler = ChildPeakSampler()
    with sampler:
        for _ in range(repeats):
            before = server_cpu_seconds()
            started = time.perf_counter()
            record = backup_create(clinic=clinic, backup_type="manual")
            times.append(time.perf_counter() - started)
            after = server_cpu_seconds()
            if before is not None and after is not None:
                cpu.append(after - before)
            methods.append(record.format)
    manifest = _manifest_of(record)
    print(
        json.dumps(
            {
                "times": times,
                "server_cpu": cpu,
                "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "children_kb": sampler.peak_kb,
                "method": (manifest.get("dump_method") or {}).get("method"),
                "plain_size": record.file_size,
            }
        ),
        flush=True,
    )


def _manifest_of(record) -> dict:
    from apps.backups.storage import get_backup_storage

    return json.loads(get_backup_storage().read_bytes(record.manifest_path))


def worker_fill(schema_name: str) -> None:
    from django.db import connection

    from apps.backups.engine.copy_dump import _structure_in_snapshot
    from apps.backups.engine.ddl import ddl_fill
    from apps.backups.engine.pg_clients import find_client, server_major

    client = find_client("pg_dump", min_major=server_major(connection))
    structure, _ = _structure_in_snapshot(schema_name, None)
    before = server_cpu_seconds()
    started = time.perf_counter()
    with ChildPeakSampler() as sampler:
        ddl_fill(client=client, structure=structure, snapshot_id=None)
    seconds = time.perf_counter() - started
    after = server_cpu_seconds()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "server_cpu": (after - before) if before is not None and after is not None else None,
                "children_kb": sampler.peak_kb,
            }
        ),
        flush=True,
    )


def worker_restore(schema_name: str) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from django_tenants.utils import schema_context

    from apps.backups.models import BackupRecord
    from apps.backups.restore import swap
    from apps.backups.services import backup_open_plain
    from apps.tenants.models import Clinic

    clinic = Clinic.objects.get(schema_name=schema_name)
    with schema_context(schema_name):
        record = BackupRecord.objects.filter(status="succeeded", format="sql").order_by("-created_at").first()
    incoming = swap.side_schema_name(schema_name, swap.INCOMING_MARK, timezone.now())
    phases = {}
    with backup_open_plain(record=record) as chunks:
        source = swap.DumpSource(format="sql", chunks=chunks, pg_dump_version=record.pg_dump_version)
        started = time.perf_counter()
        swap.incoming_load_sql(schema_name=schema_name, incoming=incoming, source=source)
        phases["replay_and_rename"] = time.perf_counter() - started
    started = time.perf_counter()
    swap.migrate_forward(incoming)
    phases["forward_migration"] = time.perf_counter() - started
    started = time.perf_counter()
    call_command("migrate_schemas", schema_name=incoming, tenant=True, interactive=False, verbosity=0)
    phases["migrate_schemas"] = time.perf_counter() - started
    connection.set_schema_to_public()
    swap.incoming_drop(incoming)
    connection.set_schema_to_public()
    before = server_cpu_seconds()
    started = time.perf_counter()
    swap.backup_restore(clinic=clinic, record=record)
    phases["whole_restore"] = time.perf_counter() - started
    after = server_cpu_seconds()
    phases["whole_restore_server_cpu"] = (after - before) if before is not None and after is not None else None
    print(json.dumps(phases), flush=True)


# The fleet -------------------------------------------------------------------------------------------


def kept_database_open() -> bool:
    """Point Django at a kept bench database, if there is one, migrating only
    ``public`` (setup_databases would migrate each of its thousands of schemas)."""
    import psycopg
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from apps.backups.engine.pg_clients import libpq_params

    with psycopg.connect(**libpq_params() | {"dbname": "postgres"}) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone():
            return False
    for alias in ("default", "backup_reader"):
        connections[alias].close()
        settings.DATABASES[alias]["NAME"] = DATABASE_NAME
        connections[alias].settings_dict["NAME"] = DATABASE_NAME
    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    return True


def fleet_grow(template, template_sql: str, target: int, have: int) -> int:
    from apps.tenants.services import clinic_clone

    started = time.perf_counter()
    for number in range(have, target):
        clinic_clone(
            template=template,
            template_sql=template_sql,
            schema_name=f"fleet_{number:05d}",
            name=f"Clínica {number:05d}",
            domain=f"fleet-{number:05d}.bench.localhost",
        )
    if target > have:
        print(f"  cloned {target - have} clinics in {time.perf_counter() - started:.0f} s", flush=True)
    return max(have, target)


def catalog_rows() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'pg_catalog.pg_class'::regclass")
        estimate = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_class")
        return cursor.fetchone()[0] if estimate < 0 else max(estimate, cursor.fetchone()[0])


def structure_plan_seq_scans(schema_name: str) -> list[str]:
    from django.db import connection

    from apps.backups.engine.structure import STRUCTURE_SQL

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE pg_catalog.pg_class")
        cursor.execute("ANALYZE pg_catalog.pg_depend")
        cursor.execute("ANALYZE pg_catalog.pg_attribute")
        cursor.execute("EXPLAIN (FORMAT JSON) " + STRUCTURE_SQL, {"schema": schema_name})
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    found = []

    def walk(node: dict) -> None:
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in BIG_CATALOGS:
            found.append(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return sorted(set(found))


def bare_pg_dump(schema_name: str, repeats: int) -> dict:
    from django.db import connection

    from apps.backups.engine.pg_clients import find_client, libpq_environment, server_major

    client = find_client("pg_dump", min_major=server_major(connection))
    command = [client.path, f"--schema={schema_name}", "--no-owner", "--no-privileges", "--format=p"]
    times, rss, cpu = [], [], []
    for _ in range(repeats):
        before = server_cpu_seconds()
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=libpq_environment())
        peak = 0
        while process.poll() is None:
            peak = max(peak, vm_hwm_kb(process.pid))
            time.sleep(0.005)
        times.append(time.perf_counter() - started)
        after = server_cpu_seconds()
        if process.returncode != 0:
            raise RuntimeError("bare pg_dump failed")
        rss.append(peak)
        if before is not None and after is not None:
            cpu.append(after - before)
    return {"times": times, "rss_kb": max(rss), "server_cpu": cpu}


def measure(size: int, args, environment: dict) -> dict:
    print(f"== {size} clinics: {catalog_rows():,} pg_class rows", flush=True)
    seq_scans = structure_plan_seq_scans(SUBJECT)
    fill, _, _ = run_worker(["--worker-fill", SUBJECT], environment)
    ours, _, _ = run_worker(["--worker-backup", SUBJECT, str(args.repeats)], environment)
    bare = bare_pg_dump(SUBJECT, max(2, args.repeats // 2))
    restore, _, _ = run_worker(["--worker-restore", SUBJECT], environment)
    row = {
        "size": size,
        "pg_class": catalog_rows(),
        "ours_median": statistics.median(ours["times"]),
        "ours_best": min(ours["times"]),
        "ours_self_mb": ours["self_kb"] / 1024,
        "ours_child_mb": ours["children_kb"] / 1024,
        "ours_total_mb": (ours["self_kb"] + ours["children_kb"]) / 1024,
        "ours_cpu": statistics.median(ours["server_cpu"]) if ours["server_cpu"] else None,
        "method": ours["method"],
        "bare_median": statistics.median(bare["times"]),
        "bare_mb": bare["rss_kb"] / 1024,
        "bare_cpu": statistics.median(bare["server_cpu"]) if bare["server_cpu"] else None,
        "fill_seconds": fill["seconds"],
        "fill_mb": fill["children_kb"] / 1024,
        "fill_cpu": fill["server_cpu"],
        "seq_scans": seq_scans,
        **{f"restore_{key}": value for key, value in restore.items()},
    }
    print("  " + json.dumps(row), flush=True)
    return row


def scheduler_round(count: int, environment: dict, profile: str | None = None) -> tuple[float, int, int]:
    """``run_scheduled_backups --workers 2`` over ``count`` due clinics; with
    ``profile``, ``--workers 1`` under cProfile (written to that path) instead."""
    from django.db import connection

    from apps.tenants.models import Clinic, ScheduledBackupClaim

    names = [f"fleet_{number:05d}" for number in range(1, count + 1)]
    # Due again even in a reused database: no backup yet, and no claim on NOW's slot.
    ScheduledBackupClaim.objects.filter(clinic__schema_name__in=names).delete()
    Clinic.objects.filter(schema_name__in=names).update(
        backup_schedule="daily", last_backup_at=None, backup_failures=0, backup_retry_at=None
    )
    with connection.cursor() as cursor:
        for name in names:  # an earlier round's backups of this slot would be taken as done
            cursor.execute(f"UPDATE \"{name}\".backups_backuprecord SET schedule_slot = ''")  # noqa: S608
    command = ["manage.py", "run_scheduled_backups", "--now", NOW.isoformat(), "--workers", "2"]
    if profile:
        command = ["-m", "cProfile", "-o", profile, *command[:-1], "1"]
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = process.stdout.read()
    _, _status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    done = output.count("Subido exitosamente")
    if done != count:
        print(output[-3000:])
    return elapsed, done, usage.ru_maxrss


def fmt(value, pattern: str = "{:.2f}") -> str:
    return "—" if value is None else pattern.format(value)


def print_table(rows: list[dict], round_result, round_workers: int = 2) -> None:
    print()
    print(
        "| clinics | pg_class rows | ours: backup (median · best) | ours: peak RSS worker + largest child | "
        "ours: server CPU | bare pg_dump | bare: peak RSS | bare: server CPU | DDL cache fill (once): time · RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['size']:,} | {row['pg_class']:,} | {row['ours_median']:.2f} s · {row['ours_best']:.2f} s | "
            f"{row['ours_total_mb']:.0f} MB ({row['ours_self_mb']:.0f} + {row['ours_child_mb']:.0f}) | "
            f"{fmt(row['ours_cpu'], '{:.2f} s')} | "
            f"{row['bare_median']:.2f} s | {row['bare_mb']:.0f} MB | {fmt(row['bare_cpu'], '{:.2f} s')} | "
            f"{row['fill_seconds']:.1f} s · {row['fill_mb']:.0f} MB |"
        )
    print()
    print(
        "| clinics | restore: psql replay + rename | forward migration step (nothing to apply) | "
        "migrate_schemas run anyway | whole restore | its server CPU |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['size']:,} | {row['restore_replay_and_rename']:.2f} s | "
            f"{row['restore_forward_migration']:.2f} s | {row['restore_migrate_schemas']:.2f} s | "
            f"{row['restore_whole_restore']:.2f} s | {fmt(row['restore_whole_restore_server_cpu'], '{:.2f} s')} |"
        )
    print()
    first, last = rows[0], rows[-1]
    print(f"dump method: {sorted({row['method'] for row in rows})}")
    print(f"structure query seq scans on big catalogs: {[row['seq_scans'] for row in rows]}")
    ratio = last["ours_median"] / first["ours_median"]
    print(f"ours at {last['size']:,} / ours at {first['size']:,} (median): x{ratio:.2f}")
    if round_result:
        elapsed, done, rss = round_result
        print(
            f"run_scheduled_backups --workers {round_workers} at {last['size']:,} clinics: "
            f"{done} backups in {elapsed:.0f} s "
            f"({elapsed / max(done, 1) * 1000:.0f} ms/clinic), peak RSS {rss / 1024:.0f} MB"
        )


def arguments_parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,1000,5000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--round", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the database (and reuse a kept one)")
    parser.add_argument("--profile", help="profile the round (--workers 1) with cProfile into this file")
    parser.add_argument("--worker-backup", nargs=2)
    parser.add_argument("--worker-fill")
    parser.add_argument("--worker-restore")
    return parser.parse_args()


def main() -> None:
    args = arguments_parse()
    if args.worker_backup or args.worker_fill or args.worker_restore:
        django_setup(worker=True)
        if args.worker_backup:
            worker_backup(args.worker_backup[0], int(args.worker_backup[1]))
        elif args.worker_fill:
            worker_fill(args.worker_fill)
        else:
            worker_restore(args.worker_restore)
        return

    django_setup(worker=False)
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    from apps.backups.engine.crypto import identity_file_create
    from apps.tenants.models import Clinic
    from apps.tenants.services import clinic_create, clinic_template_dump

    sizes = [int(size) for size in args.sizes.split(",")]
    # --keep: the database outlives the run, and a later --keep run reuses its clinics
    # (building 5,000 takes most of an hour; a re-measure then takes minutes).
    config = (
        None
        if args.keep and kept_database_open()
        else setup_databases(verbosity=0, interactive=False, keepdb=args.keep, aliases={"default", "backup_reader"})
    )
    try:
        db = settings.DATABASES["default"]
        print(f"database {db['NAME']}, {os.cpu_count()} CPUs", flush=True)
        with tempfile.TemporaryDirectory(prefix="fleet-bench-") as folder:
            work = Path(folder)
            identity = work / "age" / "identity.txt"
            identity_file_create(identity)
            environment = os.environ | {
                "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
                "BACKUP_LOCAL_ROOT": str(work / "bucket"),
                "BACKUP_AGE_IDENTITY_FILE": str(identity),
                "PSICO_DATA_DIR": str(work / "data"),
                "LOG_LEVEL": "WARNING",
            }
            environment.pop("BACKUP_AGE_RECIPIENTS", None)
            template = Clinic.objects.filter(schema_name="fleet_template").first() or clinic_create(
                schema_name="fleet_template", name="Plantilla", domain="tpl.bench.localhost"
            )
            template_sql = clinic_template_dump(template=template)
            have = Clinic.objects.filter(schema_name__startswith="fleet_").exclude(pk=template.pk).count()
            if have:
                print(f"  reusing {have} clinics", flush=True)
            rows, round_result = [], None
            for size in sizes:
                have = fleet_grow(template, template_sql, size, have)
                rows.append(measure(size, args, environment))
            if args.round:
                round_result = scheduler_round(min(args.round, have - 1), environment, args.profile)
            print_table(rows, round_result, round_workers=1 if args.profile else 2)
    finally:
        connection.close()
        if args.keep:
            print(f"database {DATABASE_NAME} kept: drop it with a run without --keep, or DROP DATABASE")
        elif config is not None:
            teardown_databases(config, verbosity=0)


if __name__ == "__main__":
    main()
