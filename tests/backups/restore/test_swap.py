"""Restoring a clinic: round trips, atomicity, history, tokens, migrations."""

import io
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from apps.backups.errors import IntegrityError, RestoreError
from apps.backups.models import BackupDownload, BackupJob, BackupRecord, BackupRestore
from apps.backups.restore.swap import backup_restore
from apps.backups.services import backup_create
from apps.clinical_history.models import SessionNote
from apps.payment_system.models import Payment
from apps.professionals.models import Professional
from apps.tenants.services import clinic_create
from tests.backups.conftest import pg_client_wrap, stored_object_tamper
from tests.conftest import PASSWORD
from tests.support.database import table_hashes

RESTORE_URL = "/api/backups/restore/"


def schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'")
        return {row[0] for row in cursor.fetchall()}


def change_clinic_data(schema: str) -> None:
    """What happens to a clinic between a backup and the day it needs it."""
    with schema_context(schema):
        SessionNote.objects.filter(pk__in=SessionNote.objects.values("pk")[:5]).delete()
        payment = Payment.objects.order_by("pk").first()
        payment.amount = Decimal("0.01")
        payment.save()
        Professional.objects.create(
            full_name="Intrusa Pérez",
            specialty="X",
            license_number=f"NEW-{uuid.uuid4().hex[:8]}",
            session_fee=Decimal("1.00"),
        )


def job_after(response, schema_name: str) -> BackupJob:
    """The job a 202 answered with, as it is now."""
    with schema_context(schema_name):
        return BackupJob.objects.select_related("restore").get(pk=response.json()["job"]["id"])


def test_restore_by_backup_id_brings_back_every_row_and_sequences_continue(committed):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    before = table_hashes("alfa")
    change_clinic_data("alfa")
    assert table_hashes("alfa") != before

    response = alfa.admin_client().post(RESTORE_URL, {"backup_id": record.pk}, format="json")

    assert response.status_code == 202, response.content
    assert response["Location"].endswith(f"/api/backups/jobs/{response.json()['job']['id']}/")
    job = job_after(response, "alfa")  # jobs run in the test's process here (tests/backups/jobs: real workers)
    assert (job.kind, job.status, job.error) == ("restore", "succeeded", "")
    info = {"previous_schema": job.restore.previous_schema}
    assert job.restore.status == "succeeded" and job.restore.backup_id == record.pk
    assert info["previous_schema"].startswith("alfa_prev_")
    assert table_hashes("alfa") == before
    with schema_context("alfa"):
        newest = Professional.objects.create(
            full_name="Nueva Núñez",
            specialty="Y",
            license_number=f"NEW-{uuid.uuid4().hex[:8]}",
            session_fee=Decimal("2.00"),
        )
        assert newest.pk > max(Professional.objects.exclude(pk=newest.pk).values_list("pk", flat=True))
    # The state before the restore stays recoverable.
    with schema_context(info["previous_schema"]):
        assert Professional.objects.filter(full_name="Intrusa Pérez").exists()


def test_restore_keeps_the_history_of_later_backups_and_records_itself(committed):
    alfa = committed["alfa"]
    older = backup_create(clinic=alfa.clinic, backup_type="manual")
    newer = backup_create(clinic=alfa.clinic, backup_type="automatic")
    with schema_context("alfa"):
        BackupDownload.objects.create(backup=newer, user=alfa.admin, ip_address="198.51.100.1")

    restore = backup_restore(clinic=alfa.clinic, record=older, user=alfa.admin)

    with schema_context("alfa"):
        records = {r.pk: r.status for r in BackupRecord.objects.all()}
        assert records == {older.pk: "succeeded", newer.pk: "succeeded"}
        assert BackupDownload.objects.get().backup_id == newer.pk
        saved = BackupRestore.objects.get()
        assert (saved.pk, saved.backup_id, saved.requested_by_id) == (restore.pk, older.pk, alfa.admin.pk)
        assert saved.source == "backup" and saved.status == "succeeded"
        # New backups after the restore get fresh ids.
    again = backup_create(clinic=alfa.clinic, backup_type="manual")
    assert again.pk > newer.pk


