"""Schemas left by interrupted restores and drills (``_in_``, ``_park_``,
``_drill_``) are reported by backup_status and listed by cleanup_old_backups,
which drops them after BACKUP_RESTORE_KEEP_DAYS like the ``_prev_`` ones."""

import json
from datetime import timedelta

from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_exists


def test_interrupted_restore_schemas_are_reported_listed_and_dropped_after_the_keep_period(committed, settings, capsys):
    settings.BACKUP_RESTORE_KEEP_DAYS = 7
    now = timezone.now()
    old, young = f"{now - timedelta(days=8):%Y%m%d%H%M%S}", f"{now - timedelta(hours=2):%Y%m%d%H%M%S}"
    names = {
        "old_park": f"alfa_park_{old}_ab12",  # a killed restore of an older version
        "old_drill": f"beta_drill_{old}_cd34",
        "young_in": f"alfa_in_{young}_ef56",  # a JSON restore killed two hours ago
        "young_prev": f"beta_prev_{young}",  # the state before a restore: kept on purpose
    }
    with connection.cursor() as cursor:
        for name in names.values():
            cursor.execute(f'CREATE SCHEMA "{name}"')
    try:
        call_command("backup_status")
        out = capsys.readouterr().out
        assert "Esquemas dejados por restauraciones o simulacros interrumpidos" in out
        for key in ("old_park", "old_drill", "young_in"):
            assert names[key] in out
        assert names["young_prev"] not in out
        call_command("backup_status", "--json")
        reported = {item["schema"]: item for item in json.loads(capsys.readouterr().out)["restore_schemas"]}
        assert reported[names["young_in"]]["interrupted"] and reported[names["young_in"]]["clinic"] == "alfa"
        assert reported[names["old_park"]]["kind"] == "park" and not reported[names["young_prev"]]["interrupted"]

        call_command("cleanup_old_backups", "--dry-run")
        assert all(schema_exists(name) for name in names.values())
        call_command("cleanup_old_backups")
        out = capsys.readouterr().out
        assert f"Borrado el esquema {names['old_park']} (dejado por una restauración interrumpida" in out
        assert f"Borrado el esquema {names['old_drill']}" in out
        assert f"Esquema {names['young_in']} (dejado por una restauración interrumpida; se conserva hasta" in out
        assert not schema_exists(names["old_park"]) and not schema_exists(names["old_drill"])
        assert schema_exists(names["young_in"]) and schema_exists(names["young_prev"])
    finally:
        with connection.cursor() as cursor:
            for name in names.values():
                cursor.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
