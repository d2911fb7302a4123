"""Prefect flow runs as the faces see them: starting a trigger through its deployment, and
reading a task (a flow run together with its batch, the contract's task object).

Shared by the CLI and the REST API: the Prefect run gives the state, the catalog gives what the
run did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterIdempotencyKey,
    FlowRunFilterState,
    FlowRunFilterStateType,
    TaskRunFilter,
    TaskRunFilterName,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import SettingsContext, get_settings_context
from prefect.events.worker import EventsWorker
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, Settings
from prefect.states import Cancelled, Cancelling, Crashed

from flows.clients import QUICK_RETRIES, retry_busy_api_soon
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog.engine import open_session
from tierflow.errors import NotFoundError, TransientError
from tierflow.settings import get_settings

log = logging.getLogger(__name__)


class RunnerUnavailableError(TransientError):
    """No Prefect API, no deployment to start the run through (start `tierflow serve`), or this
    server's runner still starting or stopping: answered 503 with `Retry-After`."""

    status = 503
    type_name = "ServiceUnavailableError"


def start_trigger_run(parameters: dict[str, Any], *, idempotency_key: str) -> str:
    """Create a run of the trigger deployment (a worker or `tierflow serve` picks it up); its id.

    Created with `idempotency_key`, so asking again after an error that hid the answer (the run may
    exist) gives the same run, never a second one; after the last attempt the run is looked up by
    that key before this decides that it did not start. While this process's own runner is
    starting (`tierflow serve`: `expect_runner`), a deployment not registered yet is waited for, so
    a trigger sent right after the server came up is taken instead of answered 503; so is that
    runner (`wait_for_runner_with`), and no run is created unless it is there to start it. A
    server that is shutting down (`stop_taking_runs`) starts none."""
    settings = get_settings()
    name = settings.trigger_deployment
    if _stopping:
        raise RunnerUnavailableError("the server is shutting down; send the request to another server or retry "
                                     "once it is back")
    deadline = time.monotonic() + (settings.runner_start_seconds if _runner_since else 0)
    if _runner_entered and not _runner_entered[0](max(0.0, deadline - time.monotonic())):
        raise RunnerUnavailableError("this server's runner is still starting; retry shortly")
    try:
        with get_client(sync_client=True) as client:
            retry_busy_api_soon(client)
            for attempt in range(_CREATE_ATTEMPTS):
                deployment_id = _deployment_id(client, name, deadline)
                try:
                    with _quick_retries():
                        run = client.create_flow_run_from_deployment(
                            deployment_id, parameters=parameters, tags=["tierflow"], idempotency_key=idempotency_key)
                    _hand_over(run)
                    return str(run.id)
                except httpx.HTTPError as error:
                    if _not_found(error) and attempt < _CREATE_ATTEMPTS - 1:
                        _forget_deployment(client, name)  # deleted since it was read: read it again
                        continue
                    if attempt == _CREATE_ATTEMPTS - 1:
                        found = _run_with_key(client, idempotency_key)
                        if found is not None:
                            return found
                        raise
                    time.sleep(0.25 * 2**attempt)
    except ObjectNotFound:
        raise RunnerUnavailableError(
            f"the Prefect deployment '{name}' does not exist; start it with `tierflow serve`"
        ) from None
    except httpx.HTTPError as error:
        raise RunnerUnavailableError(f"the Prefect API cannot be reached ({type(error).__name__})") from None
    raise AssertionError("unreachable")  # every attempt returns or raises


_CREATE_ATTEMPTS = 5


def _hand_over(run: FlowRun) -> None:
    """Have this process's runner start `run` now. The run exists whatever happens here, and a
    poll starts it: a failure is logged, never answered as the trigger's."""
    for wake in _wake_runner:
        try:
            wake(run)
        except Exception:  # the caller answers that the run was accepted, and it was
            log.exception("flow run %s could not be handed to the runner; its next poll starts it", run.id)


_retry_settings: list[tuple[Settings, Settings]] = []
"""The settings `_quick_retries` was last built from, and those it built."""


