"""Prefect's API going away for a few seconds under a running batch (a server restarting): the
run's calls to it are tried again, and the batch completes, every input once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from sqlalchemy import func, select

from tests.utils.factories import apply_definitions, chunk_collection, passthrough_collection, text_bucket
from tests.utils.http_stack import poll
from tests.utils.tcp_proxy import TcpProxy
from tierflow.batch_view import batch_view
from tierflow.catalog.engine import open_session
from tierflow.catalog.schema import batch_inputs, batches, documents

OBJECTS = 120


def _done(url: str) -> int:
    with open_session(url) as session:
        return int(session.execute(select(func.count()).select_from(batch_inputs)
                                   .where(batch_inputs.c.status == "COMPLETED")).scalar_one())


def test_a_batch_rides_out_prefect_api_restarting(prefect_harness, catalog, moto_endpoint, tmp_path):
    from prefect.settings import PREFECT_API_URL

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="prefect-outage")  # its own: moto's state outlives each test's server
    for i in range(OBJECTS):
        s3.put_object(Bucket="prefect-outage", Key=f"notes/{i:03d}.txt", Body=f"alpha{i} beta{i}".encode())
    bucket = text_bucket()
    bucket["storage"].update(s3_bucket="prefect-outage", endpoint_url=moto_endpoint)
    apply_definitions(tmp_path, {"namespace": "po", "buckets": [bucket],
                                 "collections": [chunk_collection(size=1), passthrough_collection("copies", "chunks")]})
    api = urlsplit(PREFECT_API_URL.value())
    proxy = TcpProxy((api.hostname or "127.0.0.1", api.port or 80))
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{proxy.port}{api.path}",
           "TIERFLOW_DATABASE_URL": catalog, "TIERFLOW_CHUNK_SIZE": "4", "TIERFLOW_CHUNK_CONCURRENCY": "1"}
    child = subprocess.Popen([sys.executable, "-c", "from cli.main import app; app()", "trigger", "chunks",
                              "-n", "po"], env=env, cwd=Path(__file__).parents[2],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        poll(lambda: _done(catalog), lambda done: done >= 12, seconds=120)
        proxy.down()
        assert _done(catalog) < 3 * OBJECTS, "the batch ended before the outage"
        time.sleep(3)  # how long Prefect's API is away
        proxy.up()
        output, _ = child.communicate(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
        proxy.down()
    assert child.returncode == 0, output[-3000:]
    with open_session(catalog) as session:
        batch_id = session.execute(select(batches.c.batch_id)).scalar_one()
        made = session.execute(select(func.count()).select_from(documents)).scalar_one()
    view = batch_view(batch_id)
    assert view["status"] == "COMPLETED" and view["audit"]["balanced"], view["error_summary"]
    assert view["object_count"] == OBJECTS
    assert made == 2 * 2 * OBJECTS, view  # two words per object, in two collections: every input once