def test_tokens_issued_before_a_restore_stop_working(committed):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    client = alfa.admin_client()
    assert client.get("/api/backups/history/").status_code == 200
    # No sleeping: tokens carry their sign-in time to the microsecond (the same-second
    # cases are in tests/users/test_tokens.py).
    assert client.post(RESTORE_URL, {"backup_id": record.pk}, format="json").status_code == 202
    assert client.get("/api/backups/history/").status_code == 401
    assert alfa.admin_client().get("/api/backups/history/").status_code == 200


def test_a_restore_without_recent_sign_in_or_password_gets_403_and_changes_nothing(committed, settings):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    change_clinic_data("alfa")
    client = alfa.admin_client()
    before, schemas_before = table_hashes("alfa"), schemas()
    settings.REAUTH_WINDOW_MINUTES = 0  # the sign-in is now too old

    refused = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")
    assert refused.status_code == 403
    assert "requiere confirmar tu identidad" in refused.json()["error"]
    wrong = client.post(RESTORE_URL, {"backup_id": record.pk, "password": "no-es-esta"}, format="json")
    assert wrong.status_code == 403
    assert wrong.json() == {
        "error": "La contraseña no es correcta: esta operación necesita la contraseña de tu cuenta."
    }
    upload = client.post(RESTORE_URL, {"file": io.BytesIO(b"SELECT 1;"), "password": "no-es-esta"}, format="multipart")
    assert upload.status_code == 403
    assert table_hashes("alfa") == before and schemas() == schemas_before
    with schema_context("alfa"):
        assert not BackupRestore.objects.exists()
        assert not BackupJob.objects.exists()  # nothing queued without re-authentication

    confirmed = client.post(RESTORE_URL, {"backup_id": record.pk, "password": PASSWORD}, format="json")
    assert confirmed.status_code == 202, confirmed.content  # a job (run in the test's process here)
    assert confirmed.json()["job"]["status"] == "succeeded", confirmed.content
    assert table_hashes("alfa") != before
    with schema_context("alfa"):  # the sign-in records survive the restore, like the backup history
        from axes.models import AccessFailureLog

        assert AccessFailureLog.objects.filter(path_info=RESTORE_URL).count() == 2


def test_wrong_passwords_on_a_restore_count_towards_the_lockout(committed, settings):
    from axes.models import AccessAttempt, AccessFailureLog

    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    client = alfa.admin_client()
    try:
        statuses = [
            client.post(RESTORE_URL, {"backup_id": record.pk, "password": f"mal-{n}"}, format="json").status_code
            for n in range(settings.AUTH_LOCKOUT_FAILURES + 1)
        ]
        assert statuses[-1] == 429
        assert set(statuses[:-2]) == {403}
        with schema_context("alfa"):
            assert not BackupRestore.objects.exists()
    finally:
        with schema_context("alfa"):
            AccessAttempt.objects.all().delete()
            AccessFailureLog.objects.all().delete()


def test_a_failing_psql_mid_restore_leaves_the_clinic_exactly_as_before(committed, settings, tmp_path):
    from apps.backups.engine.pg_clients import find_client, server_major

    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    change_clinic_data("alfa")
    before, schemas_before = table_hashes("alfa"), schemas()
    real_psql = find_client("psql", min_major=server_major(connection)).path
    # The dump stops short half way: psql meets an unfinished statement and fails.
    pg_client_wrap(
        settings,
        tmp_path / "bin",
        "psql",
        real_psql,
        f"""
head -c 60000 | {real_psql} "$@"
""",
    )

    with pytest.raises(RestoreError, match="psql falló"):
        backup_restore(clinic=alfa.clinic, record=record)

    assert table_hashes("alfa") == before
    assert schemas() == schemas_before
    with schema_context("alfa"):
        failed = BackupRestore.objects.get()
    # A server fault: the clinic admin reads a plain message; psql's detail is only in the log.
    assert failed.status == "failed" and "error del servidor" in failed.error and "psql:" not in failed.error


