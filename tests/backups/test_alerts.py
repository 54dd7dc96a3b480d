"""Operators' alerts, received by a real SMTP server (aiosmtpd) and a real HTTP
webhook receiver on loopback, from real failing and recovering backups."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.backups.alerts import safe_detail
from apps.backups.engine.naming import validate_schema_name
from apps.backups.models import BackupRecord
from apps.backups.restore.swap import backup_restore
from apps.backups.services import backup_create
from apps.tenants.models import BackupAlertState, Clinic, ScheduledBackupClaim
from config.env import ConfigurationError, email_settings
from tests.backups.conftest import stored_object_tamper
from tests.backups.monitoring.test_status import HEALTH_URL, platform  # noqa: F401 (fixture)
from tests.support.receivers import SmtpServer, WebhookReceiver

NOW = datetime(2025, 11, 25, 3, 0, tzinfo=UTC)  # a Tuesday
OPERATORS = ["ops@plataforma.test", "guardia@plataforma.test"]


@pytest.fixture
def receivers(settings):
    with SmtpServer() as smtp, WebhookReceiver() as hook:
        for name, value in email_settings(f"smtp://127.0.0.1:{smtp.port}").items():
            setattr(settings, name, value)
        settings.BACKUP_ALERT_EMAILS = OPERATORS
        settings.BACKUP_ALERT_WEBHOOK_URL = hook.url
        settings.BACKUP_ALERT_REPEAT_HOURS = 1
        settings.BACKUP_ALERT_CLINIC_ADMINS = False
        yield smtp, hook


@pytest.fixture
def sched(committed):
    BackupAlertState.objects.all().delete()
    yield committed
    BackupAlertState.objects.all().delete()
    ScheduledBackupClaim.objects.all().delete()
    Clinic.objects.filter(schema_name__in=["alfa", "beta"]).update(
        backup_schedule="disabled",
        last_backup_at=None,
        backup_failures=0,
        backup_retry_at=None,
        backup_last_error="",
        backup_last_attempt_at=None,
    )


def run(now):
    call_command("run_scheduled_backups", "--now", now.isoformat())


def subjects(smtp) -> list[str]:
    return [" ".join(str(message["Subject"]).split()) for message in smtp.messages]  # unfolded


def test_failure_alerts_once_then_after_n_hours_then_recovery_and_health(
    sched, receivers, settings, real_pg_dump, fake_pg_dump
):
    smtp, hook = receivers
    # pg_dump dies mid-stream for alfa only; its error output carries a password-like token.
    fake_pg_dump(
        f"""
