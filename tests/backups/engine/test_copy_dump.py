"""The cached-DDL + COPY dump (engine/copy_dump.py) against the real PostgreSQL,
pg_dump and psql: it must be the backup pg_dump would have made, at a cost
that does not depend on the other clinics."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from apps.backups.ddl_cache.models import SchemaDdl
from apps.backups.ddl_cache.store import DatabaseDdlCache
from apps.backups.engine.copy_dump import METHOD_COPY, METHOD_PG_DUMP, sql_dump_stream
from apps.backups.engine.dumpers import pg_dump_stream
from apps.backups.engine.pg_clients import find_client, libpq_environment, server_major
from apps.backups.engine.snapshot import schema_snapshot
from apps.backups.models import BackupRecord
from apps.backups.services import backup_create, backup_open_plain
from apps.tenants.demo_data import demo_data_generate
from apps.tenants.services import clinic_clone, clinic_create, clinic_template_dump
from tests.support.database import scratch_database, table_hashes

RESTRICT_LINE = re.compile(rb"^\\(restrict|unrestrict) \S+$", re.MULTILINE)
TRICKY_TEXT = "línea 1\r\n\\N\n\\.\nañadido\tcon tabulador, comillas ' \" y barra \\ final"


@pytest.fixture(scope="module")
def fleet(clinics, django_db_blocker):
    """A template clinic with data, and a factory of clinics cloned from it."""
    created = []
    with django_db_blocker.unblock():
        template = clinic_create(schema_name="cp_tpl", name="Plantilla COPY", domain="cp-tpl.test.localhost")
        with schema_context("cp_tpl"):
            demo_data_generate(schema_name="cp_tpl", scale=0.05)
        template_sql = clinic_template_dump(template=template)

        def clone(schema_name: str):
            clinic = clinic_clone(
                template=template,
                template_sql=template_sql,
                schema_name=schema_name,
                name=f"Clínica {schema_name}",
                domain=f"{schema_name.replace('_', '-')}.test.localhost",
            )
            created.append(clinic)
            return clinic

        yield clone
        connection.set_schema_to_public()
        for clinic in [*created, template]:
            with schema_context(clinic.schema_name):
                BackupRecord.objects.all().delete()
            clinic.domains.all().delete()
            clinic.delete(force_drop=True)


def execute(statement: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def fetch(statement: str, params=None) -> list:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def pg_dump_client():
    return find_client("pg_dump", min_major=server_major(connection))


def read_all(output) -> bytes:
    parts = []
    while chunk := output.read(65536):
        parts.append(chunk)
    return b"".join(parts)


def engine_dump(schema_name: str, *, snapshot_id: str | None = None, sql_style: str = "copy"):
    """(plain dump, DumpMethod) through the engine, in a snapshot of its own if none is given."""
    client = pg_dump_client()
    if snapshot_id:
        with sql_dump_stream(
            client=client,
            schema_name=schema_name,
            sql_style=sql_style,
            snapshot_id=snapshot_id,
            ddl_cache=DatabaseDdlCache(),
        ) as (output, method):
            return read_all(output), method
    with schema_snapshot(schema_name) as snapshot:
        return engine_dump(schema_name, snapshot_id=snapshot.snapshot_id, sql_style=sql_style)


def stock_psql_replay(dump: bytes, dbname: str, folder: Path) -> None:
    """``psql -X -1 -v ON_ERROR_STOP=1 -f backup.sql``: the stock client, a file, nothing of ours."""
    path = folder / "backup.sql"
    path.write_bytes(dump)
    psql = find_client("psql", min_major=server_major(connection))
    environment = libpq_environment() | {"PGDATABASE": dbname}
    result = subprocess.run(
        [psql.path, "-X", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(path)],
        capture_output=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()


def schema_only(schema_name: str, dbname: str | None = None) -> bytes:
    """``pg_dump --schema-only`` of one schema, without its random \\restrict key."""
    environment = libpq_environment() | ({"PGDATABASE": dbname} if dbname else {})
    result = subprocess.run(
        [pg_dump_client().path, "--schema-only", "--no-owner", "--no-privileges", f"--schema={schema_name}"],
        capture_output=True,
        env=environment,
        check=True,
    )
    return RESTRICT_LINE.sub(b"", result.stdout)


def sequences(schema_name: str, dbname: str | None = None) -> dict[str, tuple[int, bool]]:
    import psycopg

    from apps.backups.engine.pg_clients import libpq_params

    params = libpq_params() | ({"dbname": dbname} if dbname else {})
    with psycopg.connect(**params) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = %s ORDER BY 1", [schema_name])
        values = {}
        for (name,) in cursor.fetchall():
            cursor.execute(f'SELECT last_value, is_called FROM "{schema_name}"."{name}"')
            values[name] = cursor.fetchone()
        return values


def restored_from(dump: bytes, folder: Path, schema_name: str, exclude_prefix: str = "backups_"):
    """(row hashes, sequences, schema-only DDL) of ``dump`` replayed into an empty database."""
    with scratch_database() as scratch:
        stock_psql_replay(dump, scratch, folder)
        return (
            table_hashes(schema_name, dbname=scratch, exclude_prefix=exclude_prefix),
            sequences(schema_name, scratch),
            schema_only(schema_name, scratch),
        )


def manifest_of(record: BackupRecord, settings) -> dict:
    return json.loads((Path(settings.BACKUP_LOCAL_ROOT) / record.manifest_path).read_text())


def plain_of(record: BackupRecord) -> bytes:
    with backup_open_plain(record=record) as chunks:
        return b"".join(chunks)


def make_tricky(schema_name: str) -> None:
    """Data that tests the COPY text format's escaping and types' text forms."""
    s = schema_name
    execute(
        f"UPDATE {s}.chat_message SET body = %s, sent_at = '2025-01-02 03:04:05.123456+00', read_at = NULL, "
        f'attachments = \'[{{"n": 123456789012345678901234567890.123456789, "e": 1e-300, "t": "ñ\\\\t"}}]\''
        f" WHERE id = (SELECT min(id) FROM {s}.chat_message)",
        [TRICKY_TEXT],
    )
    execute(f"UPDATE {s}.payment_system_payment SET amount = 12345678.90, details = '{{\"big\": 9007199254740993}}'")
    execute(f"INSERT INTO {s}.auth_group (name) VALUES (%s), (%s), (%s)", ["\\.", "\\N", "Ñandú\t\\\\ok"])
    execute(f"DELETE FROM {s}.django_admin_log")  # an empty table
    execute(f"SELECT setval('{s}.auth_permission_id_seq', 500, false)")  # is_called false, not the start


def test_the_dump_is_pg_dumps_own_text_and_restores_the_same_rows_and_sequences(fleet, committed, tmp_path):
    fleet("cp_rt")
    make_tricky("cp_rt")
    SchemaDdl.objects.all().delete()
    with schema_snapshot("cp_rt") as snapshot:
        filled, first = engine_dump("cp_rt", snapshot_id=snapshot.snapshot_id)
        ours, method = engine_dump("cp_rt", snapshot_id=snapshot.snapshot_id)
        with pg_dump_stream(
            client=pg_dump_client(), schema_name="cp_rt", sql_style="copy", snapshot_id=snapshot.snapshot_id
        ) as output:
            theirs = read_all(output)

    assert (first.method, first.ddl_cache) == (METHOD_COPY, "filled")
    assert (method.method, method.ddl_cache) == (METHOD_COPY, "hit")
    assert method.pg_dump_version == pg_dump_client().version
    # Byte for byte what pg_dump wrote of the same snapshot, but for the random \restrict key.
    assert RESTRICT_LINE.sub(b"", ours) == RESTRICT_LINE.sub(b"", theirs) == RESTRICT_LINE.sub(b"", filled)
    assert (b"\\restrict " in ours) == (b"\\restrict " in theirs)
    ours_rows, ours_sequences, ours_ddl = restored_from(ours, tmp_path, "cp_rt", exclude_prefix="\0")
    theirs_rows, theirs_sequences, theirs_ddl = restored_from(theirs, tmp_path, "cp_rt", exclude_prefix="\0")
    assert ours_rows == theirs_rows == table_hashes("cp_rt", exclude_prefix="\0")
    assert ours_sequences == theirs_sequences == sequences("cp_rt")
    assert ours_sequences["auth_permission_id_seq"] == (500, False)
    assert ours_ddl == theirs_ddl == schema_only("cp_rt")
    assert ours_rows["django_admin_log"].startswith("0:")
    body = fetch("SELECT body FROM cp_rt.chat_message ORDER BY id LIMIT 1")[0][0]
    assert body == TRICKY_TEXT


def test_a_backup_is_a_plain_file_stock_psql_replays_and_the_manifest_names_its_method(
    fleet, committed, settings, tmp_path
):
    clinic = fleet("cp_plain")
    make_tricky("cp_plain")
    record = backup_create(clinic=clinic, backup_type="manual")
    manifest = manifest_of(record, settings)

    assert manifest["dump_method"]["method"] == METHOD_COPY
    assert manifest["dump_method"]["ddl_pg_dump_version"] == manifest["pg_dump_version"] == record.pg_dump_version
    dump = plain_of(record)
    rows, _, ddl = restored_from(dump, tmp_path, "cp_plain")
    assert rows == table_hashes("cp_plain")
    assert ddl == schema_only("cp_plain")
    # The framing the row counter of the stream reads: one COPY block per table.
    blocks = re.findall(rb"^COPY cp_plain\.(\w+) \([^)]*\) FROM stdin;$", dump, re.MULTILINE)
    assert sorted(b.decode() for b in blocks) == sorted(manifest["row_counts"])


STRUCTURE_CHANGES = {
    "extra index": "cp_index",
    "extra column": "cp_column",
    "missing migration": "cp_missing",
    "odd table name": "cp_odd",
    "column named as the schema": "cp_named",
}


@pytest.mark.parametrize("change", list(STRUCTURE_CHANGES))
def test_a_clinic_whose_structure_differs_is_backed_up_faithfully(fleet, committed, settings, tmp_path, change):
    name = STRUCTURE_CHANGES[change]
    clinic = fleet(name)
    template_fingerprint = engine_dump("cp_tpl")[1].fingerprint
    if change == "extra index":
        execute(f"CREATE INDEX hecho_a_mano ON {name}.chat_message (sent_at DESC) WHERE read_at IS NULL")
    elif change == "extra column":
        execute(f"ALTER TABLE {name}.chat_message ADD COLUMN prioridad integer NOT NULL DEFAULT 3")
    elif change == "missing migration":
        call_command("migrate_schemas", "chat", "zero", schema_name=name, interactive=False, verbosity=0)
        connection.set_schema_to_public()
    elif change == "odd table name":
        execute(f'CREATE TABLE {name}."Notas \'raras\' \\ y más" (id int PRIMARY KEY, "texto libre" text)')
        execute(f"INSERT INTO {name}.\"Notas 'raras' \\ y más\" VALUES (1, %s)", [TRICKY_TEXT])
    else:
        execute(f"ALTER TABLE {name}.auth_group ADD COLUMN {name} text DEFAULT 'x'")
    record = backup_create(clinic=clinic, backup_type="manual")
    method = manifest_of(record, settings)["dump_method"]

    assert method["structure_fingerprint"] != template_fingerprint
    if change == "column named as the schema":
        # Its name is in its DDL where it is not the schema: no safe template, pg_dump itself.
        assert method["method"] == METHOD_PG_DUMP and "fuera de su papel de esquema" in method["reason"]
    else:
        assert (method["method"], method["ddl_cache"]) == (METHOD_COPY, "filled")
    rows, _, ddl = restored_from(plain_of(record), tmp_path, name)
    assert ddl == schema_only(name)
    assert rows == table_hashes(name)


def test_a_migration_changes_the_fingerprint_and_the_next_backup_carries_the_new_column(fleet, committed):
    fleet("cp_mig")
    call_command("migrate_schemas", "backups", "0001", schema_name="cp_mig", interactive=False, verbosity=0)
    connection.set_schema_to_public()
    before, old = engine_dump("cp_mig")
    assert old.method == METHOD_COPY and b"schedule_slot" not in before

    call_command("migrate_schemas", schema_name="cp_mig", interactive=False, verbosity=0)
    connection.set_schema_to_public()
    after, new = engine_dump("cp_mig")

    assert new.method == METHOD_COPY and new.fingerprint != old.fingerprint
    assert new.fingerprint == engine_dump("cp_tpl")[1].fingerprint  # the same structure as every clinic again
    assert b"schedule_slot character varying(40)" in after
    assert re.search(rb"^COPY cp_mig\.backups_backuprecord \([^)]*schedule_slot[^)]*\) FROM stdin;$", after, re.M)


def test_rows_written_while_the_dump_runs_are_not_in_it(fleet, committed):
    fleet("cp_snap")
    client = pg_dump_client()
    with schema_snapshot("cp_snap") as snapshot:
        with sql_dump_stream(
            client=client,
            schema_name="cp_snap",
            sql_style="copy",
            snapshot_id=snapshot.snapshot_id,
            ddl_cache=DatabaseDdlCache(),
        ) as (output, method):
            head = output.read(65536)  # the dump has started: DDL out, psql running
            execute("INSERT INTO cp_snap.auth_group (name) VALUES ('escrito durante el backup')")
            execute("UPDATE cp_snap.chat_message SET body = 'cambiado durante el backup'")
            rest = read_all(output)
    dump = head + rest
    assert method.method == METHOD_COPY
    assert b"escrito durante el backup" not in dump and b"cambiado durante el backup" not in dump
    assert fetch("SELECT count(*) FROM cp_snap.auth_group WHERE name = 'escrito durante el backup'") == [(1,)]


@pytest.mark.parametrize(
    ("kind", "statement", "name"),
    [
        ("view", "CREATE VIEW {s}.vista_pagos AS SELECT id, amount FROM {s}.payment_system_payment", b"vista_pagos"),
        (
            "function",
            "CREATE FUNCTION {s}.doble(x integer) RETURNS integer LANGUAGE sql AS 'SELECT x * 2'",
            b"doble(x integer)",
        ),
        (
            "trigger",
            "CREATE FUNCTION {s}.sello() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;"
            " CREATE TRIGGER sello BEFORE INSERT ON {s}.auth_group FOR EACH ROW EXECUTE FUNCTION {s}.sello()",
            b"CREATE TRIGGER sello",
        ),
        ("large object reference", "ALTER TABLE {s}.auth_group ADD COLUMN adjunto oid", b"adjunto oid"),
    ],
)
def test_objects_the_fast_dump_does_not_reproduce_send_the_clinic_to_pg_dump(
    fleet, committed, settings, tmp_path, kind, statement, name
):
    schema_name = "cp_" + kind.split()[0]
    clinic = fleet(schema_name)
    execute(statement.format(s=schema_name))
    record = backup_create(clinic=clinic, backup_type="manual")
    method = manifest_of(record, settings)["dump_method"]

    assert method["method"] == METHOD_PG_DUMP and method["reason"].startswith("El esquema tiene objetos")
    dump = plain_of(record)
    assert name in dump
    _, _, ddl = restored_from(dump, tmp_path, schema_name)
    assert ddl == schema_only(schema_name)


def test_inserts_style_stays_on_pg_dump_and_says_so(committed, settings):
    settings.BACKUP_SQL_STYLE = "inserts"
    record = backup_create(clinic=committed["beta"].clinic, backup_type="manual")
    method = manifest_of(record, settings)["dump_method"]
    assert method["method"] == METHOD_PG_DUMP and "inserts" in method["reason"]
    assert b"INSERT INTO beta." in plain_of(record)


# Indexes whose leading column is what the clinic's rows are found by (its
# namespace's name or oid, a relation's oid): a scan of one of them with a
# condition reads that clinic's entries only.
CLINIC_BOUNDED_INDEXES = {
    "pg_namespace_nspname_index",
    "pg_namespace_oid_index",
    "pg_depend_reference_index",
    "pg_depend_depender_index",
    "pg_class_oid_index",
    "pg_attribute_relid_attnum_index",
    "pg_attrdef_adrelid_adnum_index",
    "pg_description_o_c_o_index",
    "pg_constraint_conrelid_contypid_conname_index",
    "pg_index_indrelid_index",
    "pg_index_indexrelid_index",
    "pg_sequence_seqrelid_index",
    "pg_policy_polrelid_polname_index",
    "pg_inherits_relid_seqno_index",
    "pg_inherits_parent_index",
    "pg_trigger_tgrelid_tgname_index",
    "pg_rewrite_rel_rulename_index",
}


def _unbounded_catalog_reads(plan) -> set[str]:
    """Catalog reads not bounded by the clinic: sequential scans, and index scans
    without a condition or through an index not led by the clinic's key."""
    plan = json.loads(plan) if isinstance(plan, str) else plan
    found = set()

    def walk(node: dict) -> None:
        kind = node.get("Node Type", "")
        if kind == "Seq Scan":
            found.add(node["Relation Name"])
        elif "Index" in kind and "Scan" in kind:
            index = node.get("Index Name", "")
            if "Index Cond" not in node or index not in CLINIC_BOUNDED_INDEXES:
                found.add(index)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


@pytest.mark.parametrize("query", ["structure", "table names"])
def test_the_per_backup_catalog_queries_have_an_index_path_into_every_catalog(committed, query):
    """At 5,000 clinics pg_class has a million rows: every catalog these queries
    touch must be reachable through an index from the clinic's namespace. With
    sequential scans disabled, the planner still picks one where no index path
    exists (bench/fleet_scale.py shows the plan it chooses at 5,000 clinics)."""
    from apps.backups.engine.structure import STRUCTURE_SQL, TABLE_NAMES_SQL

    statement, params = (STRUCTURE_SQL, {"schema": "alfa"}) if query == "structure" else (TABLE_NAMES_SQL, ["alfa"])
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, params)
            plan = cursor.fetchone()[0]
        finally:
            cursor.execute("RESET enable_seqscan")
    assert _unbounded_catalog_reads(plan) == set()
