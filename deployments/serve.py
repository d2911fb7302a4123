"""Serve tierflow's deployments from this process: manual/API runs, a cron example, a crash sweep.

`trigger-collection/trigger-collection` takes any namespace, collection and request: run it from
the Prefect UI's form, with `prefect deployment run`, `run_deployment()` or Prefect's REST
`create_flow_run_from_deployment`. `trigger-collection/process-pending` runs on a cron schedule
and processes only objects not processed yet (`status` eq `PENDING`).
`resume-crashed-batches/resume-crashed` runs every minute and resumes batches whose run crashed.
"""

from __future__ import annotations

from typing import Any

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.resume import resume_crashed_batches
from flows.trigger import trigger_collection
from tierflow.settings import get_settings

PENDING_ONLY: dict[str, Any] = {"AND": [{"field": "status", "operator": "eq", "value": "PENDING"}]}


def build_deployments(*, namespace: str, collection: str, cron: str) -> list[RunnerDeployment]:
    """The manual deployment, the scheduled one for `namespace`/`collection`, and the crash sweep."""
    manual = trigger_collection.to_deployment(
        name="trigger-collection",
        description="Trigger a collection by hand or by API: fill in namespace, collection and request.",
        tags=["tierflow"],
    )
    scheduled = trigger_collection.to_deployment(
        name="process-pending",
        description=f"Every '{cron}': process the new objects of {namespace}/{collection}.",
        cron=cron,
        parameters={"namespace": namespace, "collection": collection,
                    "request": {"source_filters": PENDING_ONLY}},
        tags=["tierflow", "scheduled"],
    )
    sweep = resume_crashed_batches.to_deployment(
        name="resume-crashed",
        description="Every minute: resume batches whose run crashed (killed process, lost machine).",
        interval=60,
        tags=["tierflow", "scheduled"],
    )
    return [manual, scheduled, sweep]


def serve_deployments(*, namespace: str, collection: str, cron: str) -> None:
    """Serve both deployments until interrupted (Ctrl-C or SIGTERM)."""
    serve(*build_deployments(namespace=namespace, collection=collection, cron=cron),
          query_seconds=get_settings().runner_poll_seconds)