case "$*" in *--schema=alfa*) {real_pg_dump} "$@" | head -c 5000; echo "fallo password=s3creto" >&2; exit 1;; esac
exec {real_pg_dump} "$@"
"""
    )
    Clinic.objects.filter(schema_name="alfa").update(backup_schedule="daily")

    with pytest.raises(CommandError):
        run(NOW)  # first failure: alerted; alfa is also overdue since 00:00 (grace 2 h): health degraded
    assert subjects(smtp) == [
        "[PsicoAdmin] Backup automático fallido: Clínica Alfa Ñandú (alfa)",
        "[PsicoAdmin] Backups atrasados: 1 clínica(s)",
    ]
    first = smtp.messages[0]
    assert sorted(smtp.envelopes[0][1]) == sorted(OPERATORS)
    body = first.get_content()
    assert "El backup automático de Clínica Alfa Ñandú (esquema alfa) falló." in body
    assert "Fallos seguidos: 1" in body and "Próximo intento: 2025-11-25 03:05 UTC" in body
    assert "s3creto" not in body and "password=***" in body
    assert "- Clínica Alfa Ñandú (alfa), daily: falta desde 2025-11-25 00:00 UTC" in smtp.messages[1].get_content()
    assert [post["text"].splitlines()[0] for post in hook.posts] == [
        "*Backup automático fallido: Clínica Alfa Ñandú (alfa)*",
        "*Backups atrasados: 1 clínica(s)*",
    ]

    for minutes in (5, 15, 35):  # still failing, retried with back-off: no alert every time
        with pytest.raises(CommandError):
            run(NOW + timedelta(minutes=minutes))
    assert len(smtp.messages) == 2 and len(hook.posts) == 2

    with pytest.raises(CommandError):
        run(NOW + timedelta(minutes=75))  # an hour after the first alert and still failing
    assert subjects(smtp)[2:] == ["[PsicoAdmin] Backup automático fallido: Clínica Alfa Ñandú (alfa)"]
    assert "sigue fallando" in smtp.messages[2].get_content() and "Fallos seguidos: 5" in smtp.messages[2].get_content()

    settings.BACKUP_PG_BIN_DIR = ""  # fixed
    run(NOW + timedelta(minutes=155))
    assert subjects(smtp)[3:] == [
        "[PsicoAdmin] Backups recuperados: Clínica Alfa Ñandú (alfa)",
        "[PsicoAdmin] Backups al día",
    ]
    assert len(hook.posts) == 5
    run(NOW + timedelta(minutes=156))  # nothing changed: nothing said
    assert len(smtp.messages) == 5 and len(hook.posts) == 5
    # Nothing clinical and no secret in anything sent.
    everything = "\n".join(m.get_content() for m in smtp.messages) + str(hook.posts)
    assert "s3creto" not in everything and "secreto" not in everything and "clave-de-prueba" not in everything


def test_the_cron_with_a_broker_also_tells_of_a_degraded_health_when_nothing_is_due(sched, receivers, broker):
    """With Celery the cron only enqueues; a clinic backing off after failures is not due
    but is overdue: the operators hear of it from that run, once."""
    smtp, _hook = receivers
    Clinic.objects.filter(schema_name="alfa").update(
        backup_schedule="daily",
        time_zone="UTC",
        last_backup_at=NOW - timedelta(days=2),
        backup_failures=6,
        backup_retry_at=NOW + timedelta(hours=1),
    )
    for minutes in (0, 1):
        run(NOW + timedelta(minutes=minutes))
    assert subjects(smtp) == ["[PsicoAdmin] Backups atrasados: 1 clínica(s)"]
    assert "fallos seguidos: 6" in smtp.messages[0].get_content()

    Clinic.objects.filter(schema_name="alfa").update(last_backup_at=NOW + timedelta(minutes=1), backup_failures=0)
    run(NOW + timedelta(minutes=2))
    assert subjects(smtp)[1:] == ["[PsicoAdmin] Backups al día"]


def test_health_polled_by_an_uptime_monitor_alerts_once_when_degraded_and_once_when_ok(
    platform,  # noqa: F811
    receivers,
):
    """No scheduler run in between: ``/health/backups/`` itself tells the operators."""
    smtp, hook = receivers
    BackupAlertState.objects.all().delete()  # whatever an earlier test left said
    health = {"HTTP_AUTHORIZATION": "Bearer token-de-salud"}
    now = timezone.now()
    Clinic.objects.filter(schema_name="alfa").update(
        backup_schedule="daily", time_zone="UTC", last_backup_at=now - timedelta(days=3)
    )
    for _poll in range(3):
        assert platform.get(HEALTH_URL, **health).status_code == 503
    assert subjects(smtp) == ["[PsicoAdmin] Backups atrasados: 1 clínica(s)"]
    assert "- Clínica Alfa Ñandú (alfa), daily: falta desde" in smtp.messages[0].get_content()
    assert [post["text"].splitlines()[0] for post in hook.posts] == ["*Backups atrasados: 1 clínica(s)*"]

    Clinic.objects.filter(schema_name="alfa").update(last_backup_at=now)
    for _poll in range(2):
        assert platform.get(HEALTH_URL, **health).status_code == 200
    assert subjects(smtp)[1:] == ["[PsicoAdmin] Backups al día"]
    assert len(hook.posts) == 2


def test_a_clinic_admins_copy_of_a_backup_failure_leaves_out_the_operators_pointers(
    sched, receivers, settings, tmp_path
):
    smtp, hook = receivers
    settings.BACKUP_ALERT_CLINIC_ADMINS = True
    (tmp_path / "not-a-folder").write_text("")
    settings.BACKUP_LOCAL_ROOT = tmp_path / "not-a-folder" / "backups"  # the storage cannot write
    Clinic.objects.filter(schema_name="alfa").update(backup_schedule="daily")
    with pytest.raises(CommandError):
        run(NOW)
    copies = {
        tuple(sorted(to)): message.get_content()
        for (_sender, to), message in zip(smtp.envelopes, smtp.messages, strict=True)
        if " ".join(str(message["Subject"]).split()).startswith("[PsicoAdmin] Backup automático fallido")
    }
    operators, admins = copies[tuple(sorted(OPERATORS))], copies[("admin@alfa.com",)]
    for body in (operators, admins):
        assert "El backup automático de Clínica Alfa Ñandú (esquema alfa) falló." in body
    assert "Estado de todas las clínicas: /admin/" in operators
    assert "Estado de todas las clínicas: /admin/" in hook.posts[0]["text"]
    assert "/admin/" not in admins and "backup_status" not in admins


def test_clinic_admins_get_their_own_clinics_alerts_when_configured(sched, receivers, settings):
    smtp, _hook = receivers
    settings.BACKUP_ALERT_CLINIC_ADMINS = True
    call_command_drill_expect_failure("beta")  # beta has no backup stored: the drill fails
    assert subjects(smtp) == ["[PsicoAdmin] Simulacro de restauración fallido: Clínica Beta Óptima (beta)"] * 2
    recipients = sorted(tuple(sorted(to)) for _sender, to in smtp.envelopes)
    assert recipients == [("admin@beta.com",), tuple(sorted(OPERATORS))]  # never alfa's admin
    assert "No hay backups en el almacenamiento." in smtp.messages[0].get_content()


def test_the_webhook_gets_a_clinic_name_with_slack_control_characters_as_written(sched, receivers):
    """Slack reads ``<…>`` as a link and ``&`` as an entity: both are escaped; email is plain text."""
    smtp, hook = receivers
    Clinic.objects.filter(schema_name="beta").update(name="Salud & Mente <Centro>")
    try:
        call_command_drill_expect_failure("beta")
    finally:
        Clinic.objects.filter(schema_name="beta").update(name="Clínica Beta Óptima")
    assert hook.posts[0]["text"].splitlines()[0] == (
        "*Simulacro de restauración fallido: Salud &amp; Mente &lt;Centro&gt; (beta)*"
    )
    assert hook.headers[0]["Content-Type"] == "application/json; charset=utf-8"
    assert subjects(smtp) == ["[PsicoAdmin] Simulacro de restauración fallido: Salud & Mente <Centro> (beta)"]


def test_a_drill_whose_rows_do_not_match_the_manifest_alerts_with_the_tables_counts(sched, receivers, settings):
    import json

    smtp, hook = receivers
    record = backup_create(clinic=Clinic.objects.get(schema_name="beta"), backup_type="manual")
    manifest_path = settings.BACKUP_LOCAL_ROOT / record.manifest_path
    manifest = json.loads(manifest_path.read_text())
    expected = manifest["row_counts"]["payment_system_payment"]
    manifest["row_counts"]["payment_system_payment"] = expected + 1
    manifest_path.write_text(json.dumps(manifest))

    call_command_drill_expect_failure("beta")

    assert subjects(smtp) == ["[PsicoAdmin] Simulacro de restauración fallido: Clínica Beta Óptima (beta)"]
    body = smtp.messages[0].get_content()
    assert record.file_name in body and "ese backup podría no servir" in body
    assert f"Motivo: payment_system_payment: manifiesto {expected + 1}, restaurado {expected}" in body
    assert hook.posts[0]["text"].startswith("*Simulacro de restauración fallido: Clínica Beta Óptima (beta)*")


def test_a_lost_clinics_failed_recovery_alerts_the_operators_and_no_platform_user_as_its_admin(
    sched, receivers, settings, tmp_path
):
    """The clinic's schema is gone: its admins cannot be looked up there, and the search
    path must not fall through to the platform's own users (superusers are clinic_admin)."""
    from apps.backups.engine.pg_clients import find_client, server_major
    from apps.backups.restore.recovery import clinic_recover_from_storage
    from apps.tenants.services import clinic_create
    from apps.users.models import User
    from tests.backups.conftest import pg_client_wrap

    smtp, _hook = receivers
    settings.BACKUP_ALERT_CLINIC_ADMINS = True
    operator = User.objects.create_superuser("operador@psicoadmin.test", "clave-operador-123")
    delta = clinic_create(schema_name="delta", name="Clínica Delta", domain="delta.test.localhost")
    try:
        with schema_context("delta"):
            User.objects.create_user("admin@delta.com", "clave-de-prueba-123", role=User.Role.CLINIC_ADMIN)
        backup_create(clinic=delta, backup_type="manual")
        delta.domains.all().delete()
        delta.delete(force_drop=True)  # the disaster: only the bucket is left
        real_psql = find_client("psql", min_major=server_major(connection)).path
        pg_client_wrap(settings, tmp_path / "bin", "psql", real_psql, "echo 'psql: conexión rechazada' >&2; exit 2\n")

        with pytest.raises(Exception, match="psql falló"):
            clinic_recover_from_storage(schema_name="delta")

        assert subjects(smtp) == ["[PsicoAdmin] Restauración fallida: Clínica Delta (delta)"]
        assert [sorted(to) for _sender, to in smtp.envelopes] == [sorted(OPERATORS)]
    finally:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:  # its relations live in clinic schemas: no ORM cascade here
            cursor.execute("DELETE FROM users_user WHERE id = %s", [operator.pk])
        for clinic in Clinic.objects.filter(schema_name="delta"):
            clinic.domains.all().delete()
            clinic.delete(force_drop=True)


