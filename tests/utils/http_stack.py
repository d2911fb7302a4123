"""Helpers for tests that drive tierflow's processes over HTTP (served API, workers, the UI)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).parents[2]
TIERFLOW = [sys.executable, "-c", "from cli.main import app; app()"]
"""The `tierflow` command, run by this interpreter (as a user runs `.venv/bin/tierflow`)."""
TERMINAL = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(read: Callable[[], Any], done: Callable[[Any], bool], seconds: float = 90) -> Any:
    """Read until `done(value)`; fails with the last value after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"gave up waiting; last value: {value}"
        time.sleep(0.25)


def answers(client: httpx.Client, path: str) -> bool:
    """Whether the server behind `client` answers `path` with 200 yet."""
    try:
        return client.get(path).status_code == 200
    except httpx.TransportError:
        return False


def run_tierflow(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`tierflow ARGS` as a user runs it, with `env`."""
    return subprocess.run([*TIERFLOW, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=check)


def new_cli_key(env: dict[str, str], *args: str) -> str:
    """`tierflow keys create ARGS`: the key, from the last line it prints."""
    return run_tierflow(env, "keys", "create", *args).stdout.strip().splitlines()[-1]


@contextmanager
def served(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`tierflow serve` with `env` on a free port, once it is ready: (the process, its base URL)."""
    port = free_port()
    server = subprocess.Popen([*TIERFLOW, "serve", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base_url) as probe:
            poll(lambda: answers(probe, "/ready"), bool, seconds=120)  # 503 until a trigger would be taken
        yield server, base_url
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@contextmanager
def served_on_moto(catalog_dir: Path, name: str, **settings: str) -> Iterator[dict[str, Any]]:
    """`tierflow serve` on the session's Prefect API, moto's S3 over HTTP (with an S3 bucket
    `files`) and a catalog in `catalog_dir`, with these extra environment `settings`; yields the
    REST `client` (holding an operator key called `name`), the `s3` client, the `server` process
    and the `env`."""
    import boto3
    from moto.server import ThreadedMotoServer
    from prefect.settings import PREFECT_API_URL

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    endpoint = "http://{}:{}".format(*moto.get_host_and_port())
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "TIERFLOW_S3_ENDPOINT_URL": endpoint,
           "TIERFLOW_DATABASE_URL": f"sqlite:///{catalog_dir / 'catalog.db'}", **settings}
    key = new_cli_key(env, "--name", name)
    try:
        with served(env) as (server, base_url):
            client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            s3.create_bucket(Bucket="files")
            with client:
                yield {"client": client, "s3": s3, "server": server, "env": env}
    finally:
        moto.stop()


def define(client: httpx.Client, namespace: str, prefix: str, *, s3_bucket: str = "files",
           unique_key: bool = True) -> dict[str, str]:
    """Over the REST API: a namespace, a bucket on `<s3_bucket>/<prefix>` (unique key `key`
    unless not `unique_key`), words → copies."""
    headers = {"X-Namespace": namespace}
    assert client.post("/v1/namespaces", json={"namespace_name": namespace}).status_code == 200
    bucket: dict[str, Any] = {"bucket_name": "notes", "bucket_schema": {"properties": {"content": {"type": "text"}}},
                              "storage": {"s3_bucket": s3_bucket, "prefix": prefix}}
    if unique_key:
        bucket["unique_key"] = {"fields": ["key"]}
    assert client.post("/v1/buckets", json=bucket, headers=headers).status_code == 200
    words = {"collection_name": "words", "source": {"type": "bucket", "bucket_ids": ["notes"]},
             "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1",
                                   "parameters": {"split_by": "words", "chunk_size": 2}}}
    copies = {"collection_name": "copies", "source": {"type": "collection", "collection_ids": ["words"]},
              "feature_extractor": {"feature_extractor_name": "passthrough_extractor", "version": "v1"}}
    for body in (words, copies):
        assert client.post("/v1/collections", json=body, headers=headers).status_code == 200
    return headers


def finished_task(client: httpx.Client, headers: dict[str, str], task_id: str, seconds: float = 90) -> dict[str, Any]:
    """Poll `GET /v1/tasks/{id}` until the task is in a terminal state."""
    return poll(lambda: client.get(f"/v1/tasks/{task_id}", headers=headers).json(),
                lambda task: task["status"] in TERMINAL, seconds)
