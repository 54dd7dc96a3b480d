"""What one clinic schema is made of, read from the catalog at a cost that does
not depend on how many other schemas the database holds.

Every query here starts from the schema's own namespace: ``pg_depend``'s
reference index lists the objects that live in it (tables and sequences record a
dependency on their namespace; indexes, constraints, defaults and triggers hang
off their table), and every other catalog is reached through its index on the
relation's oid. Nothing scans ``pg_class`` or ``pg_attribute`` (at 5,000 clinics
they hold over a million and ten million rows).

The *fingerprint* is a SHA-256 of everything pg_dump would write as DDL for the
schema (tables, columns, types, defaults, identity, constraints, indexes,
sequences and their ownership, comments, storage options) with the schema's own
name taken out, plus the server's major version: two clinics at the same
migration state share it, and a hand-made index, an extra column or a
half-applied migration changes it. Objects the fast dump does not reproduce
(views, functions, triggers, rules, policies, partitioning, inheritance, types,
large-object references...) are listed in ``unsupported``: such a clinic is
dumped by pg_dump itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# One statement. ``ns`` is found by name through pg_namespace's unique index;
# ``objs`` through pg_depend_reference_index; each relation's details through the
# oid indexes of pg_attribute, pg_attrdef, pg_constraint, pg_index, pg_trigger,
# pg_rewrite, pg_policy, pg_inherits, pg_sequence and pg_description.
STRUCTURE_SQL = r"""
WITH ns AS (
    SELECT n.oid, n.nspname, quote_ident(n.nspname) || '.' AS prefix
    FROM pg_catalog.pg_namespace n WHERE n.nspname = %(schema)s
),
objs AS (
    SELECT d.classid, d.objid
    FROM ns JOIN pg_catalog.pg_depend d
      ON d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = ns.oid AND d.refobjsubid = 0
    WHERE d.deptype = 'n'
),
rels AS (
    SELECT c.oid, c.relname, c.relkind, c.relpersistence, c.reloptions, c.reltablespace, c.relreplident,
           c.relrowsecurity, c.relforcerowsecurity, c.relispartition
    FROM objs JOIN pg_catalog.pg_class c ON c.oid = objs.objid
    WHERE objs.classid = 'pg_catalog.pg_class'::regclass
),
cols AS (
    SELECT r.oid AS relid, a.attnum, a.attname, a.attgenerated, a.atttypid,
           jsonb_build_array(
               a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
               a.attgenerated, a.attstattarget, a.attstorage, a.attcompression,
               -- The attribute options PostgreSQL defines (pg_dump writes them); a server may keep
               -- private ones there that pg_dump does not write (PostgreSQL 15 here: pg_attver=<n>).
               ARRAY(SELECT o FROM unnest(a.attoptions) o WHERE o LIKE 'n\_distinct%%' ORDER BY o),
               a.attcollation,
               a.attislocal, a.attinhcount,
               (SELECT replace(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), ns.prefix, '')
                  FROM pg_catalog.pg_attrdef ad WHERE ad.adrelid = r.oid AND ad.adnum = a.attnum),
               (SELECT ds.description FROM pg_catalog.pg_description ds
                  WHERE ds.objoid = r.oid AND ds.classoid = 'pg_catalog.pg_class'::regclass
                    AND ds.objsubid = a.attnum)
           ) AS facts
    FROM ns, rels r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid
    WHERE a.attnum > 0 AND NOT a.attisdropped
),
rel_facts AS (
    SELECT r.oid, r.relname, r.relkind,
        jsonb_build_array(
            r.relname, r.relkind, r.relpersistence, r.reloptions, r.reltablespace, r.relreplident,
            r.relrowsecurity, r.relforcerowsecurity, r.relispartition,
            (SELECT ds.description FROM pg_catalog.pg_description ds
               WHERE ds.objoid = r.oid AND ds.classoid = 'pg_catalog.pg_class'::regclass AND ds.objsubid = 0),
            (SELECT jsonb_agg(c.facts ORDER BY c.attnum) FROM cols c WHERE c.relid = r.oid),
            (SELECT jsonb_agg(jsonb_build_array(
                        co.conname, co.contype,
                        replace(pg_catalog.pg_get_constraintdef(co.oid), ns.prefix, ''),
                        (SELECT ds.description FROM pg_catalog.pg_description ds
                           WHERE ds.objoid = co.oid AND ds.classoid = 'pg_catalog.pg_constraint'::regclass))
                    ORDER BY co.conname)
               FROM pg_catalog.pg_constraint co WHERE co.conrelid = r.oid),
            (SELECT jsonb_agg(jsonb_build_array(
                        ic.relname, replace(pg_catalog.pg_get_indexdef(i.indexrelid), ns.prefix, ''),
                        i.indisclustered, i.indisreplident, ic.reltablespace, ic.reloptions,
                        (SELECT ds.description FROM pg_catalog.pg_description ds
                           WHERE ds.objoid = ic.oid AND ds.classoid = 'pg_catalog.pg_class'::regclass
                             AND ds.objsubid = 0))
                    ORDER BY ic.relname)
               FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
               WHERE i.indrelid = r.oid),
            (SELECT jsonb_build_array(s.seqtypid, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache,
                                      s.seqcycle)
               FROM pg_catalog.pg_sequence s WHERE s.seqrelid = r.oid),
            (SELECT jsonb_agg(jsonb_build_array(oc.relname, oa.attname, od.deptype) ORDER BY oc.relname, oa.attname)
               FROM pg_catalog.pg_depend od
               JOIN pg_catalog.pg_class oc ON oc.oid = od.refobjid
               JOIN pg_catalog.pg_attribute oa ON oa.attrelid = od.refobjid AND oa.attnum = od.refobjsubid
               WHERE r.relkind = 'S' AND od.classid = 'pg_catalog.pg_class'::regclass AND od.objid = r.oid
                 AND od.objsubid = 0 AND od.refclassid = 'pg_catalog.pg_class'::regclass
                 AND od.deptype IN ('a', 'i'))
        ) AS facts,
        ARRAY_REMOVE(ARRAY[
            CASE WHEN r.relkind NOT IN ('r', 'S') THEN 'relación de tipo ' || r.relkind::text || ': ' || r.relname END,
            CASE WHEN r.relrowsecurity OR EXISTS (
                      SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = r.oid)
                 THEN 'seguridad por filas en ' || r.relname END,
            CASE WHEN r.relispartition OR EXISTS (
                      SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = r.oid)
                   OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhparent = r.oid)
                 THEN 'herencia o particiones en ' || r.relname END,
            CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = r.oid AND NOT t.tgisinternal)
                 THEN 'triggers en ' || r.relname END,
            CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite w WHERE w.ev_class = r.oid)
                 THEN 'reglas en ' || r.relname END,
            CASE WHEN EXISTS (SELECT 1 FROM cols c WHERE c.relid = r.oid
                                AND (c.atttypid = 'pg_catalog.oid'::regtype
                                     OR pg_catalog.format_type(c.atttypid, NULL) IN ('lo', 'public.lo')))
                 THEN 'referencias a objetos grandes (oid/lo) en ' || r.relname END,
            CASE WHEN r.relkind = 'r'
                  AND NOT EXISTS (SELECT 1 FROM cols c WHERE c.relid = r.oid AND c.attgenerated = '')
                 THEN 'tabla sin columnas: ' || r.relname END,
            CASE WHEN r.relname ~ '[\r\n]' THEN 'nombre con saltos de línea' END
        ], NULL) AS unsupported
    FROM ns, rels r
)
SELECT
    quote_ident(ns.nspname),
    encode(pg_catalog.sha256(convert_to(jsonb_build_array(
        current_setting('server_version_num')::int / 10000,
        (SELECT ds.description FROM pg_catalog.pg_description ds
           WHERE ds.objoid = ns.oid AND ds.classoid = 'pg_catalog.pg_namespace'::regclass),
        (SELECT jsonb_agg(f.facts ORDER BY f.relname) FROM rel_facts f),
        (SELECT jsonb_agg(jsonb_build_array(o.classid, o.objid) ORDER BY o.classid, o.objid)
           FROM objs o WHERE o.classid <> 'pg_catalog.pg_class'::regclass)
    )::text, 'UTF8')), 'hex'),
    (SELECT jsonb_agg(jsonb_build_array(f.relname, quote_ident(f.relname),
                (SELECT string_agg(quote_ident(c.attname), ', ' ORDER BY c.attnum)
                   FROM cols c WHERE c.relid = f.oid AND c.attgenerated = ''))
            ORDER BY f.relname COLLATE "C")
       FROM rel_facts f WHERE f.relkind = 'r'),
    (SELECT jsonb_agg(jsonb_build_array(f.relname, quote_ident(f.relname)) ORDER BY f.relname COLLATE "C")
       FROM rel_facts f WHERE f.relkind = 'S'),
    (SELECT jsonb_agg(u) FROM rel_facts f, unnest(f.unsupported) u),
    (SELECT jsonb_agg(DISTINCT o.classid::regclass::text) FROM objs o
       WHERE o.classid <> 'pg_catalog.pg_class'::regclass)
