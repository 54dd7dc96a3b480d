"""Running manage.py commands as real child processes against the test database."""

import os
from pathlib import Path

from django.conf import settings


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """The same (test) database and bucket as this test, for child processes."""
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BACKUP_", "DATABASE_URL"))}
    return env | {
        "DATABASE_URL": url,
        "BACKUP_LOCAL_ROOT": str(settings.BACKUP_LOCAL_ROOT),
        "PSICO_DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "WARNING",
    }