def call_command_drill_expect_failure(schema: str) -> None:
    with pytest.raises(CommandError):
        call_command("restore_drill", schema)


def test_failed_restore_alerts(sched, receivers, settings):
    smtp, hook = receivers
    clinic = Clinic.objects.get(schema_name="beta")
    record = backup_create(clinic=clinic, backup_type="manual")
    stored_object_tamper(settings.BACKUP_LOCAL_ROOT, record, at=0.5)
    with pytest.raises(Exception, match="checksum"):
        backup_restore(clinic=clinic, record=record)
    assert subjects(smtp) == ["[PsicoAdmin] Restauración fallida: Clínica Beta Óptima (beta)"]
    body = smtp.messages[0].get_content()
    assert record.file_name in body and "La clínica quedó como estaba." in body
    assert hook.posts[0]["text"].startswith("*Restauración fallida: Clínica Beta Óptima (beta)*")
    with schema_context(validate_schema_name("beta")):
        assert BackupRecord.objects.filter(pk=record.pk).exists()


# Statements psql runs before the dump (``-c`` comes first), each failing on a real
# clinical value the way a replay or a migration meeting bad data does; PostgreSQL
# quotes the value in its message.
VALUE_QUOTING_FAILURES = {
    "duplicate key": (
        "CREATE TEMP TABLE t (reason text UNIQUE); "
        "INSERT INTO t SELECT reason_for_consultation FROM beta.clinical_history_clinicalrecord ORDER BY id LIMIT 1; "
        "INSERT INTO t SELECT reason_for_consultation FROM beta.clinical_history_clinicalrecord ORDER BY id LIMIT 1",
        "Key (reason)=(…) already exists.",
    ),
    "failing row": (
        "CREATE TEMP TABLE t (reason text CHECK (reason IS NULL)); "
        "INSERT INTO t SELECT reason_for_consultation FROM beta.clinical_history_clinicalrecord ORDER BY id LIMIT 1",
        "Failing row contains (…).",
    ),
    "invalid input": (
        "SELECT reason_for_consultation::date FROM beta.clinical_history_clinicalrecord ORDER BY id LIMIT 1",
        'invalid input syntax for type date: "…"',
    ),
}


