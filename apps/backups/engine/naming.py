"""Names and paths in the bucket, as the guide lays them out.

``<schema>/[backup|auto]-[sql|json]-<schema>-<YYYY-MM-DD-HHMMSS>.<ext>`` is the
name a user sees and downloads; the stored object adds ``.zst`` (and ``.age``
when encrypted) and its manifest adds ``.manifest.json``.
"""

from __future__ import annotations

import re
from datetime import datetime

SCHEMA_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
FILE_NAME_RE = re.compile(
    r"^(?P<kind>backup|auto)-(?P<format>sql|json)-(?P<schema>[a-z_][a-z0-9_]{0,62})-"
    r"(?P<stamp>\d{4}-\d{2}-\d{2}-\d{6})(?:-(?P<seq>\d+))?\.(?P=format)$"
)
MANIFEST_SUFFIX = ".manifest.json"
KIND_PREFIX = {"manual": "backup", "automatic": "auto"}


def validate_schema_name(schema_name: str) -> str:
    if not SCHEMA_NAME_RE.match(schema_name or "") or schema_name.startswith("pg_"):
        raise ValueError(f"Nombre de esquema no válido: {schema_name!r}")
    return schema_name


def backup_file_name(*, backup_type: str, fmt: str, schema_name: str, when: datetime, sequence: int = 1) -> str:
    """The guide's file name; ``sequence`` > 1 disambiguates two backups in the same second."""
    validate_schema_name(schema_name)
    suffix = f"-{sequence}" if sequence > 1 else ""
    return f"{KIND_PREFIX[backup_type]}-{fmt}-{schema_name}-{when:%Y-%m-%d-%H%M%S}{suffix}.{fmt}"


def stored_object_name(file_name: str, *, encrypted: bool) -> str:
    return f"{file_name}.zst" + (".age" if encrypted else "")


def object_path(schema_name: str, name: str) -> str:
    return f"{validate_schema_name(schema_name)}/{name}"


def manifest_path_for(file_name: str, schema_name: str) -> str:
    return object_path(schema_name, file_name + MANIFEST_SUFFIX)


def parse_file_name(file_name: str) -> re.Match | None:
    return FILE_NAME_RE.match(file_name)
