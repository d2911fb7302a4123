"""The served deployments: a manual/API one and a cron one, run for real through the Prefect API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from deployments.serve import PENDING_ONLY, build_deployments
from tests.utils.factories import apply_definitions, chunk_collection, passthrough_collection, text_bucket
from tierflow.batches import batch_view
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog.engine import open_session


def test_deployments_are_built_with_a_form_and_a_schedule():
    manual, scheduled = build_deployments(namespace="quickstart", collection="paragraphs", cron="*/5 * * * *")
    assert manual.name == "trigger-collection" and not manual.schedules
    schema = manual._parameter_openapi_schema.model_dump()
    assert schema["required"] == ["namespace", "collection"]
    assert schema["properties"]["namespace"]["description"] == "The namespace, by id (ns_…) or name."
    request = schema["definitions"]["TriggerRequest"]["properties"]
    assert request["source_filters"]["title"] == "Source filters"
    assert "LogicalOperator" in request["source_filters"]["description"]
    assert scheduled.schedules[0].schedule.cron == "*/5 * * * *"
    assert scheduled.parameters["request"] == {"source_filters": PENDING_ONLY}


async def _wait_for_deployment(name: str, deadline: float) -> None:
    async with get_client() as client:
        while True:
            try:
                await client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


def test_api_triggered_run_through_the_served_deployment(prefect_harness, catalog, moto_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("TIERFLOW_S3_ENDPOINT_URL", moto_endpoint)
    from tierflow.settings import get_settings
    from tierflow.storage import s3_client

    get_settings.cache_clear()
    s3_client.cache_clear()
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="tierflow-test")
    s3.put_object(Bucket="tierflow-test", Key="notes/a.txt", Body=b"one two three four")
    apply_definitions(tmp_path, {"namespace": "served", "buckets": [text_bucket(unique_key=["key"])],
                                 "collections": [chunk_collection(), passthrough_collection("copies", "chunks")]})

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "TIERFLOW_DATABASE_URL": catalog,
           "TIERFLOW_S3_ENDPOINT_URL": moto_endpoint}
    server = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import app; app()", "deployments", "serve",
         "--namespace", "served", "--collection", "chunks"],
        env=env, cwd=Path(__file__).parents[2], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(_wait_for_deployment("trigger-collection/trigger-collection", time.monotonic() + 90))
        run = run_deployment(
            "trigger-collection/trigger-collection",
            parameters={"namespace": "served", "collection": "chunks",
                        "request": {"source_filters": {"field": "key", "operator": "ends_with", "value": ".txt"}}},
            timeout=120,
        )
        assert run.state.is_completed(), run.state
        with open_session(catalog) as session:
            batch, tier = catalog_batches.find_by_task(session, task_id=str(run.id))
        view = batch_view(batch["batch_id"])
        assert tier is None and view["status"] == "COMPLETED"
        assert [t["documents_written"] for t in view["tier_tasks"]] == [2, 2]
        assert asyncio.run(_scheduled_exists())
    finally:
        server.terminate()
        assert server.wait(timeout=30) is not None


async def _scheduled_exists() -> bool:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("trigger-collection/process-pending")
        return bool(deployment.schedules) and deployment.parameters["collection"] == "chunks"


def test_prefect_yaml_deployments_point_at_the_flow_with_valid_parameters():
    import yaml

    from flows.trigger import trigger_collection

    spec = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text())
    names = [d["name"] for d in spec["deployments"]]
    assert names == ["trigger-collection", "process-pending"]
    for deployment in spec["deployments"]:
        assert deployment["entrypoint"] == "flows/trigger.py:trigger_collection"
        assert deployment["work_pool"]["name"] == "tierflow-pool"
        if "parameters" in deployment:
            checked = trigger_collection.validate_parameters(deployment["parameters"])
            assert checked["request"].source_filters == PENDING_ONLY
