"""A batch whose process is killed (SIGKILL) mid-tier is resumed: nothing redone, nothing doubled.

The bucket has no unique_key, so a redone input would show as extra documents. The per-input
ledger commits with each chunk's documents, which is what lets the resumed run pick up exactly
the inputs that were not done.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import boto3
import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.main import app
from flows.resume import resume_crashed_batches
from tests.utils.factories import apply_definitions, chunk_collection, passthrough_collection, text_bucket
from tierflow.batch_view import batch_view
from tierflow.catalog.engine import open_session
from tierflow.catalog.schema import batch_inputs, batches, documents
from tierflow.timestamps import now_text

OBJECTS = 9


async def _state_of(task_id: str) -> str:
    async with get_client() as client:
        return (await client.read_flow_run(UUID(task_id))).state_type.value


def _lease_ran_out(url: str, batch_id: str) -> bool:
    with open_session(url) as session:
        expires = session.execute(select(batches.c.lease_expires_at).where(batches.c.batch_id == batch_id)).scalar()
    return expires is not None and expires < now_text()


def _ledger(url: str) -> tuple[str | None, dict[str, int]]:
    """The batch id and the root tier's inputs by status (the document tier, which runs beside it,
    may or may not have selected the first chunk's documents when the process is killed)."""
    with open_session(url) as session:
        batch_id = session.execute(select(batches.c.batch_id)).scalar()
        rows = session.execute(select(batch_inputs.c.status, func.count())
                               .where(batch_inputs.c.tier_num == 0).group_by(batch_inputs.c.status)).all()
    return batch_id, dict(rows)


@pytest.mark.parametrize("how", ["by hand", "by the crash sweep"])
def test_killed_mid_tier_then_resumed(prefect_harness, catalog, moto_endpoint, tmp_path, how):
    from prefect.settings import PREFECT_API_URL

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="tierflow-test")
    for i in range(OBJECTS):
        s3.put_object(Bucket="tierflow-test", Key=f"notes/{i:02d}.txt", Body=f"alpha{i} beta{i}".encode())
    bucket = text_bucket()
    bucket["storage"]["endpoint_url"] = moto_endpoint
    apply_definitions(tmp_path, {"namespace": "crash", "buckets": [bucket],
                                 "collections": [chunk_collection(size=1), passthrough_collection("copies", "chunks")]})
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "TIERFLOW_DATABASE_URL": catalog,
           "TIERFLOW_CHUNK_SIZE": "3", "TIERFLOW_CHUNK_CONCURRENCY": "1", "TIERFLOW_BATCH_LEASE_SECONDS": "2"}
    child = subprocess.Popen(
        [sys.executable, "-c", "import tests.utils.stall_after_first_chunk; from cli.main import app; app()",
         "trigger", "chunks", "-n", "crash"],
        env=env, cwd=Path(__file__).parents[2], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _ledger(catalog)[1].get("COMPLETED", 0) == 0:
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        child.kill()  # SIGKILL: no clean-up code of the child runs
        child.wait()
    batch_id, statuses = _ledger(catalog)
    assert statuses == {"COMPLETED": 3, "PENDING": OBJECTS - 3}
    assert batch_view(batch_id)["status"] == "IN_PROGRESS"

    runner = CliRunner()
    killed_run = batch_view(batch_id)["task_id"]
    if how == "by hand":
        if not _lease_ran_out(catalog, batch_id):
            refused = runner.invoke(app, ["batch", "resume", batch_id])
            assert refused.exit_code == 1 and "--force" in refused.stderr
        resumed = runner.invoke(app, ["batch", "resume", batch_id, "--force"])
        assert resumed.exit_code == 0, resumed.output
    else:
        deadline = time.monotonic() + 30
        while not _lease_ran_out(catalog, batch_id):  # the killed run renews it no more
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert asyncio.run(resume_crashed_batches()) == [batch_id]
        assert asyncio.run(_state_of(killed_run)) == "CRASHED"  # whatever Prefect believed before
        assert asyncio.run(resume_crashed_batches()) == []  # finished now: nothing left to resume

    view = batch_view(batch_id)
    assert view["status"] == "COMPLETED" and view["audit"]["balanced"]
    assert [(t["documents_submitted_to_engine"], t["inputs_succeeded"]) for t in view["tier_tasks"]] == [
        (OBJECTS, OBJECTS), (2 * OBJECTS, 2 * OBJECTS)]
    with open_session(catalog) as session:
        per_collection = dict(session.execute(
            select(documents.c.collection_id, func.count()).group_by(documents.c.collection_id)).all())
    assert sorted(per_collection.values()) == [2 * OBJECTS, 2 * OBJECTS]  # each object once: no duplicates
    again = runner.invoke(app, ["batch", "resume", batch_id])
    assert again.exit_code == 1 and "already COMPLETED" in again.stderr
