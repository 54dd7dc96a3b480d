"""A real S3-compatible server (moto in server mode) in its own process, on loopback.

Authentication is on, as on a real service: the first three requests (moto's
``INITIAL_NO_AUTH_ACTION_COUNT``) create an IAM user with an access key allowed
``s3:*``; from then on every request must be signed with that key.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

REGION = "us-east-1"
ALLOW_S3 = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class S3Server:
    process: subprocess.Popen
    port: int
    access_key_id: str = ""
    secret_access_key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, endpoint_url: str | None = None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=endpoint_url or self.url,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def _create_credentials(self) -> None:
        import boto3

        iam = boto3.client(
            "iam", endpoint_url=self.url, region_name=REGION, aws_access_key_id="bootstrap", aws_secret_access_key="x"
        )
        iam.create_user(UserName="backups")
        key = iam.create_access_key(UserName="backups")["AccessKey"]
        iam.put_user_policy(UserName="backups", PolicyName="backups-s3", PolicyDocument=ALLOW_S3)
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def s3_server_start(*, attempts: int = 3) -> S3Server:
    """Start ``moto_server`` on a free loopback port and wait until it answers."""
    for _ in range(attempts):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
        )
        for _ in range(150):  # up to ~15 s
            if process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.1)
                continue
            server = S3Server(process=process, port=port)
            server._create_credentials()
            return server
        process.kill()
        process.wait(timeout=10)
    raise RuntimeError("moto_server no arrancó")
