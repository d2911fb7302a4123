"""What the crash-recovery tests share: `tierflow serve` over moto with short leases, a
600-object batch to stop in the middle, and the checks that it then completes exactly."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import func, select

from tests.utils.http_stack import TERMINAL, new_cli_key, poll, served
from tests.utils.http_stack import define as define_over_http
from tierflow.catalog.engine import dispose_engines, open_session
from tierflow.catalog.schema import batch_inputs, batches, documents, objects

OBJECTS = 600
WORDS = 5  # "w1 w2 w3 w4 wN": three chunks of two words each
CHUNKS_PER_OBJECT = 3


@pytest.fixture(scope="module")
def stack(prefect_harness, tmp_path_factory) -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer
    from prefect.settings import PREFECT_API_URL

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    endpoint = "http://{}:{}".format(*moto.get_host_and_port())
    url = f"sqlite:///{tmp_path_factory.mktemp('recovery') / 'catalog.db'}"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "TIERFLOW_S3_ENDPOINT_URL": endpoint,
           "TIERFLOW_DATABASE_URL": url, "TIERFLOW_BATCH_LEASE_SECONDS": "2", "TIERFLOW_SWEEP_SECONDS": "0.3",
           "TIERFLOW_CHUNK_SIZE": "10", "TIERFLOW_CHUNK_CONCURRENCY": "1", "TIERFLOW_DOCUMENT_CHUNK_SIZE": "30",
           "TIERFLOW_DISCOVERY_PAGE_SIZE": "20", "TIERFLOW_SHUTDOWN_GRACE_SECONDS": "1"}
    key = new_cli_key(env, "--name", "ci")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    name = f"recovery-{uuid.uuid4().hex[:8]}"  # moto's state is one per process, shared by every module
    s3.create_bucket(Bucket=name)
    yield {"env": env, "key": key, "s3": s3, "url": url, "bucket": name}
    dispose_engines()
    moto.stop()


def define(client: httpx.Client, namespace: str, s3: Any, s3_bucket: str) -> dict[str, str]:
    """A namespace whose bucket (no unique_key) holds OBJECTS files, read by words → copies."""
    for i in range(OBJECTS):
        s3.put_object(Bucket=s3_bucket, Key=f"{namespace}/{i:04d}.txt", Body=f"w1 w2 w3 w4 w{i}".encode())
    return define_over_http(client, namespace, f"{namespace}/", s3_bucket=s3_bucket, unique_key=False)


def progress(url: str, batch_id: str) -> dict[str, int]:
    """How far the batch is: objects registered, inputs done per tier."""
    with open_session(url) as session:
        namespace = session.execute(select(batches.c.namespace_id).where(batches.c.batch_id == batch_id)).scalar()
        registered = session.execute(select(func.count()).select_from(objects)
                                     .where(objects.c.namespace_id == namespace)).scalar_one()
        done = dict(session.execute(
            select(batch_inputs.c.tier_num, func.count()).where(
                batch_inputs.c.batch_id == batch_id, batch_inputs.c.status == "COMPLETED")
            .group_by(batch_inputs.c.tier_num)).all())
    return {"registered": registered, "tier0": done.get(0, 0), "tier1": done.get(1, 0)}


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def interrupted(stack: dict[str, Any], namespace: str, at: Callable[[dict[str, int]], bool],
                 how: signal.Signals) -> tuple[str, str, list[int]]:
    """Serve, trigger a batch, and stop the server with `how` once `at(progress)`; (batch id,
    its first run's task id, the server's processes that were alive when it was stopped)."""
    with served(stack["env"]) as (server, base_url):
        client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {stack['key']}"}, timeout=30)
        headers = define(client, namespace, stack["s3"], stack["bucket"])
        answer = client.post("/v1/collections/words/trigger", json={}, headers=headers)
        assert answer.status_code == 202, answer.text
        batch_id, task_id = answer.json()["batch_id"], answer.json()["task_id"]
        reached = poll(lambda: progress(stack["url"], batch_id), at, seconds=120)
        assert reached["tier0"] < OBJECTS, f"the batch ran past the point to stop it at: {reached}"
        started = sorted(descendants(server.pid))
        server.send_signal(how)
        server.wait(timeout=60)
        client.close()
    return batch_id, task_id, started


def completes_exactly(stack: dict[str, Any], batch_id: str) -> dict[str, Any]:
    """Serve again: the batch completes by itself, every input once."""
    with served(stack["env"]) as (_, base_url):
        client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {stack['key']}"}, timeout=30)
        view = poll(lambda: client.get(f"/v1/batches/{batch_id}", headers=namespace_of(stack, batch_id)).json(),
                    lambda v: v["status"] in TERMINAL, seconds=180)
        client.close()
    assert view["status"] == "COMPLETED", (view["error_summary"], view["tier_tasks"])
    assert view["audit"]["balanced"] and view["audit"]["failed"] == 0
    assert [(t["inputs_succeeded"], t["documents_written"]) for t in view["tier_tasks"]] == [
        (OBJECTS, OBJECTS * CHUNKS_PER_OBJECT), (OBJECTS * CHUNKS_PER_OBJECT, OBJECTS * CHUNKS_PER_OBJECT)]
    with open_session(stack["url"]) as session:
        made = dict(session.execute(select(documents.c.collection_id, func.count())
                                    .where(documents.c.batch_id == batch_id).group_by(documents.c.collection_id)).all())
    assert sorted(made.values()) == [OBJECTS * CHUNKS_PER_OBJECT] * 2  # no input twice, none lost
    return view


def namespace_of(stack: dict[str, Any], batch_id: str) -> dict[str, str]:
    with open_session(stack["url"]) as session:
        return {"X-Namespace": session.execute(
            select(batches.c.namespace_id).where(batches.c.batch_id == batch_id)).scalar_one()}


async def state_of(task_id: str) -> str:
    async with get_client() as client:
        return (await client.read_flow_run(task_id)).state_type.value


POINTS: dict[str, Callable[[dict[str, int]], bool]] = {
    "during discovery": lambda p: 0 < p["registered"] < OBJECTS,
    "mid tier 0": lambda p: p["tier0"] >= 100,
    "while tier 1 runs": lambda p: p["tier1"] >= 30,
}