def test_a_psql_killed_mid_transaction_leaves_the_clinic_exactly_as_before(committed, settings, tmp_path):
    """psql really inside the load (stdin passed through; pg_stat_activity shows its
    transaction has written), then SIGKILL: nothing changes, nothing is left, the
    failure is recorded."""
    import os
    import signal
    import subprocess
    import sys

    import psycopg
    from django.conf import settings as django_settings

    from apps.backups.engine.pg_clients import find_client, libpq_params, server_major
    from apps.backups.engine.psql import APPLICATION_NAME
    from tests.backups.restore.test_crash_safety import restore_backends, wait_for
    from tests.support.processes import subprocess_env

    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    change_clinic_data("alfa")
    before, schemas_before = table_hashes("alfa"), schemas()
    real_psql = find_client("psql", min_major=server_major(connection)).path
    flag, pid_file = tmp_path / "go", tmp_path / "psql.pid"
    # All of stdin reaches psql; after 100 kB (inside the COPY blocks) it waits for
    # the test, which kills psql while its transaction is open and has written.
    pg_client_wrap(
        settings,
        tmp_path / "bin",
        "psql",
        real_psql,
        f"""
{{ head -c 100000; while [ ! -e {flag} ]; do sleep 0.05; done; cat; }} \
  | bash -c 'echo $$ > {pid_file}; exec "$0" "$@"' {real_psql} "$@"
""",
    )
    env = subprocess_env(tmp_path) | {"BACKUP_PG_BIN_DIR": settings.BACKUP_PG_BIN_DIR}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "restore_backup", str(record.pk), "--clinic", "alfa"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def psql_mid_transaction() -> bool:
            assert process.poll() is None, process.communicate()
            with psycopg.connect(**libpq_params(), autocommit=True) as conn:
                row = conn.execute(
                    # Waiting for more input with its transaction open and written to: between
                    # statements ("idle in transaction") or inside a COPY block (active, ClientRead).
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND backend_xid IS NOT NULL "
                    "AND (state = 'idle in transaction' OR (state = 'active' AND wait_event = 'ClientRead'))",
                    [APPLICATION_NAME],
                ).fetchone()
            return row[0] == 1

        wait_for(psql_mid_transaction, timeout=240, what="psql inside the load")  # a busy machine starts Django slowly
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        flag.touch()
        _, err = process.communicate(timeout=120)
    finally:
        flag.touch()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1 and "psql falló" in err
    wait_for(lambda: restore_backends() == 0, what="the restore's sessions to end")
    assert table_hashes("alfa") == before
    assert schemas() == schemas_before  # no _park_ / _in_ left
    with schema_context("alfa"):
        failed = BackupRestore.objects.get()
    assert failed.status == "failed" and failed.backup_id == record.pk
    assert "error del servidor" in failed.error and "psql:" not in failed.error


def test_a_plain_checksum_altered_during_a_restore_commits_nothing_and_is_recorded(committed):
    """The stored object is intact, so the load starts; the plain SHA-256 (changed
    in the record while the restore is being prepared) fails only at the end of the
    stream, after psql has replayed all but the last chunk: nothing is committed."""
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    change_clinic_data("alfa")
    before, schemas_before = table_hashes("alfa"), schemas()
    with schema_context("alfa"):
        BackupRecord.objects.filter(pk=record.pk).update(plain_sha256="0" * 64)
        altered = BackupRecord.objects.get(pk=record.pk)

    with pytest.raises(IntegrityError, match="checksum"):
        backup_restore(clinic=alfa.clinic, record=altered, user=alfa.admin)

    assert table_hashes("alfa") == before
    assert schemas() == schemas_before
    with schema_context("alfa"):
        failed = BackupRestore.objects.get()
    assert (failed.status, failed.backup_id, failed.requested_by_id) == ("failed", record.pk, alfa.admin.pk)
    assert "checksum" in failed.error