@pytest.mark.parametrize("failure", VALUE_QUOTING_FAILURES)
def test_a_restore_failing_on_clinical_values_names_the_fault_without_them(
    failure, sched, receivers, settings, tmp_path, real_pg_dump, caplog
):
    from apps.backups.engine.pg_clients import find_client, server_major
    from tests.backups.conftest import pg_client_wrap

    smtp, hook = receivers
    clinic = Clinic.objects.get(schema_name="beta")
    record = backup_create(clinic=clinic, backup_type="manual")
    with schema_context(validate_schema_name("beta")):
        from apps.clinical_history.models import ClinicalRecord

        value = ClinicalRecord.objects.order_by("id").values_list("reason_for_consultation", flat=True).first()
    assert value
    statement, kept = VALUE_QUOTING_FAILURES[failure]
    real_psql = find_client("psql", min_major=server_major(connection)).path
    pg_client_wrap(settings, tmp_path / "bin", "psql", real_psql, f'exec {real_psql} -c "{statement}" "$@"\n')

    with pytest.raises(Exception, match="psql falló"):
        backup_restore(clinic=clinic, record=record)

    assert subjects(smtp) == ["[PsicoAdmin] Restauración fallida: Clínica Beta Óptima (beta)"]
    body = smtp.messages[0].get_content()
    assert kept in body  # what failed, where: still there for the operator
    for told in (body, str(hook.posts), caplog.text):  # PostgreSQL shortens a failing row to its start
        assert value[:30] not in told


