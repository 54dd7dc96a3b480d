"""Restoring a clinic: round trips, atomicity, history, tokens, migrations."""

import io
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from apps.backups.errors import RestoreError
from apps.backups.models import BackupDownload, BackupRecord, BackupRestore
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


def test_restore_by_backup_id_brings_back_every_row_and_sequences_continue(committed):
    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    before = table_hashes("alfa")
    change_clinic_data("alfa")
    assert table_hashes("alfa") != before

    response = alfa.admin_client().post(RESTORE_URL, {"backup_id": record.pk}, format="json")

    assert response.status_code == 200, response.content
    info = response.json()["restore_info"]
    assert info["status"] == "succeeded" and info["backup_id"] == record.pk
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
    assert client.post(RESTORE_URL, {"backup_id": record.pk}, format="json").status_code == 200
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

    confirmed = client.post(RESTORE_URL, {"backup_id": record.pk, "password": PASSWORD}, format="json")
    assert confirmed.status_code == 200, confirmed.content
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
    assert failed.status == "failed" and "psql" in failed.error


def test_a_killed_psql_leaves_the_clinic_exactly_as_before(committed, settings, tmp_path):
    from apps.backups.engine.pg_clients import find_client, server_major

    alfa = committed["alfa"]
    record = backup_create(clinic=alfa.clinic, backup_type="manual")
    change_clinic_data("alfa")
    before = table_hashes("alfa")
    real_psql = find_client("psql", min_major=server_major(connection)).path
    pg_client_wrap(
        settings,
        tmp_path / "bin",
        "psql",
        real_psql,
        f"""
{real_psql} "$@" &
child=$!
sleep 0.3
kill -KILL $child
exit 137
""",
    )
    with pytest.raises(RestoreError):
        backup_restore(clinic=alfa.clinic, record=record)
    assert table_hashes("alfa") == before


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


def test_json_backup_restores_in_one_transaction(committed, settings, tmp_path):
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

    assert response.status_code == 500
    assert "checksum" in response.json()["error"]
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