def _quick_retries() -> SettingsContext:
    """The current Prefect settings with fewer client retries: Prefect's last one waits 32 s,
    and a trigger tries again itself, sooner. Built once for the settings in force, not for each
    trigger: building Settings is a noticeable part of a small batch's start."""
    context = get_settings_context()
    if not _retry_settings or _retry_settings[0][0] is not context.settings:
        quick = context.settings.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: len(QUICK_RETRIES)})
        _retry_settings[:] = [(context.settings, quick)]
    return SettingsContext(profile=context.profile, settings=_retry_settings[0][1])


_deployment_ids: dict[tuple[str, str], UUID] = {}
"""The ids of deployments found served as this process expects, by Prefect API and name: a trigger
does not read its deployment again before each run it creates (a round trip to the API)."""


def _deployment_id(client: Any, name: str, deadline: float) -> UUID:
    """The id of deployment `name` once it is served as this process expects (`_served_deployment`)."""
    key = (str(client.api_url), name)
    known = _deployment_ids.get(key)
    if known is None:
        deployment = _served_deployment(client, name, deadline)
        known = deployment.id
        if _served_here(deployment):
            _deployment_ids[key] = known
    return known


def _forget_deployment(client: Any, name: str) -> None:
    """Read deployment `name` again next time."""
    _deployment_ids.pop((str(client.api_url), name), None)


def _not_found(error: httpx.HTTPError) -> bool:
    """Whether the API answered 404 (a run asked of a deployment that is gone)."""
    return isinstance(error, httpx.HTTPStatusError) and error.response.status_code == 404


def _served_deployment(client: Any, name: str, deadline: float) -> Any:
    """The deployment `name`, once it is served as this process expects (`_served_here`) or at
    `deadline`; ObjectNotFound when it is not registered by then."""
    while True:
        try:
            deployment = client.read_deployment_by_name(name)
            if _served_here(deployment) or time.monotonic() >= deadline:
                return deployment
        except ObjectNotFound:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.25)


def _run_with_key(client: Any, idempotency_key: str) -> str | None:
    """The id of the flow run created with `idempotency_key`, if the API has one (None when it
    cannot be asked either)."""
    try:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=[idempotency_key])), limit=1)
    except httpx.HTTPError:
        return None
    return str(runs[0].id) if runs else None


_stopping: list[bool] = []
"""Non-empty once this process stopped taking runs (`stop_taking_runs`)."""


def stop_taking_runs() -> None:
    """This process is shutting down: triggers are refused (503) and `/ready` says so."""
    _stopping[:] = [True]


def taking_runs() -> bool:
    """Whether this process still starts runs (it is not shutting down)."""
    return not _stopping


_runner_since: list[datetime] = []
"""When this process began starting a runner for the deployments (empty: it does not)."""


def expect_runner() -> None:
    """This process starts a runner for the deployments: triggers wait for it while it starts."""
    _runner_since[:] = [datetime.now(UTC)]


_wake_runner: list[Callable[[FlowRun], None]] = []
"""What has this process's runner start a run now (empty: it has none)."""


def wake_runner_with(wake: Callable[[FlowRun], None]) -> None:
    """This process's runner starts each run created here as soon as `wake(run)` is called, not at
    its next poll of the Prefect API."""
    _wake_runner[:] = [wake]


_runner_entered: list[Callable[[float], bool]] = []
"""Waits up to that many seconds for this process's runner to take runs; whether it does (empty:
it has none to wait for)."""


def wait_for_runner_with(wait: Callable[[float], bool]) -> None:
    """This process's runner takes runs once `wait(seconds)` is true: until then a trigger waits
    for it (bounded, then 503) before it creates a run, and `/ready` says it is still starting."""
    _runner_entered[:] = [wait]


_runs_warm: list[Callable[[], bool]] = []
"""Whether this process's runner starts runs warm yet (empty: it has no such start to wait for)."""


def report_warm_starts_with(ready: Callable[[], bool]) -> None:
    """This process's runner starts runs warm once `ready()`: until then `/ready` says it is
    still starting (a run it starts waits for that)."""
    _runs_warm[:] = [ready]