@pytest.mark.parametrize("fault", ["stored checksum", "missing object", "missing key"])
def test_restore_failures_before_the_load_are_recorded(committed, settings, age_key, fault):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    assert record.is_encrypted
    stored = settings.BACKUP_LOCAL_ROOT / record.file_path
    if fault == "stored checksum":
        stored_object_tamper(settings.BACKUP_LOCAL_ROOT, record, at=1 / 2)
        expected = "checksum"
    elif fault == "missing object":
        stored.unlink()
        expected = "no existe"
    else:
        settings.BACKUP_AGE_IDENTITY_FILE = ""
        expected = "clave"
    client = alfa.admin_client()  # logging in updates last_login: before the snapshot
    before, schemas_before = table_hashes("alfa"), schemas()

    response = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")

    assert response.status_code == 202  # a job (run in the test's process here)
    job = job_after(response, "alfa")
    assert job.status == "failed" and expected in job.error
    assert table_hashes("alfa") == before
    assert schemas() == schemas_before
    with schema_context("alfa"):
        failed = BackupRestore.objects.get()
    assert failed.status == "failed" and failed.backup_id == record.pk and expected in failed.error


def test_a_restore_requested_by_an_admin_the_backup_predates_succeeds(committed):
    """The admin who asks is not in the backup: the restore's link to them becomes empty."""
    from apps.users.models import User

    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    with schema_context("alfa"):
        newcomer = User.objects.create_user("nueva.admin@alfa.com", "clave-nueva-123", role=User.Role.CLINIC_ADMIN)
    try:
        restore = backup_restore(clinic=alfa.clinic, record=record, user=newcomer)
        assert restore.status == "succeeded"
        with schema_context("alfa"):
            saved = BackupRestore.objects.get()
            assert not User.objects.filter(pk=newcomer.pk).exists()
        assert saved.status == "succeeded" and saved.requested_by_id is None
    finally:
        with schema_context("alfa"):
            User.objects.filter(email="nueva.admin@alfa.com").delete()


def test_restore_backup_command_as_in_the_guide(committed, capsys):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    before = table_hashes("alfa")
    change_clinic_data("alfa")
    call_command("restore_backup", str(record.pk), "--clinic", "alfa")
    assert "Restaurada" in capsys.readouterr().out
    assert table_hashes("alfa") == before


def test_restore_backup_command_refuses_unknown_ids_and_clinics(committed):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no tiene un backup con ID 999"):
        call_command("restore_backup", "999", "--clinic", "alfa")
    with pytest.raises(CommandError, match="desconocida"):
        call_command("restore_backup", "1", "--clinic", "nadie")


def test_json_backup_round_trip_restores_rows_and_leaves_sequences_usable(committed, settings, tmp_path):
    alfa = committed["alfa"]
    settings.BACKUP_PG_BIN_DIR = str(tmp_path / "no-pg-dump")
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    assert record.format == "json"
    data_tables = {
        "professionals_professional",
        "appointments_appointment",
        "clinical_history_sessionnote",
        "payment_system_payment",
        "users_user",
        "chat_message",
    }
    before = {t: h for t, h in table_hashes("alfa").items() if t in data_tables}
    change_clinic_data("alfa")

    restore = backup_restore(clinic=alfa.clinic, record=record)

    assert restore.status == "succeeded"
    assert {t: h for t, h in table_hashes("alfa").items() if t in data_tables} == before
    with schema_context("alfa"):
        Professional.objects.create(
            full_name="Tras JSON", specialty="Z", license_number=f"J-{uuid.uuid4().hex[:8]}", session_fee=1
        )


