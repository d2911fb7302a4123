"""Running tierflow for several teams, black-box: `tierflow serve`, the CLI, S3 over HTTP (moto).

The operator keeps a file in `operator-secrets`; namespace `team-a` is granted `s3://shared/team-a`
and `team-b` is granted `s3://shared/team-b`. Every attack of a team-a key is refused with the
status the contract names, a listener that a tenant names as its endpoint hears nothing, nothing
of the operator's file ever becomes a document, and inputs over their limits fail alone.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from PIL import Image

from tests.utils.http_stack import finished_task, new_cli_key, run_tierflow, served

SECRET = "AWS_SECRET=operator-only-hunter2"
MAX_OBJECT_BYTES = 100_000


class Listener:
    """A TCP listener on loopback that counts the connections it is sent (it answers none)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


@pytest.fixture(scope="module")
def teams(prefect_harness, tmp_path_factory) -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer
    from prefect.settings import PREFECT_API_URL

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    endpoint = "http://{}:{}".format(*moto.get_host_and_port())
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for name in ("operator-secrets", "shared"):
        s3.create_bucket(Bucket=name)
    s3.put_object(Bucket="operator-secrets", Key="prod.env", Body=SECRET.encode())
    s3.put_object(Bucket="shared", Key="team-b/notes.txt", Body=b"team b words")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "TIERFLOW_S3_ENDPOINT_URL": endpoint,
           "TIERFLOW_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('teams') / 'catalog.db'}",
           "TIERFLOW_MAX_OBJECT_BYTES": str(MAX_OBJECT_BYTES), "TIERFLOW_MAX_REQUEST_BYTES": str(8 << 20)}
    operator_key = new_cli_key(env, "--name", "operator")
    listener = Listener()
    with served(env) as (server, base_url):
        operator = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {operator_key}"}, timeout=30)
        for name in ("team-a", "team-b"):
            assert operator.post("/v1/namespaces", json={"namespace_name": name}).status_code == 200
            run_tierflow(env, "storage", "grant", "--namespace", name, f"s3://shared/{name}")
        tenant_key = new_cli_key(env, "--name", "team-a", "--namespace", "team-a")
        tenant = httpx.Client(base_url=base_url, timeout=60,
                              headers={"Authorization": f"Bearer {tenant_key}", "X-Namespace": "team-a"})
        yield {"env": env, "tenant": tenant, "operator": operator, "s3": s3, "listener": listener,
               "server": server}
        tenant.close()
        operator.close()
    listener.socket.close()
    moto.stop()


