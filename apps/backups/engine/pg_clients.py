"""Choosing the PostgreSQL client binaries (pg_dump, psql) for the server at hand.

A dump must be taken with a pg_dump whose major version is at least the
server's, and replayed with a psql at least as new as the pg_dump that wrote it
(newer dumps carry ``\\restrict`` lines older psql rejects). Candidates, in
order: the embedded PostgreSQL's bundled binaries, ``/usr/lib/postgresql/*/bin``
(newest first), then ``PATH`` when none of those fits. ``BACKUP_PG_BIN_DIR``,
when set, is the only place looked at: an operator who names a folder gets
that folder or an error, never a silently different binary.
"""

from __future__ import annotations

import glob
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.backups.errors import DumpError

logger = logging.getLogger(__name__)
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class PgClient:
    path: str
    version: str  # e.g. "18.4"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def describe(self) -> str:
        return f"{Path(self.path).name} {self.version} ({self.path})"


def candidate_dirs() -> list[Path]:
    from config.embedded_postgres import bundled_bin_dir

    if settings.BACKUP_PG_BIN_DIR:
        return [Path(settings.BACKUP_PG_BIN_DIR)]
    dirs = []
    try:
        dirs += [bundled_bin_dir(18), bundled_bin_dir(16)]
    except ImproperlyConfigured:
        logger.debug("No embedded PostgreSQL binaries; looking elsewhere.")
    dirs += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_dir_major, reverse=True)]
    return dirs


def _dir_major(path: str) -> int:
    match = re.search(r"/postgresql/(\d+)/", path)
    return int(match.group(1)) if match else 0


# ``--version`` answers by (path, inode, size, mtime): a scheduler process backs up
# thousands of clinics, and asking three binaries each time cost ~50 ms per backup.
# A replaced binary (an upgrade) has another inode or mtime and is asked again.
_VERSION_CACHE: dict[tuple, str] = {}


def _binary_identity(path: str) -> tuple | None:
    try:
        status = Path(path).stat()
    except OSError:
        return None
    return (path, status.st_ino, status.st_size, status.st_mtime_ns)


def client_versions(paths: list[str]) -> dict[str, str | None]:
    """``<binary> --version`` of each path (``None`` where it does not run), all at once:
    each start costs tens of milliseconds, and a backup looks at several binaries.
    Answers are remembered for as long as the binary file is unchanged."""
    running, versions = {}, {}
    for path in paths:
        identity = _binary_identity(path)
        if identity in _VERSION_CACHE:
            versions[path] = _VERSION_CACHE[identity]
            continue
        try:
            running[path] = subprocess.Popen(
                [path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except OSError:
            running[path] = None
    for path, process in running.items():
        versions[path] = _version_read(process) if process else None
        identity = _binary_identity(path)
        if versions[path] and identity:
            _VERSION_CACHE[identity] = versions[path]
    return {path: versions[path] for path in paths}


def _version_read(process: subprocess.Popen) -> str | None:
    try:
        output, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None
    match = _VERSION_RE.search(output)
    if process.returncode != 0 or not match:
        return None
    return f"{match.group(1)}.{match.group(2) or 0}"


def find_client(program: str, *, min_major: int) -> PgClient:
    """The candidate ``program`` of the lowest major version that is at least ``min_major``.

    At least: an older client cannot read a newer server. The lowest: a plain
    dump replays only into servers at least as new as its pg_dump (pg_dump 18
    writes ``SET transaction_timeout``, which PostgreSQL 15 rejects), so the
    client closest to the server keeps dumps loadable where they came from.
    ``PATH`` is the last resort, asked only when no folder has one that fits
    (on Debian it is a Perl wrapper that takes longer to answer than pg_dump).
    Raises ``DumpError`` naming every candidate found and why each was rejected.
    """
    rejected, seen = [], set()
    suitable = _suitable_clients([str(d / program) for d in candidate_dirs()], min_major, rejected, seen)
    on_path = None if settings.BACKUP_PG_BIN_DIR else shutil.which(program)
    if not suitable and on_path:
        suitable = _suitable_clients([on_path], min_major, rejected, seen)
    if suitable:
        return min(suitable, key=lambda client: client.major)  # min() keeps the first of equals
    found = "; ".join(rejected) if rejected else f"no se encontró ningún {program}"
    raise DumpError(f"No hay un {program} utilizable para PostgreSQL {min_major}: {found}.")


def _suitable_clients(paths: list[str], min_major: int, rejected: list[str], seen: set[str]) -> list[PgClient]:
    """The clients among ``paths`` new enough for ``min_major``; why the others
    are not is appended to ``rejected``. ``seen`` skips a binary met under another name."""
    existing = []
    for path in paths:
        resolved = str(Path(path).resolve())
        if not Path(path).is_file():
            rejected.append(f"{path}: no existe")
        elif resolved not in seen:
            seen.add(resolved)
            existing.append(path)
    versions = client_versions(existing)
    suitable = []
    for path in existing:
        version = versions[path]
        if version is None:
            rejected.append(f"{path}: no se pudo ejecutar")
        elif int(version.split(".")[0]) < min_major:
            rejected.append(f"{path}: versión {version} < {min_major}")
        else:
            suitable.append(PgClient(path=path, version=version))
    return suitable


def server_major(connection) -> int:
    return connection.pg_version // 10000


def server_version_text(connection) -> str:
    version = connection.pg_version
    return f"{version // 10000}.{version % 10000}"


_LIBPQ_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
}


def libpq_params(database: dict | None = None) -> dict:
    """Connection parameters of the configured database, for psycopg.connect()."""
    database = database or settings.DATABASES["default"]
    params = {
        "host": database.get("HOST") or None,
        "port": str(database.get("PORT") or "") or None,
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "dbname": database["NAME"],
    }
    params.update({key: str(value) for key, value in database.get("OPTIONS", {}).items() if key in _LIBPQ_OPTIONS})
    return {key: value for key, value in params.items() if value is not None}


def libpq_environment(database: dict | None = None) -> dict[str, str]:
    """A copy of this process's environment plus the PG* variables of the configured
    database: the password travels in PGPASSWORD, never on a command line."""
    import os

    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE"}
    names.update(_LIBPQ_OPTIONS)
    environment = dict(os.environ)
    for key, value in libpq_params(database).items():
        environment[names[key]] = value
    return environment
