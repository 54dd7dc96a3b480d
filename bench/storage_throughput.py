"""Throughput and peak memory of the ``s3`` backend against a local moto server,
next to a plain boto3 ``upload_file``/``download_file`` of the same bytes.

    .venv/bin/python bench/storage_throughput.py [--size-mb 500]

Each transfer runs in a process of its own, so each peak RSS (``ru_maxrss``) is
that transfer's alone. Ours streams (``open_write`` / ``open_read``, one part in
memory, one part at a time); boto3's managed transfer reads a file from disk
with 10 threads in parallel. Both talk to the same moto server, over loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK = 1024 * 1024


def child(kind: str, endpoint: str, key_id: str, secret: str, bucket: str, source: str, target: str) -> dict:
    import boto3

    started = time.perf_counter()
    if kind.startswith("ours"):
        from apps.backups.storage.s3 import S3BackupStorage

        storage = S3BackupStorage(
            bucket=bucket,
            endpoint_url=endpoint,
            access_key_id=key_id,
            secret_access_key=secret,
            addressing_style="path",
        )
        if kind == "ours-upload":
            with open(source, "rb") as stream, storage.open_write("bench/ours.bin") as target_stream:
                while chunk := stream.read(CHUNK):
                    target_stream.write(chunk)
        else:
            with open(target, "wb") as output:
                for chunk in storage.iter_chunks("bench/ours.bin"):
                    output.write(chunk)
    else:
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id, aws_secret_access_key=secret
        )
        if kind == "boto3-upload":
            client.upload_file(source, bucket, "bench/boto3.bin")
        else:
            client.download_file(bucket, "bench/boto3.bin", target)
    return {"seconds": time.perf_counter() - started, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=500)
    args = parser.parse_args()

    from tests.support.s3_server import s3_server_start

    server = s3_server_start()
    try:
        bucket = "psico-bench"
        server.client().create_bucket(Bucket=bucket)
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "source.bin"
            with open(source, "wb") as stream:
                for index in range(args.size_mb):
                    stream.write(hashlib.sha256(str(index).encode()).digest() * (CHUNK // 32))
            expected = sha256_file(source)
            print(f"objeto: {args.size_mb} MB, moto_server en {server.url}")
            print(f"{'transferencia':<22}{'segundos':>10}{'MB/s':>10}{'RSS pico (MB)':>16}")
            for kind in ("ours-upload", "ours-download", "boto3-upload", "boto3-download"):
                target = Path(folder) / f"{kind}.bin"
                credentials = [server.url, server.access_key_id, server.secret_access_key]
                result = subprocess.run(
                    [sys.executable, __file__, "--child", kind, *credentials, bucket, str(source), str(target)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                report = json.loads(result.stdout.strip().splitlines()[-1])
                if kind.endswith("download"):
                    assert sha256_file(target) == expected, f"{kind}: los bytes no coinciden"
                    target.unlink()
                label = kind.replace("ours", "s3 backend")
                print(
                    f"{label:<22}{report['seconds']:>10.1f}{args.size_mb / report['seconds']:>10.0f}"
                    f"{report['peak_rss_kb'] / 1024:>16.0f}"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:9])))
    else:
        main()