def _error(response: httpx.Response, status: int, type_name: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["type"] == type_name and fragment in body["error"]["message"]


def test_the_cli_grants_lists_and_revokes(teams):
    env = teams["env"]
    listed = run_tierflow(env, "storage", "list", "--namespace", "team-a").stdout
    assert "s3://shared/team-a/" in listed and "team-b" not in listed
    again = run_tierflow(env, "storage", "grant", "--namespace", "team-a", "s3://shared/team-a/")
    assert "already granted" in again.stdout
    run_tierflow(env, "storage", "grant", "--namespace", "team-b", "s3://shared/extra")
    run_tierflow(env, "storage", "revoke", "--namespace", "team-b", "s3://shared/extra/")
    assert "extra" not in run_tierflow(env, "storage", "list").stdout
    missing = run_tierflow(env, "storage", "revoke", "--namespace", "team-b", "s3://shared/extra", check=False)
    assert missing.returncode != 0 and "storage grant 's3://shared/extra/' was not found" in missing.stderr
    bad = run_tierflow(env, "storage", "grant", "--namespace", "team-a", "s3://shared/a/../b", check=False)
    assert bad.returncode != 0 and "not a plain prefix" in bad.stderr and "Traceback" not in bad.stderr


def test_every_way_out_of_the_grant_is_refused_and_no_foreign_host_is_called(teams):
    tenant, listener = teams["tenant"], teams["listener"]
    schema = {"properties": {"content": {"type": "text"}}}
    attacks = [
        ({"s3_bucket": "operator-secrets"}, "s3://operator-secrets/ is not granted"),
        ({"s3_bucket": "shared", "prefix": "team-b/"}, "s3://shared/team-b/ is not granted"),
        ({"s3_bucket": "shared", "prefix": "team-a-other/"}, "is not granted"),
        ({"s3_bucket": "shared", "prefix": "in/../"}, "storage.prefix"),
        ({"s3_bucket": "shared", "prefix": "team-a/", "endpoint_url": listener.url}, "storage.endpoint_url"),
        ({"s3_bucket": "shared", "prefix": "team-a/", "endpoint_url": "http://169.254.169.254/"},
         "storage.endpoint_url"),
    ]
    for n, (storage, named) in enumerate(attacks):
        made = tenant.post("/v1/buckets", json={"bucket_name": f"attack-{n}", "bucket_schema": schema,
                                                "storage": storage})
        _error(made, 403, "ForbiddenError", named)
    assert tenant.post("/v1/buckets", json={"bucket_name": "loose", "bucket_schema": schema}).status_code == 200
    for url in ("s3://operator-secrets/prod.env", "s3://shared/team-b/notes.txt"):
        registered = tenant.post("/v1/buckets/loose/objects", json={"blobs": [{"property": "content", "data": url}]})
        _error(registered, 403, "ForbiddenError", url)
    assert listener.connections == 0


def test_only_granted_files_become_documents_and_oversized_inputs_fail_alone(teams):
    tenant, s3 = teams["tenant"], teams["s3"]
    for name in ("one", "two"):
        s3.put_object(Bucket="shared", Key=f"team-a/notes/{name}.txt", Body=f"words of note {name}".encode())
    s3.put_object(Bucket="shared", Key="team-a/notes/huge.txt", Body=b"word " * (MAX_OBJECT_BYTES // 4))
    bucket = {"bucket_name": "notes", "bucket_schema": {"properties": {"content": {"type": "text"}}},
              "storage": {"s3_bucket": "shared", "prefix": "team-a/notes/"}}
    assert tenant.post("/v1/buckets", json=bucket).status_code == 200
    words = {"collection_name": "words", "source": {"type": "bucket", "bucket_ids": ["notes"]},
             "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1",
                                   "parameters": {"split_by": "words", "chunk_size": 2}}}
    assert tenant.post("/v1/collections", json=words).status_code == 200
    started = tenant.post("/v1/collections/words/trigger", json={})
    assert started.status_code == 202, started.text
    assert finished_task(tenant, {}, started.json()["task_id"])["status"] == "COMPLETED_WITH_ERRORS"
    batch = tenant.get(f"/v1/batches/{started.json()['batch_id']}").json()
    assert batch["failed_object_count"] == 1 and batch["audit"]["balanced"]
    assert batch["tier_tasks"][0]["inputs_succeeded"] == 2
    (failed,) = batch["failed_inputs"]
    assert failed["error"]["category"] == "resource" and "TIERFLOW_MAX_OBJECT_BYTES" in failed["error"]["message"]
    documents = tenant.post("/v1/collections/words/documents/list", json={"limit": 1000}).json()
    assert documents["pagination"]["total"] == 4 and SECRET.split("=")[1] not in json.dumps(documents)


def _png(width: int, height: int, mode: str) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, format="PNG")
    return out.getvalue()


def test_a_decompression_bomb_fails_alone_and_thumbnails_stay_inside_the_grant(teams):
    tenant, s3 = teams["tenant"], teams["s3"]
    bomb = _png(12_000, 10_000, "1")
    assert len(bomb) < MAX_OBJECT_BYTES  # small on the wire: only its pixel count gives it away
    s3.put_object(Bucket="shared", Key="team-a/images/bomb.png", Body=bomb, ContentType="image/png")
    s3.put_object(Bucket="shared", Key="team-a/images/fine.png", Body=_png(40, 20, "RGB"), ContentType="image/png")
    bucket = {"bucket_name": "images", "bucket_schema": {"properties": {"content": {"type": "image"}}},
              "storage": {"s3_bucket": "shared", "prefix": "team-a/images/"}}
    assert tenant.post("/v1/buckets", json=bucket).status_code == 200
    facts = {"collection_name": "facts", "source": {"type": "bucket", "bucket_ids": ["images"]},
             "feature_extractor": {"feature_extractor_name": "image_extractor", "version": "v1"}}
    assert tenant.post("/v1/collections", json=facts).status_code == 200
    started = tenant.post("/v1/collections/facts/trigger", json={}).json()
    assert finished_task(tenant, {}, started["task_id"])["status"] == "COMPLETED_WITH_ERRORS"
    batch = tenant.get(f"/v1/batches/{started['batch_id']}").json()
    assert batch["failed_object_count"] == 1 and batch["audit"]["balanced"]
    (failed,) = batch["failed_inputs"]
    assert failed["error"]["category"] == "resource" and "12000 × 10000 pixels" in failed["error"]["message"]
    (document,) = tenant.post("/v1/collections/facts/documents/list", json={}).json()["results"]
    assert document["document_blobs"][0]["url"] == "s3://shared/team-a/images/.tierflow/fine.png.thumbnail.png"


def test_oversized_bodies_and_filters_are_refused_and_the_server_keeps_answering(teams):
    tenant = teams["tenant"]
    big = tenant.post("/v1/buckets", content=b"{" + b" " * (40 << 20) + b"}",
                      headers={"Content-Type": "application/json"})
    _error(big, 413, "PayloadTooLargeError", "TIERFLOW_MAX_REQUEST_BYTES")
    empty_groups = tenant.post("/v1/buckets/loose/objects/list", json={"filters": {"OR": [{}] * 50_000}})
    _error(empty_groups, 422, "ValidationError", "groups and conditions")
    assert tenant.post("/v1/namespaces/list").json()["pagination"]["total"] == 1