def _served_here(deployment: Any) -> bool:
    """Whether the deployment is served as this process expects: by any runner or worker, or, in a
    process that starts a runner, by that runner (it registered the deployment since it started;
    a registration left by an earlier server on the same Prefect API does not count)."""
    return not _runner_since or (deployment.updated is not None and deployment.updated >= _runner_since[0])


def readiness() -> dict[str, str]:
    """What a trigger needs, each checked now: 'ok' or why not (`GET /ready`)."""
    from sqlalchemy import text

    from tierflow.catalog.engine import open_session

    settings = get_settings()
    checks: dict[str, str] = {}
    if _stopping:
        checks["server"] = "shutting down"
    try:
        with open_session(settings.database_url) as session:
            session.execute(text("SELECT 1"))
        checks["catalog"] = "ok"
    except Exception as error:  # reported, not raised: this is the answer
        checks["catalog"] = f"unreachable ({type(error).__name__})"
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(settings.trigger_deployment)
        served = _served_here(deployment) and (not _runner_entered or _runner_entered[0](0))
        checks["deployment"] = "ok" if served else "this server's runner is still starting"
    except ObjectNotFound:
        checks["deployment"] = f"'{settings.trigger_deployment}' not registered yet (is a runner or worker serving it?)"
    except Exception as error:  # the Prefect API is down or refuses
        checks["deployment"] = f"the Prefect API cannot be reached ({type(error).__name__})"
    if checks["deployment"] == "ok" and _runs_warm and not _runs_warm[0]():
        checks["deployment"] = "this server's runner is still starting (importing what its runs need)"
    return checks


def _unfinished_runs(client: Any, task_ids: list[str]) -> Iterator[Any]:
    """The flow runs of these ids that exist and have not finished."""
    for task_id in task_ids:
        try:
            run = client.read_flow_run(UUID(task_id))
        except (ObjectNotFound, ValueError):
            continue
        if run.state is not None and not run.state.is_final():
            yield run


def mark_crashed(task_ids: list[str], message: str) -> list[str]:
    """Mark these flow runs CRASHED unless they have finished (their process is known gone: the
    lease they held ran out); the ids it marked."""
    with get_client(sync_client=True) as client:
        runs = list(_unfinished_runs(client, task_ids))
        for run in runs:
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
    return [str(run.id) for run in runs]


def cancel_runs(task_ids: list[str]) -> None:
    """Ask Prefect to cancel these flow runs: a running one is stopped by its runner or worker,
    one not started yet is cancelled outright. Runs already finished are left as they are."""
    with get_client(sync_client=True) as client:
        for run in list(_unfinished_runs(client, task_ids)):
            state = Cancelling() if run.state.is_running() else Cancelled()
            client.set_flow_run_state(run.id, state, force=True)


def batch_run_ids(batch_id: str) -> list[str]:
    """The Prefect flow runs of a batch: its trigger's, retries' and resumes', and its tiers'."""
    with open_session(get_settings().database_url) as session:
        return catalog_batches.run_ids(session, batch_id=batch_id)


_UNFINISHED = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[
    StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING])))


_CLOSINGS = TaskRunFilter(name=TaskRunFilterName(like_="finish-"))
"""The task run that closes a flow run of a batch: `finish-batch` the trigger's, `finish-tier-N`
a tier's. Its process sent its events after those of every other task run of that flow run."""


