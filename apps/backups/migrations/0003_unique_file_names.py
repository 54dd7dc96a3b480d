"""One name, one backup: records that shared a name with a later one (two
backups in the same second, before names were claimed in the database) are
marked failed and detached from the object, which only the last of them wrote."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, Max

SHARED_NAME_ERROR = "Otro backup del mismo segundo tomó su nombre y sobrescribió su archivo."


def shared_names_detach(apps, schema_editor):
    BackupRecord = apps.get_model("backups", "BackupRecord")
    shared = (
        BackupRecord.objects.exclude(file_name="")
        .values("file_name")
        .annotate(records=Count("id"), newest=Max("id"))
        .filter(records__gt=1)
    )
    for group in shared:
        older = BackupRecord.objects.filter(file_name=group["file_name"]).exclude(pk=group["newest"])
        for record in older:
            # No path left: cleaning this record up must not delete the object the newest one owns.
            record.file_name = f"{record.file_name}-sobrescrito-{record.pk}"
            record.status, record.error = "failed", SHARED_NAME_ERROR
            record.file_path = record.manifest_path = ""
            record.save(update_fields=["file_name", "status", "error", "file_path", "manifest_path"])


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0002_restores_and_schedule_slots"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(shared_names_detach, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="backuprecord",
            constraint=models.UniqueConstraint(
                condition=models.Q(("file_name", ""), _negated=True), fields=("file_name",), name="backup_file_name_unique"
            ),
        ),
    ]
