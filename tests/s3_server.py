"""An S3-compatible server on 127.0.0.1 for the tests (moto's standalone server), with
the AWS variables that point boto3, Snakemake's S3 storage plugin and DVC's S3 remote at
it. Its objects live in memory and go with it.

    with S3Server.start(buckets=["lab"]) as s3:
        subprocess.run([...], env={**os.environ, **s3.env})
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import urllib.request

from balrog_worker.clients.vllm_server import free_port


def missing() -> str | None:
    """Why no server can start here (a one-line skip reason), or None."""
    for module in ("moto", "flask", "boto3"):
        if importlib.util.find_spec(module) is None:
            return f"no S3 server here ({module} not installed): pip install 'moto[server]'"
    return None


class S3Server:
    def __init__(self, process: subprocess.Popen, port: int):
        self.process, self.port = process, port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing-key-id",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    @classmethod
    def start(cls, buckets: tuple[str, ...] = ()) -> S3Server:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = cls(process, port)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{server.url}/moto-api/", timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the S3 server did not start on port {port}") from None
                    time.sleep(0.2)
            for bucket in buckets:
                server.client().create_bucket(Bucket=bucket)
        except BaseException:
            server.stop()
            raise
        return server

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
