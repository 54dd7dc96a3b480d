"""cleanup_old_backups removes DDL cache entries no backup has used for
BACKUP_DDL_CACHE_KEEP_DAYS; a backup using an entry keeps it alive."""

from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from apps.backups.ddl_cache.models import SchemaDdl
from apps.backups.services import backup_create
from tests.backups.engine.test_copy_dump import manifest_of


def age_entries(days: int) -> None:
    SchemaDdl.objects.update(last_used_at=timezone.now() - timedelta(days=days))


def cleanup(*arguments: str, capsys) -> str:
    call_command("cleanup_old_backups", *arguments)
    return capsys.readouterr().out


def test_an_unused_entry_goes_a_used_one_stays_and_the_next_backup_refills(committed, settings, capsys):
    settings.BACKUP_DDL_CACHE_KEEP_DAYS = 30
    beta = committed["beta"].clinic
    SchemaDdl.objects.all().delete()
    backup_create(clinic=beta, backup_type="manual")
    (entry,) = SchemaDdl.objects.all()
    label = str(entry)

    # Used by a backup: its last use moves to today, and cleanup keeps it.
    age_entries(40)
    record = backup_create(clinic=beta, backup_type="manual")
    assert manifest_of(record, settings)["dump_method"]["ddl_cache"] == "hit"
    assert SchemaDdl.objects.get().last_used_at > timezone.now() - timedelta(minutes=5)
    assert label not in cleanup(capsys=capsys)
    assert SchemaDdl.objects.count() == 1

    # Young enough: kept.
    age_entries(29)
    assert label not in cleanup(capsys=capsys)
    assert SchemaDdl.objects.count() == 1

    # Unused for longer than the keep period: listed by a dry run, removed by a real one.
    age_entries(31)
    out = cleanup("--dry-run", capsys=capsys)
    assert f"Se borraría: {label} (DDL en caché sin usar desde el" in out
    assert SchemaDdl.objects.count() == 1
    out = cleanup(capsys=capsys)
    assert f"Borrado: {label}" in out and "1 DDL en caché borrados" in out
    assert not SchemaDdl.objects.exists()

    # The next backup of that structure pays one refill, and succeeds.
    record = backup_create(clinic=beta, backup_type="manual")
    assert manifest_of(record, settings)["dump_method"]["ddl_cache"] == "filled"
    assert SchemaDdl.objects.count() == 1
