"""A trigger sent the moment a fresh `tierflow serve` answers `/health`: taken (202) and run to
the end, or refused (503 with `Retry-After`) before any run exists; never a 500.

`TIERFLOW_TEST_FRESH_STARTS` sets how many fresh starts (5 by default; the race it guards
against showed in about half of them, so 20 finds it almost surely).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest

from tests.utils.factories import apply_definitions, chunk_collection, put_text, text_bucket
from tests.utils.http_stack import ROOT, TIERFLOW, finished_task, free_port
from tierflow.catalog.engine import open_session
from tierflow.keys import create_key

STARTS = int(os.environ.get("TIERFLOW_TEST_FRESH_STARTS", "5"))


@pytest.fixture
def world(prefect_harness, catalog, moto_endpoint, tmp_path) -> dict[str, Any]:
    """A namespace with one small collection over moto's S3, and the env of a server reading it."""
    from prefect.settings import PREFECT_API_URL

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3_bucket = f"fresh-{uuid.uuid4().hex[:8]}"  # moto's state is one per process, shared by every module
    s3.create_bucket(Bucket=s3_bucket)
    for i in range(2):
        put_text(s3, f"notes/{i}.txt", f"one two three four {i}", bucket=s3_bucket)
    bucket = {**text_bucket(), "storage": {"s3_bucket": s3_bucket, "prefix": "notes/"}}
    apply_definitions(tmp_path, {"namespace": "fresh", "buckets": [bucket], "collections": [chunk_collection()]})
    with open_session(catalog) as session:
        key = create_key(session, name="fresh")[1]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "TIERFLOW_DATABASE_URL": catalog,
           "TIERFLOW_S3_ENDPOINT_URL": moto_endpoint}
    return {"env": env, "headers": {"Authorization": f"Bearer {key}", "X-Namespace": "fresh"}}


@pytest.fixture
def fresh_server(world) -> Iterator[Callable[[], str]]:
    """Start `tierflow serve` anew (killing the one before): its base URL the moment `/health`
    answers, not `/ready`."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        if started:
            _kill(started[-1])
        port = free_port()
        started.append(subprocess.Popen([*TIERFLOW, "serve", "--port", str(port)], env=world["env"], cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        base_url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base_url, timeout=1) as probe:
            deadline = time.monotonic() + 60
            while not _answers_health(probe):
                assert started[-1].poll() is None and time.monotonic() < deadline, "tierflow serve did not come up"
                time.sleep(0.02)  # polling the port: nothing to wait on; tight, the race is short
        return base_url

    yield start
    if started:
        _kill(started[-1])


def _answers_health(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def _kill(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.kill()
        server.wait()


def _trigger_runs() -> int:
    """How many runs of the trigger deployment the Prefect API holds."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=["trigger-collection"]))))


def test_a_trigger_sent_as_soon_as_a_fresh_server_answers_is_taken_or_refused_cleanly(world, fresh_server):
    answers: list[int] = []
    for _ in range(STARTS):
        base_url = fresh_server()
        runs_before = _trigger_runs()
        with httpx.Client(base_url=base_url, headers=world["headers"], timeout=120) as client:
            answer = client.post("/v1/collections/chunks/trigger", json={})
            answers.append(answer.status_code)
            if answer.status_code == 503:
                assert answer.headers["Retry-After"].isdigit(), answer.headers
                assert _trigger_runs() == runs_before  # refused before any run was created
                continue
            assert answer.status_code == 202, (answers, answer.text)
            body = answer.json()
            task = finished_task(client, world["headers"], body["task_id"], seconds=60)
            batch = client.get(f"/v1/batches/{body['batch_id']}", headers=world["headers"]).json()
            assert (task["status"], batch["status"], batch["document_count"]) == ("COMPLETED", "COMPLETED", 4)
            assert _trigger_runs() == runs_before + 1
    assert 202 in answers, answers  # a server that refuses every trigger would pass the rest
