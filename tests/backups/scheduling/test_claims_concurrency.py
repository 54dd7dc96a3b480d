"""Several real ``manage.py run_scheduled_backups`` processes at once: one backup per clinic."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord
from apps.tenants.models import Clinic, ScheduledBackupClaim
from apps.tenants.services import clinic_clone, clinic_create, clinic_template_dump
from tests.backups.conftest import write_script
from tests.support.processes import subprocess_env

CLINICS = 22
PROCESSES = 4
NOW = "2025-11-25T03:00:00+00:00"
BASE_DIR = Path(settings.BASE_DIR)


@pytest.fixture(scope="module")
def many_clinics(clinics, django_db_blocker):
    """Small clinics copied from an empty template (much faster than migrating each)."""
    with django_db_blocker.unblock():
        template = clinic_create(schema_name="conc_template", name="Plantilla", domain="conc-template.test.localhost")
        template_sql = clinic_template_dump(template=template)
        created = [
            clinic_clone(
                template=template,
                template_sql=template_sql,
                schema_name=f"conc_{number:02d}",
                name=f"Clínica Concurrente {number:02d}",
                domain=f"conc-{number:02d}.test.localhost",
            )
            for number in range(CLINICS)
        ]
        Clinic.objects.filter(pk__in=[c.pk for c in created]).update(backup_schedule="daily")
        yield created
        connection.set_schema_to_public()
        ScheduledBackupClaim.objects.all().delete()
        for clinic in [*created, template]:
            clinic.domains.all().delete()
            clinic.delete(force_drop=True)


def start_runs(env: dict[str, str], count: int, *args: str) -> list[subprocess.Popen]:
    command = [sys.executable, "manage.py", "run_scheduled_backups", "--now", NOW, *args]
    return [
        subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]


def test_overlapping_processes_back_up_each_clinic_exactly_once(many_clinics, committed, tmp_path, real_pg_dump):
    # pg_dump takes a second to start: every process is still finding work when the
    # others start, however slowly the machine starts Python (the work must be shared).
    slow = write_script(
        tmp_path / "bin",
        "pg_dump",
        f'if [ "$1" = --version ]; then exec {real_pg_dump} --version; fi\nsleep 1\nexec {real_pg_dump} "$@"\n',
    )
    env = subprocess_env(tmp_path) | {"BACKUP_PG_BIN_DIR": str(slow.parent), "LOG_LEVEL": "DEBUG"}
    runs = start_runs(env, PROCESSES - 1, "--workers", "2") + start_runs(env, 1)
    outputs, lost_claims = [], []
    for process in runs:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        outputs.append(out)
        lost_claims += [line for line in err.splitlines() if "lo tiene otro proceso" in line]

    for clinic in many_clinics:
        with schema_context(clinic.schema_name):
            backups = list(BackupRecord.objects.values_list("status", "schedule_slot"))
        assert backups == [("succeeded", "daily:2025-11-25")], clinic.schema_name
    started = [line for out in outputs for line in out.splitlines() if line.startswith("📦")]
    assert sorted(started) == sorted(f"📦 Iniciando backup para: {c.name}..." for c in many_clinics)
    last_lines = [out.rstrip().splitlines()[-1] for out in outputs]
    assert all(line.startswith("✅ Verificación de backups finalizada: ") for line in last_lines), last_lines
    # Each run counts what it did itself; together, every clinic once.
    assert sum(int(line.split(": ")[1].split()[0]) for line in last_lines) == CLINICS
    claims = ScheduledBackupClaim.objects.filter(clinic__in=many_clinics)
    assert sorted(claims.values_list("status", flat=True)) == ["succeeded"] * CLINICS
    # The work was really shared between processes (a worker is host:pid:thread), and the
    # processes really raced for the same clinics: some claims were lost to another one.
    assert len({worker.split(":")[1] for worker in claims.values_list("worker", flat=True)}) > 1
    assert lost_claims

    # The next minute's run finds nothing left to do.
    [again] = start_runs(env, 1)
    out, _ = again.communicate(timeout=120)
    assert "📦" not in out
