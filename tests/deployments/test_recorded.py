"""A process that ran a trigger waits until Prefect's API has recorded its task runs before it
exits (and stops a temporary API with it)."""

from __future__ import annotations

import uuid

from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.states import Completed

from deployments.runs import batch_run_ids, wait_until_recorded
from tests.utils.factories import (
    apply_definitions,
    chunk_collection,
    passthrough_collection,
    put_text,
    text_bucket,
    trigger,
)


def test_a_triggers_task_runs_are_all_final_in_the_api_once_waited_for(flows, tmp_path):
    put_text(flows, "notes/a.txt", "a1 a2 a3")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=2), passthrough_collection("copies", "chunks")]})
    response = trigger("flows", "chunks")
    run_ids = batch_run_ids(response["batch_id"])
    assert len(run_ids) == 3 and run_ids[0] == response["task_id"]  # the trigger and its two tiers

    assert wait_until_recorded(run_ids)
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(i) for i in run_ids])))
    names = {t.name.rsplit("-", 1)[0] if t.name.startswith("finish-batch") else t.name for t in task_runs}
    assert {"finish-batch", "finish-tier-0", "finish-tier-1"} <= names
    assert all(t.state is not None and t.state.is_final() for t in task_runs)


def test_waiting_for_runs_the_api_does_not_know_gives_up_after_the_timeout(flows):
    assert wait_until_recorded([str(uuid.uuid4())], timeout=0.3) is False


@task
def _step() -> None:
    """Stands for any task of a tier; only its runs, made by hand below, are used."""


@flow
def _tier() -> None:
    """Stands for a tier's flow; only its runs, made by hand below, are used."""


def test_a_completed_run_is_not_recorded_until_the_api_shows_its_closing_task_run(prefect_harness):
    # The API can show a run's early task runs, all final, before it has heard of the last one.
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(_tier, state=Completed())
        client.create_task_run(_step, run.id, "chunk", name="process-chunk-1", state=Completed())
        assert wait_until_recorded([str(run.id)], timeout=0.3) is False
        client.create_task_run(_step, run.id, "close", name="finish-tier-0", state=Completed())
    assert wait_until_recorded([str(run.id)], timeout=5)
