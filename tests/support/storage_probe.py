"""Write then read back a large generated object through the configured backend,
in a process of its own, and report the peak memory that cost.

Run as ``python -m tests.support.storage_probe <path> <megabytes>`` with the
backend configured by environment variables (as in production). Prints one
JSON line: SHA-256 of what was written and of what was read, and the process's
peak RSS before and after the transfer (``ru_maxrss``, kB on Linux). The data
is generated chunk by chunk: neither side ever holds the object whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import sys

CHUNK = 1024 * 1024


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(path: str, megabytes: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from apps.backups.storage import get_backup_storage

    storage = get_backup_storage()
    # Warm up (imports, connection pools) before taking the baseline.
    storage.write_bytes(path + ".warmup", b"x" * CHUNK)
    assert storage.read_bytes(path + ".warmup") == b"x" * CHUNK
    storage.delete(path + ".warmup")
    baseline = peak_rss_kb()

    generator = random.Random(megabytes)
    written = hashlib.sha256()
    with storage.open_write(path) as stream:
        for _ in range(megabytes):
            chunk = generator.randbytes(CHUNK)
            written.update(chunk)
            stream.write(chunk)
    read = hashlib.sha256()
    size = 0
    for chunk in storage.iter_chunks(path):
        read.update(chunk)
        size += len(chunk)
    return {
        "written_sha256": written.hexdigest(),
        "read_sha256": read.hexdigest(),
        "size": size,
        "baseline_kb": baseline,
        "peak_kb": peak_rss_kb(),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
