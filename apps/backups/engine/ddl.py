"""The DDL half of the fast SQL dump: pg_dump's own pre-data and post-data text
for one structure, computed once and kept in ``public`` keyed by the
structure's fingerprint and the pg_dump version that wrote it.

Filling costs one ``pg_dump --schema-only`` of a clinic (pg_dump reads the whole
database's catalog: ~20 s and ~700 MB at 5,000 clinics), written once in the
custom format and split into sections by ``pg_restore`` (which does not touch
the database). The clinic's schema name is then replaced by placeholders in
exactly the places pg_dump writes it (``<schema>.<object>`` qualifications,
including inside ``nextval('…')`` literals; ``CREATE SCHEMA``/``COMMENT ON
SCHEMA``; the ``Schema:`` and ``Name:`` of its comment lines). If the name still
appears anywhere else afterwards (a column called like the schema, say), the
text cannot be templated safely: ``DdlNotTemplatableError``, and that clinic is
dumped by pg_dump itself.

Rendering for another clinic of the same fingerprint is a plain replace of
the placeholders, plus a fresh ``\\restrict`` key per dump (pg_dump draws a new
random one for every dump; reusing one would defeat its purpose).
"""

from __future__ import annotations

import re
import secrets
import string
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from apps.backups.engine.children import child_process
from apps.backups.engine.pg_clients import PgClient, libpq_environment
from apps.backups.engine.structure import SchemaStructure
from apps.backups.errors import DumpError

PLACEHOLDER_PREFIX = "psicoadmin_schema_"
FOOTER = "--\n-- PostgreSQL database dump complete\n--\n"
HEADER_END = "\nSET row_security = off;\n"
DEFAULT_TABLESPACE = "SET default_tablespace = '';\n\n"
RESTRICT_RE = re.compile(r"^\\(restrict|unrestrict) [A-Za-z0-9]+$", re.MULTILINE)
RESTRICT_KEY_LENGTH = 64  # as pg_dump draws it: letters and digits


class DdlNotTemplatableError(DumpError):
    """The schema's name appears in its DDL where it is not the schema."""


@dataclass(frozen=True)
class SchemaDdlText:
    fingerprint: str
    pg_dump_version: str
    placeholder: str
    pre_data: str  # header and pre-data objects, without pg_dump's closing comment
    post_data: str  # post-data objects and pg_dump's closing comment, without the header
    fill_seconds: float = 0.0


def _placeholders(placeholder: str) -> tuple[str, str]:
    """(identifier form, comment form): pg_dump quotes the name as an identifier
    (``"user"`` for a keyword) but writes it raw in its comment lines."""
    return placeholder + "_id", placeholder + "_raw"


def _token(name: str) -> str:
    return rf"(?<![\w$]){re.escape(name)}(?![\w$])"


def ddl_template(text: str, *, schema_name: str, quoted_schema: str, placeholder: str) -> str:
    """``text`` with the schema's name replaced where pg_dump writes it."""
    ident, raw = _placeholders(placeholder)
    if placeholder in text:
        raise DdlNotTemplatableError("El marcador de esquema ya aparece en el DDL.")
    q = re.escape(quoted_schema)
    templated = re.sub(rf'(?<![\w$"]){q}(?=\.)', ident, text)
    templated = re.sub(rf"^(CREATE SCHEMA ){q}(?=;$)", rf"\g<1>{ident}", templated, flags=re.MULTILINE)
    templated = re.sub(rf"^(COMMENT ON SCHEMA ){q}(?= IS )", rf"\g<1>{ident}", templated, flags=re.MULTILINE)
    name = re.escape(schema_name)
    templated = re.sub(rf"(?<=; Schema: ){name}(?=; Owner: )", raw, templated)
    templated = re.sub(rf"^(-- Name: ){name}(?=; Type: SCHEMA; )", rf"\g<1>{raw}", templated, flags=re.MULTILINE)
    if re.search(_token(schema_name), templated):
        raise DdlNotTemplatableError(
            f"El nombre del esquema {schema_name} aparece en su DDL fuera de su papel de esquema."
        )
    return templated