FROM ns
"""


TABLE_NAMES_SQL = """
SELECT c.relname
FROM pg_catalog.pg_namespace n
JOIN pg_catalog.pg_depend d
  ON d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = n.oid AND d.refobjsubid = 0
JOIN pg_catalog.pg_class c ON d.classid = 'pg_catalog.pg_class'::regclass AND c.oid = d.objid
WHERE n.nspname = %s AND d.deptype = 'n' AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""


@dataclass(frozen=True)
class Table:
    name: str
    quoted: str
    columns: str  # quoted, comma-separated, as pg_dump lists them in COPY


@dataclass(frozen=True)
class Sequence:
    name: str
    quoted: str


@dataclass
class SchemaStructure:
    schema_name: str
    quoted_schema: str
    fingerprint: str
    tables: list[Table] = field(default_factory=list)
    sequences: list[Sequence] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)


def _loaded(value):
    # jsonb arrives decoded from psycopg; tolerate a driver that hands back text.
    return json.loads(value) if isinstance(value, str) else value


def schema_structure_read(cursor, schema_name: str) -> SchemaStructure | None:
    """The schema's structure and fingerprint (``None`` if it does not exist), with
    ``cursor`` inside the backup's snapshot."""
    cursor.execute(STRUCTURE_SQL, {"schema": schema_name})
    row = cursor.fetchone()
    if row is None:
        return None
    quoted_schema, fingerprint = row[0], row[1]
    tables, sequences, unsupported, other_objects = (_loaded(value) for value in row[2:])
    problems = list(unsupported or [])
    for catalog in other_objects or []:
        # Functions, types, views' rules, collations, statistics objects... in the schema.
        problems.append(f"objetos de {catalog} en el esquema")
    return SchemaStructure(
        schema_name=schema_name,
        quoted_schema=quoted_schema,
        fingerprint=fingerprint,
        tables=[Table(name, quoted, columns or "") for name, quoted, columns in tables or []],
        sequences=[Sequence(name, quoted) for name, quoted in sequences or []],
        unsupported=problems,
    )


def sequence_values_read(cursor, structure: SchemaStructure) -> list[tuple[Sequence, int, bool]]:
    """Each sequence's ``last_value`` and ``is_called`` (one statement), as pg_dump
    reads them: sequences are not transactional, so this is their state now."""
    if not structure.sequences:
        return []
    # Names quoted by the server (quote_ident) in schema_structure_read.
    parts = [
        f"SELECT {index}, last_value, is_called FROM {structure.quoted_schema}.{sequence.quoted}"  # noqa: S608
        for index, sequence in enumerate(structure.sequences)
    ]
    cursor.execute(" UNION ALL ".join(parts))
    values = {index: (last_value, is_called) for index, last_value, is_called in cursor.fetchall()}
    return [(sequence, *values[index]) for index, sequence in enumerate(structure.sequences)]


def schema_table_names_read(cursor, schema_name: str) -> list[str]:
    """The schema's ordinary tables, through its namespace's dependencies (not
    ``pg_tables``, which scans the whole of ``pg_class``)."""
    cursor.execute(TABLE_NAMES_SQL, [schema_name])
    return [name for (name,) in cursor.fetchall()]
