import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from apps.backups.models import BackupRecord


def test_backup_clinics_backs_up_the_named_clinic_and_prints_progress(committed, capsys):
    call_command("backup_clinics", "beta")
    output = capsys.readouterr().out
    assert "📦 Iniciando backup para: Clínica Beta Óptima..." in output
    assert "   -> Subido exitosamente a almacenamiento local: backup-sql-beta-" in output
    with schema_context("beta"):
        assert BackupRecord.objects.get().status == "succeeded"
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()


def test_backup_clinics_all_covers_every_clinic_but_public(committed, capsys):
    call_command("backup_clinics", "--all")
    for schema in ("alfa", "beta"):
        with schema_context(schema):
            assert BackupRecord.objects.filter(status="succeeded").count() == 1


def test_backup_clinics_refuses_unknown_clinics_and_public(committed):
    with pytest.raises(CommandError, match="desconocidas: nadie"):
        call_command("backup_clinics", "nadie")
    with pytest.raises(CommandError, match="desconocidas: public"):
        call_command("backup_clinics", "public")
    with pytest.raises(
        CommandError, match=r"^Indica qué clínicas respaldar: sus esquemas \(p. ej. bienestar\) o --all.$"
    ):
        call_command("backup_clinics")
    with pytest.raises(CommandError, match="no ambos"):
        call_command("backup_clinics", "alfa", "--all")


def test_backup_clinics_reports_failures_with_a_nonzero_exit(committed, settings, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings.BACKUP_LOCAL_ROOT = blocker / "bucket"
    with pytest.raises(CommandError, match="1 backup"):
        call_command("backup_clinics", "beta")


@pytest.mark.parametrize("schema", ["nope", "public"])
def test_restore_drill_of_an_unknown_clinic_or_public_is_an_error(committed, schema, capsys):
    with pytest.raises(CommandError, match=f"Clínicas desconocidas: {schema}"):
        call_command("restore_drill", schema)
    assert capsys.readouterr().out == ""


def _manage(*arguments: str):
    import subprocess
    import sys

    from django.conf import settings

    return subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["restore_backup"], "error: faltan argumentos obligatorios: backup_id, --clinic"),
        (["run_scheduled_backups", "--workers", "x"], "error: argumento --workers: no es un número entero: 'x'"),
        (["backup_status", "--nope"], "error: argumentos no reconocidos: --nope"),
    ],
)
def test_argument_errors_are_in_spanish(arguments, expected):
    result = _manage(*arguments)
    assert result.returncode == 2 and expected in result.stderr and result.stderr.startswith("uso: ")


def test_help_is_in_spanish():
    result = _manage("cleanup_old_backups", "--help")
    assert result.returncode == 0
    for english in ("usage:", "options:", "show this help", "Verbosity level", "Raise on CommandError"):
        assert english not in result.stdout
    assert "opciones:" in result.stdout and "Muestra esta ayuda y termina." in result.stdout