def test_safe_detail_removes_the_values_of_a_real_integrity_error(sched):
    """An unexpected error reaches alerts as its repr() (``Error inesperado: …``),
    where PostgreSQL's DETAIL quotes the row."""
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE t (note text UNIQUE, score int NOT NULL)")
        cursor.execute("INSERT INTO t VALUES ('Refiere insomnio desde la separación', 1)")
        cursor.execute("INSERT INTO t VALUES ('Refiere insomnio desde la separación', 2)")
    detail = safe_detail(f"Error inesperado: {caught.value!r}")
    assert "insomnio" not in detail and "Key (note)=(…) already exists." in detail
    with pytest.raises(IntegrityError) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE u (note text, score int NOT NULL)")
        cursor.execute("INSERT INTO u VALUES ('Ideación autolítica pasiva', NULL)")
    detail = safe_detail(f"Error inesperado: {caught.value!r}")
    assert "autolítica" not in detail and "Failing row contains (…)" in detail


def test_an_unreachable_smtp_server_or_webhook_never_fails_the_work(sched, settings, caplog):
    for name, value in email_settings("smtp://127.0.0.1:9").items():  # nothing listens on port 9
        setattr(settings, name, value)
    settings.BACKUP_ALERT_EMAILS = OPERATORS
    settings.BACKUP_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/hooks/secreto"
    call_command_drill_expect_failure("beta")
    assert "No se pudo enviar el aviso por correo" in caplog.text
    assert "No se pudo enviar el aviso al webhook" in caplog.text and "secreto" not in caplog.text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback only
def test_email_logs_in_with_the_account_in_email_url_and_a_refused_login_is_logged_without_it(sched, settings, caplog):
    settings.BACKUP_ALERT_EMAILS = OPERATORS
    settings.BACKUP_ALERT_WEBHOOK_URL = ""
    with SmtpServer(accounts={"alertas@psico.es": "cl@ve segura"}) as smtp:
        url = f"smtp://alertas%40psico.es:cl%40ve%20segura@127.0.0.1:{smtp.port}"
        for name, value in email_settings(url).items():
            setattr(settings, name, value)
        call_command_drill_expect_failure("beta")
        assert smtp.logins == [("alertas@psico.es", "cl@ve segura")]
        assert subjects(smtp) == ["[PsicoAdmin] Simulacro de restauración fallido: Clínica Beta Óptima (beta)"]

        for name, value in email_settings(url.replace("segura", "caducada")).items():
            setattr(settings, name, value)
        call_command_drill_expect_failure("beta")  # the drill's failure is still reported by the command
        assert len(smtp.messages) == 1
    assert "No se pudo enviar el aviso por correo" in caplog.text
    assert "caducada" not in caplog.text and "segura" not in caplog.text


def test_email_settings_from_an_smtp_url():
    assert email_settings("")["EMAIL_BACKEND"].endswith("dummy.EmailBackend")
    config = email_settings("smtp://alertas%40psico.es:cl%40ve@smtp.example.com?starttls=true")
    assert config == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "alertas@psico.es",
        "EMAIL_HOST_PASSWORD": "cl@ve",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 10,
    }
    ssl = email_settings("smtps://u:p@smtp.example.com")
    assert (ssl["EMAIL_PORT"], ssl["EMAIL_USE_SSL"], ssl["EMAIL_USE_TLS"]) == (465, True, False)
    assert email_settings("smtp://relay:2525")["EMAIL_PORT"] == 2525
    for bad in ("http://smtp.example.com", "smtp://", "smtp://host:puerto"):
        with pytest.raises(ConfigurationError, match="EMAIL_URL"):
            email_settings(bad)


def test_safe_detail_masks_credentials_and_trims():
    text = "conexión a postgres://psico:Sup3r@db.example.com:5432/psico rechazada; token=abc123 " + "x" * 900
    detail = safe_detail(text)
    assert "Sup3r" not in detail and "abc123" not in detail and "postgres://***@db.example.com" in detail
    assert len(detail) == 500 and detail.endswith("…")
    assert timezone.now()  # (time zone aware settings in use)