def wait_until_recorded(flow_run_ids: list[str], *, timeout: float = 10.0) -> bool:
    """Send this process's pending Prefect events, then wait until the API has recorded every
    task run of these flow runs, final; whether it did within `timeout` seconds.

    The API records task runs from the events their process sends, a moment after they end. A
    process that started Prefect's temporary API (no PREFECT_API_URL) stops it as it exits, and
    stopping it in the middle of such a write printed the API's tracebacks under `make demo`'s
    output (3 runs of 8) and left that task run unfinished in Prefect's database. Waiting for
    the trigger's own task runs alone still let 1 run of 10 print them; with the events sent
    first and every run of the batch waited for, none of 23 did.

    "None of those the API shows is unfinished" was not enough: it could show the early ones
    final before it had heard of the last, the trigger's `finish-batch`
    (tests/deployments/test_recorded.py failed that way in 1 of 5 runs of the suite). So each
    flow run that completed must also show its closing task run (`_CLOSINGS`): the API records a
    process's events in the order they were sent, and that one was sent last.
    """
    EventsWorker.drain_all(timeout=timeout, at_exit=False)
    deadline = time.monotonic() + timeout
    ids = FlowRunFilterId(any_=[UUID(i) for i in flow_run_ids])
    with get_client(sync_client=True) as client:
        while not _all_recorded(client, ids):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)  # polling the API: it offers nothing to wait on
    return True


def _all_recorded(client: Any, ids: FlowRunFilterId) -> bool:
    """Whether the API shows task runs of these flow runs, none unfinished, and the closing one
    of each flow run that completed."""
    runs = FlowRunFilter(id=ids)
    if not client.read_task_runs(flow_run_filter=runs, limit=1):
        return False
    if client.read_task_runs(flow_run_filter=runs, task_run_filter=_UNFINISHED, limit=1):
        return False
    completed = FlowRunFilter(id=ids, state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])))
    closed = {t.flow_run_id for t in client.read_task_runs(flow_run_filter=runs, task_run_filter=_CLOSINGS)}
    return all(run.id in closed for run in client.read_flow_runs(flow_run_filter=completed))


_PREFECT_TO_STATUS = {
    "SCHEDULED": "PENDING", "PENDING": "PENDING", "PAUSED": "PENDING", "RUNNING": "PROCESSING",
    "COMPLETED": "COMPLETED", "FAILED": "FAILED", "CRASHED": "FAILED", "CANCELLED": "CANCELED",
    # Still running until its runner or worker stops it; the batch already says CANCELED.
    "CANCELLING": "PROCESSING",
}


async def read_task(task_id: str) -> dict[str, Any]:
    """The task object of `GET /v1/tasks/{task_id}`; NotFoundError for unknown ids."""
    try:
        run_id = UUID(task_id)
    except ValueError:
        raise NotFoundError("task", task_id) from None
    try:
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
    except ObjectNotFound:
        raise NotFoundError("task", task_id) from None
    with open_session(get_settings().database_url) as session:
        found = catalog_batches.find_by_task(session, task_id=task_id)
        batch, tier_num = found if found else (None, None)
        tiers = catalog_batches.get_tiers(session, batch_id=batch["batch_id"]) if batch else []
    state = run.state.type.value if run.state else "PENDING"
    status = _PREFECT_TO_STATUS.get(state, "PENDING")
    if batch is not None and status == "COMPLETED":
        # A finished run may still have failed inputs: the batch (or tier) says how it went.
        status = batch["status"] if tier_num is None else tiers[tier_num]["status"]
    additional: dict[str, Any] = {}
    if batch is not None:
        additional = {
            "batch_id": batch["batch_id"], "namespace_id": batch["namespace_id"],
            "collection_ids": batch["collection_ids"], "current_tier": batch["current_tier"],
            "total_tiers": batch["total_tiers"], "object_count": batch["object_count"],
        }
        if tier_num is not None:
            additional["tier_num"] = tier_num
    error = None
    if status == "FAILED":
        # The batch's reason, never Prefect's state message: that one quotes the raw exception.
        reason = (batch["error_summary"] or {}).get("message") if batch is not None and tier_num is None else None
        error = {"message": reason or "the run failed; the batch's failed_inputs and the server's log say why"}
    return {
        "task_id": task_id,
        "task_type": "engine_feature_extractor_run" if tier_num is not None else "api_collections_trigger",
        "status": status,
        "inputs": run.parameters,
        "outputs": batch and {"document_count": batch["document_count"], "status": batch["status"]},
        "additional_data": additional,
        "error": error,
        "flow_run_name": run.name,
    }