def test_an_older_backup_is_migrated_forward_after_loading(committed):
    gamma = clinic_create(schema_name="gamma", name="Clínica Gamma", domain="gamma.test.localhost")
    try:
        # A clinic whose schema predates the payment_system migrations.
        call_command(
            "migrate_schemas",
            "payment_system",
            "zero",
            schema_name="gamma",
            tenant=True,
            interactive=False,
            verbosity=0,
        )
        connection.set_schema_to_public()
        old = backup_create(clinic=gamma, backup_type="manual")
        assert "payment_system_payment" not in table_hashes("gamma")

        backup_restore(clinic=gamma, record=old)

        assert "payment_system_payment" in table_hashes("gamma")
        with schema_context("gamma"):
            assert Payment.objects.count() == 0
            from django.db.migrations.recorder import MigrationRecorder

            applied = set(MigrationRecorder(connection).applied_migrations())
        assert ("payment_system", "0002_initial") in applied
    finally:
        connection.set_schema_to_public()
        gamma.domains.all().delete()
        gamma.delete(force_drop=True)


def test_disaster_recovery_from_the_bucket_alone_into_a_database_that_lost_the_clinic(
    committed, settings, age_key, capsys
):
    from apps.tenants.models import Clinic, Domain

    delta = clinic_create(schema_name="delta", name="Clínica Delta Íñigo", domain="delta.test.localhost")
    try:
        with schema_context("delta"):
            Professional.objects.create(
                full_name="Dña. Zoë Güell", specialty="Trauma", license_number="D-1", session_fee=Decimal("80.50")
            )
        first = backup_create(clinic=delta, backup_type="manual")
        second = backup_create(clinic=delta, backup_type="automatic")
        before = table_hashes("delta")
        # Disaster: the clinic's schema, row and domain are gone; only the bucket is left.
        delta.domains.all().delete()
        delta.delete(force_drop=True)
        assert "delta" not in schemas()

        call_command("restore_clinic_from_storage", "delta", "--list")
        listing = capsys.readouterr().out
        assert first.file_name in listing and second.file_name in listing

        call_command("restore_clinic_from_storage", "delta")

        recovered = Clinic.objects.get(schema_name="delta")
        assert recovered.name == "Clínica Delta Íñigo"
        assert Domain.objects.get(tenant=recovered).domain == "delta.test.localhost"
        assert table_hashes("delta") == before
        with schema_context("delta"):
            history = {r.file_name: r.status for r in BackupRecord.objects.all()}
            assert history == {first.file_name: "succeeded", second.file_name: "succeeded"}
            restore = BackupRestore.objects.get()
            assert restore.source == "storage" and restore.backup_file_name == second.file_name
    finally:
        connection.set_schema_to_public()
        for clinic in Clinic.objects.filter(schema_name="delta"):
            clinic.domains.all().delete()
            clinic.delete(force_drop=True)


def test_history_is_rebuilt_from_the_manifests(committed):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    with schema_context("alfa"):
        BackupRecord.objects.all().delete()
    call_command("rebuild_backup_history", "alfa")
    with schema_context("alfa"):
        rebuilt = BackupRecord.objects.get()
    assert (rebuilt.file_name, rebuilt.status, rebuilt.checksum_sha256) == (
        record.file_name,
        "succeeded",
        record.checksum_sha256,
    )
    assert rebuilt.file_path == record.file_path and rebuilt.plain_sha256 == record.plain_sha256


def test_restore_drill_passes_without_touching_the_live_clinic(committed, capsys):
    alfa = committed["alfa"]
    backup_create(clinic=alfa.clinic, backup_type="manual")
    before, schemas_before = table_hashes("alfa", exclude_prefix="-"), schemas()
    call_command("restore_drill", "alfa")
    assert "✅ alfa" in capsys.readouterr().out
    assert table_hashes("alfa", exclude_prefix="-") == before
    assert schemas() == schemas_before