def ddl_render_text(text: str, *, placeholder: str, schema_name: str, quoted_schema: str) -> str:
    ident, raw = _placeholders(placeholder)
    return text.replace(ident, quoted_schema).replace(raw, schema_name)


def restrict_key_new() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(RESTRICT_KEY_LENGTH))


def ddl_render(ddl: SchemaDdlText, *, schema_name: str, quoted_schema: str) -> tuple[bytes, bytes]:
    """(pre-data, post-data) for ``schema_name``, with one fresh ``\\restrict`` key."""
    key = restrict_key_new()
    parts = []
    for text in (ddl.pre_data, ddl.post_data):
        rendered = ddl_render_text(
            text, placeholder=ddl.placeholder, schema_name=schema_name, quoted_schema=quoted_schema
        )
        parts.append(RESTRICT_RE.sub(lambda match: f"\\{match.group(1)} {key}", rendered).encode("utf-8"))
    return parts[0], parts[1]


def _run(arguments: list[str], *, what: str) -> bytes:
    with child_process(arguments, what=what, env=libpq_environment(), stdin=subprocess.DEVNULL) as child:
        output = child.stdout.readall()
        if child.finish() != 0:
            raise child.failure(what)
    return output


def ddl_fill(*, client: PgClient, structure: SchemaStructure, snapshot_id: str | None) -> SchemaDdlText:
    """The structure's DDL from pg_dump of this clinic, in the backup's snapshot,
    templated. Not saved here (the caller keeps it in its cache)."""
    started = time.perf_counter()
    pg_restore = str(Path(client.path).with_name("pg_restore"))
    with tempfile.TemporaryDirectory(prefix="psicoadmin-ddl-") as folder:
        archive = str(Path(folder) / "schema.dump")
        arguments = [
            client.path,
            "--format=c",
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--encoding=UTF8",
            f"--schema={structure.schema_name}",
            f"--file={archive}",
        ]
        if snapshot_id:
            arguments.append(f"--snapshot={snapshot_id}")
        _run(arguments, what="pg_dump --schema-only")
        sections = {}
        for section in ("pre-data", "post-data"):
            output = _run(
                [pg_restore, "--no-owner", "--no-privileges", f"--section={section}", "--file=-", archive],
                what=f"pg_restore --section={section}",
            )
            sections[section] = output.decode("utf-8")
    pre, post = sections["pre-data"], sections["post-data"]
    footer_at = pre.rfind(FOOTER)
    header_end = post.find(HEADER_END)
    if footer_at < 0 or header_end < 0 or FOOTER not in post:
        raise DdlNotTemplatableError("La salida de pg_restore no tiene la forma esperada.")
    pre = pre[:footer_at]
    post = post[header_end + len(HEADER_END) :].lstrip("\n")
    if post.startswith(DEFAULT_TABLESPACE) and DEFAULT_TABLESPACE in pre:
        post = post[len(DEFAULT_TABLESPACE) :]  # already set by pre-data, as in one pg_dump run
    placeholder = PLACEHOLDER_PREFIX + secrets.token_hex(8)
    names = {"schema_name": structure.schema_name, "quoted_schema": structure.quoted_schema}
    ddl = SchemaDdlText(
        fingerprint=structure.fingerprint,
        pg_dump_version=client.version,
        placeholder=placeholder,
        pre_data=ddl_template(pre, placeholder=placeholder, **names),
        post_data=ddl_template(post, placeholder=placeholder, **names),
        fill_seconds=round(time.perf_counter() - started, 3),
    )
    # The template must give back exactly what pg_dump wrote for this clinic.
    for original, templated in ((pre, ddl.pre_data), (post, ddl.post_data)):
        if ddl_render_text(templated, placeholder=placeholder, **names) != original:
            raise DdlNotTemplatableError("El DDL con el marcador no reproduce el original.")
    return ddl