def test_restore_drill_reports_a_backup_that_does_not_match_its_manifest(committed, settings):
    import json

    from django.core.management import CommandError

    beta = committed["beta"]
    record = backup_create(clinic=beta.clinic, backup_type="manual")
    manifest_path = settings.BACKUP_LOCAL_ROOT / record.manifest_path
    manifest = json.loads(manifest_path.read_text())
    manifest["row_counts"]["payment_system_payment"] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="no superaron"):
        call_command("restore_drill", "beta")


def test_a_tampered_stored_object_is_refused_before_anything_runs(committed, settings):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    stored_object_tamper(settings.BACKUP_LOCAL_ROOT, record, at=1 / 3)
    change_clinic_data("alfa")
    client = alfa.admin_client()  # logging in updates last_login: before the snapshot
    before, schemas_before = table_hashes("alfa"), schemas()

    response = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")

    assert response.status_code == 202
    job = job_after(response, "alfa")
    assert job.status == "failed" and "checksum" in job.error
    assert table_hashes("alfa") == before
    assert schemas() == schemas_before


def test_disaster_recovery_into_a_fresh_database(committed, settings, age_key, tmp_path):
    """Everything lost but the bucket and the key: a new, empty database is
    migrated and the clinic recovered into it by the documented commands."""
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    from tests.support.database import scratch_database

    beta = committed["beta"]
    backup_create(clinic=beta.clinic, backup_type="manual")
    original = table_hashes("beta", exclude_prefix="-")
    database = django_settings.DATABASES["default"]
    with scratch_database() as fresh:
        url = f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/{fresh}"
        environment = os.environ | {
            "DATABASE_URL": url,
            "BACKUP_LOCAL_ROOT": str(settings.BACKUP_LOCAL_ROOT),
            "BACKUP_AGE_IDENTITY_FILE": str(age_key),
            "BACKUP_STORAGE_BACKEND": "local",
        }

        def manage(*arguments: str) -> str:
            result = subprocess.run(
                [sys.executable, "manage.py", *arguments], env=environment, capture_output=True, text=True, timeout=300
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        manage("migrate_schemas", "--shared", "--verbosity=0")
        assert "backup-sql-beta-" in manage("restore_clinic_from_storage", "beta", "--list")
        manage("restore_clinic_from_storage", "beta")

        recovered = table_hashes("beta", dbname=fresh, exclude_prefix="-")
        data = {t: h for t, h in recovered.items() if not t.startswith("backups_")}
        assert data == {t: h for t, h in original.items() if not t.startswith("backups_")}
        assert int(recovered["backups_backuprecord"].split(":")[0]) == 1
        assert int(recovered["backups_backuprestore"].split(":")[0]) == 1


def test_restore_drill_gives_every_clinic_its_line_whatever_failed_before(committed, settings, capsys):
    import json

    from django.core.management import CommandError

    alfa_record = backup_create(clinic=committed["alfa"].clinic, backup_type="manual")
    backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    # alfa's manifest lost its row counts: an unexpected (non-BackupError) failure.
    manifest_path = settings.BACKUP_LOCAL_ROOT / alfa_record.manifest_path
    manifest = json.loads(manifest_path.read_text())
    del manifest["row_counts"]
    manifest_path.write_text(json.dumps(manifest))

    with pytest.raises(CommandError, match="1 clínica"):
        call_command("restore_drill", "alfa", "beta")
    captured = capsys.readouterr()
    assert "❌ alfa: error inesperado (KeyError)" in captured.err
    assert "✅ beta" in captured.out
    assert not [name for name in schemas() if "_drill_" in name]


def test_restore_drill_refuses_a_schema_that_is_not_a_clinic(committed, capsys):
    from django.core.management import CommandError

    backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    with pytest.raises(CommandError, match="Clínicas desconocidas: nadie"):
        call_command("restore_drill", "beta", "nadie")
    assert "✅" not in capsys.readouterr().out  # nothing drilled: the operator's list was wrong


def test_a_server_fault_fails_the_restore_job_with_the_admins_message_and_the_detail_only_in_the_log(
    committed, settings, tmp_path, caplog
):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    settings.BACKUP_PG_BIN_DIR = str(tmp_path / "no-psql-here")  # no psql to restore with
    client = alfa.admin_client()
    before = table_hashes("alfa")

    response = client.post(RESTORE_URL, {"backup_id": record.pk}, format="json")

    assert response.status_code == 202  # a job (run in the test's process here)
    error = job_after(response, "alfa").error
    assert "error del servidor" in error and str(tmp_path) not in error and "psql" not in error
    assert str(tmp_path) in caplog.text  # the operator's detail
    assert table_hashes("alfa") == before
    with schema_context("alfa"):
        failed = BackupRestore.objects.get()
    assert failed.status == "failed" and str(tmp_path) not in failed.error


def auth_links(schema: str) -> dict[str, set]:
    """Who is in which group, and which permissions groups and users hold, by name."""
    from django.contrib.auth.models import Group

    from apps.users.models import User

    with schema_context(schema):
        return {
            "groups": set(Group.objects.values_list("name", "permissions__codename")),
            "members": set(User.groups.through.objects.values_list("user__email", "group__name")),
            "direct": set(User.user_permissions.through.objects.values_list("user__email", "permission__codename")),
        }


def test_json_round_trip_keeps_groups_permissions_and_their_links(committed, settings, tmp_path):
    from django.contrib.auth.models import Group, Permission

    alfa = committed["alfa"]
    settings.BACKUP_PG_BIN_DIR = str(tmp_path / "no-pg-dump")
    try:
        with schema_context("alfa"):
            group = Group.objects.create(name="Recepción y caja")
            group.permissions.add(*Permission.objects.filter(codename__in=["view_professional", "add_payment"]))
            alfa.staff.groups.add(group)
            alfa.staff.user_permissions.add(Permission.objects.get(codename="change_appointment"))
        before = auth_links("alfa")
        assert before["members"] == {(alfa.staff.email, "Recepción y caja")}
        record = backup_create(clinic=alfa.clinic, backup_type="manual")
        assert record.format == "json" and record.status == "succeeded"
        with schema_context("alfa"):
            Group.objects.all().delete()
            alfa.staff.user_permissions.clear()

        restore = backup_restore(clinic=alfa.clinic, record=record)

        assert restore.status == "succeeded"
        assert auth_links("alfa") == before
    finally:
        with schema_context("alfa"):
            Group.objects.all().delete()
            alfa.staff.user_permissions.clear()


def test_restore_drill_of_a_json_backup_matches_its_manifest(committed, settings, tmp_path, capsys):
    settings.BACKUP_PG_BIN_DIR = str(tmp_path / "no-pg-dump")
    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    assert record.format == "json"
    call_command("restore_drill", "beta")
    assert "✅ beta" in capsys.readouterr().out


def test_a_restore_right_after_another_in_the_same_second_keeps_both_previous_states(committed):
    """Restores of one clinic run one after another (the clinic's lock), and a small
    clinic's can end within the second the one before ended: the state each set
    aside must not need the other's name. (Stand-ins for the earlier restores'
    previous schemas cover every second this restore could swap in.)"""
    from datetime import timedelta

    from django.utils import timezone

    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    now = timezone.now()
    taken = [f"alfa_prev_{now + timedelta(seconds=offset):%Y%m%d%H%M%S}" for offset in range(-1, 300)]
    with connection.cursor() as cursor:
        cursor.execute("".join(f'CREATE SCHEMA "{name}";' for name in taken))
    try:
        restore = backup_restore(clinic=alfa.clinic, record=record)
        assert restore.status == "succeeded"
        assert restore.previous_schema.startswith("alfa_prev_") and restore.previous_schema not in taken
        assert restore.previous_schema in schemas()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("".join(f'DROP SCHEMA IF EXISTS "{name}";' for name in taken))
