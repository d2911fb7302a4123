"""Serve tierflow's deployments from this process: manual/API runs and a cron example, with the
lease sweep beside them and a graceful stop.

`trigger-collection/trigger-collection` takes any namespace, collection and request: run it from
the Prefect UI's form, with `prefect deployment run`, `run_deployment()` or Prefect's REST
`create_flow_run_from_deployment`. `trigger-collection/process-pending` runs on a cron schedule
and processes, for each collection of the DAG, only the inputs new or changed for it
(`dedup_strategy: skip`). Batches whose run died are
resumed by the sweep (`deployments/recovery.py`), in a thread of this process.

On SIGTERM the server takes no new runs (the REST API answers 503, `/ready` too), lets the runs
it is running finish for up to `TIERFLOW_SHUTDOWN_GRACE_SECONDS`, then stops what is left, whose
batches the next server resumes under their lease. A second SIGTERM stops at once. On its way
out it pauses the deployments it served, except those another process was serving when it
started (on a shared Prefect API), whose schedules that process goes on serving.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.exceptions import ObjectNotFound, TerminationSignal
from prefect.runner import Runner

from deployments.recovery import Sweeper
from deployments.runs import report_warm_starts_with, stop_taking_runs, wait_for_runner_with, wake_runner_with
from deployments.warm_starts import WarmStarter, fork_server_ready, start_fork_server
from deployments.webhook_delivery import Deliverer
from flows.clients import retry_busy_api_soon
from flows.trigger import trigger_collection
from tierflow.settings import get_settings

log = logging.getLogger(__name__)

NEW_OR_CHANGED: dict[str, Any] = {"dedup_strategy": "skip"}
"""The scheduled request: for each collection of the DAG, exactly the inputs new or changed for it
(their content, or the collection's extractor settings), not an object status shared by every
collection that reads the bucket."""

SERVED_WITHIN = timedelta(seconds=60)
"""A deployment whose runs someone asked for this recently is being served (Prefect's own
measure: its API marks a deployment not ready after 60 s without a poll)."""


def build_deployments(*, namespace: str, collection: str, cron: str) -> list[RunnerDeployment]:
    """The manual deployment and the scheduled one for `namespace`/`collection`. Their entrypoint
    is the flow's module, which a warm-started run has already imported (`deployments/warm_starts.py`)."""
    manual = trigger_collection.to_deployment(
        name="trigger-collection",
        description="Trigger a collection by hand or by API: fill in namespace, collection and request.",
        tags=["tierflow"], entrypoint_type=EntrypointType.MODULE_PATH,
    )
    scheduled = trigger_collection.to_deployment(
        name="process-pending",
        description=f"Every '{cron}': process the new objects of {namespace}/{collection}.",
        cron=cron,
        parameters={"namespace": namespace, "collection": collection,
                    "request": NEW_OR_CHANGED},
        tags=["tierflow", "scheduled"], entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return [manual, scheduled]


class DrainingRunner(Runner):
    """A Prefect runner whose runs start warm (`deployments/warm_starts.py`) and as soon as they are
    created here (`wake`), and whose SIGTERM drains: no new runs, running ones finish within the
    grace period, then Prefect's own stop (which cancels what is left). On exit it pauses only
    its own deployments (`own_deployments`), where Prefect's runner pauses every one it served."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "pause_on_shutdown": False})
        self._draining = False
        self._entrypoints: dict[UUID, str | None] = {}
        self._own: list[UUID] = []
        self._entered = threading.Event()
        self._wake_falls_back = False

    async def aadd_deployment(self, deployment: RunnerDeployment) -> UUID:
        elsewhere = await served_elsewhere(deployment)
        deployment_id = await super().aadd_deployment(deployment)
        self._entrypoints[deployment_id] = deployment.entrypoint
        if not elsewhere:
            self._own.append(deployment_id)
        return deployment_id

    @property
    def own_deployments(self) -> list[UUID]:
        """The deployments it pauses on exit: those it created, or found paused or unserved."""
        return list(self._own)

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._pause_own()
        finally:
            await super().__aexit__(*exc_info)

    async def _pause_own(self) -> None:
        """Pause its own deployments, so that their schedules make no runs while nobody serves them."""
        for deployment_id in self._own:
            try:
                await self._client.pause_deployment(deployment_id)
            except Exception as error:  # stopping goes on; the next start unpauses it anyway
                log.warning("could not pause deployment %s (%s: %s)", deployment_id, type(error).__name__, error)

    async def __aenter__(self) -> DrainingRunner:
        await super().__aenter__()
        retry_busy_api_soon(self._client)  # it proposes each run's first states, on a busy API too
        # Prefect picks a starter per run through this resolver and has no public way to give one.
        # tests/deployments/test_serve.py fails when Prefect moves it.
        self._scheduled_run_poller._resolve_starter = self._warm_starter
        self._entered.set()
        return self

    def wait_until_entered(self, timeout: float) -> bool:
        """Whether the runner has entered (it takes runs: `wake` hands them over) within
        `timeout` seconds; from any thread."""
        return self._entered.wait(timeout)

    def _warm_starter(self, flow_run: Any) -> WarmStarter:
        return WarmStarter(deployment_name=self._deployment_registry.get_deployment_name(flow_run.deployment_id),
                           entrypoint=self._entrypoints.get(flow_run.deployment_id),
                           heartbeat_seconds=self._heartbeat_seconds, control_channel=self._control_channel)

    def wake(self, flow_run: FlowRun) -> None:
        """Start `flow_run`, just created in this process (from any thread), now rather than at
        the next poll: handed to the runner as if its poll had found it, without the poll (a round
        trip to the API). Prefect's poller skips a run it is already submitting, so a poll that
        finds it too does not start it twice.

        Never raises: the run exists, and the caller answers that it was accepted. A runner that
        has not entered yet leaves it to its first poll; one whose parts Prefect has moved leaves
        it to its next poll, said once in the log."""
        if not self._entered.is_set() or not self.started or self.stopping:
            return
        poller = getattr(self, "_scheduled_run_poller", None)
        if getattr(poller, "stopping", False):
            return
        submit = getattr(poller, "_submit_scheduled_flow_runs", None)
        runs = getattr(poller, "_runs_task_group", None)
        # tests/deployments/test_serve.py fails when Prefect moves them.
        if submit is None or runs is None:
            if not self._wake_falls_back:
                self._wake_falls_back = True
                log.warning("Prefect's runner has no _scheduled_run_poller._submit_scheduled_flow_runs or "
                            "_runs_task_group: runs created here wait for its next poll")
            return
        self.execute_in_background(submit, [flow_run], runs)

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        if self._draining or not self.started:
            super().handle_sigterm(*args, **kwargs)  # a second SIGTERM: stop now
            return
        self._draining = True
        stop_taking_runs()
        stop_polling(self)
        threading.Thread(target=self._drain, name="tierflow-drain", daemon=True).start()

    def _drain(self) -> None:
        deadline = time.monotonic() + get_settings().shutdown_grace_seconds
        while time.monotonic() < deadline and self._running_runs():
            time.sleep(0.25)  # polling Prefect's API: it offers nothing to wait on
        left = self._running_runs()
        if left:
            log.warning("stopping %s run(s) still going after the grace period; their batches are "
                        "resumed under their lease", left)
        self.execute_in_background(self.astop)

    def _running_runs(self) -> int:
        """Flow-run processes this runner started that have not exited."""
        return running_processes(self)


async def served_elsewhere(deployment: RunnerDeployment) -> bool:
    """Whether `deployment` is another process's now: it exists, is not paused, and has been polled
    for runs within `SERVED_WITHIN` (by a runner or a work pool's workers). Serving it too takes
    its runs; pausing it on exit would stop its schedule under the one that still serves it."""
    async with get_client() as client:
        try:
            found = await client.read_deployment_by_name(f"{deployment.flow_name}/{deployment.name}")
        except ObjectNotFound:
            return False
    polled = found.last_polled
    return (not found.paused and polled is not None
            and datetime.now(UTC) - polled < SERVED_WITHIN)


def running_processes(runner: Runner) -> int:
    """How many flow-run processes the runner started are still alive (Prefect keeps the count
    on its process manager, thread-safe, for its own webserver; no public accessor on the runner).
    tests/deployments/test_serve.py fails when Prefect moves it."""
    manager = getattr(runner, "_process_manager", None)
    count = getattr(manager, "flow_run_count", None)
    return int(count()) if callable(count) else 0


def stop_polling(runner: Runner) -> bool:
    """Have the runner start no more scheduled runs (Prefect has no public switch for this but
    its full stop, which also cancels the running ones); whether it could.
    tests/deployments/test_serve.py fails when Prefect moves the attribute."""
    poller = getattr(runner, "_scheduled_run_poller", None)
    if poller is None or not hasattr(poller, "stopping"):
        return False
    poller.stopping = True
    return True


def serve_deployments(*, namespace: str, collection: str, cron: str,
                      announce: Callable[[str], None] | None = None) -> None:
    """Serve the deployments, sweeping for batches to resume, until SIGTERM (drained) or Ctrl-C;
    `announce` is told their names once they are registered."""
    start_fork_server()
    report_warm_starts_with(fork_server_ready)
    runner = DrainingRunner(name="tierflow", query_seconds=get_settings().runner_poll_seconds)
    wake_runner_with(runner.wake)
    wait_for_runner_with(runner.wait_until_entered)
    # Before the runner starts (it installs the same handler then), SIGTERM ends this quietly.
    signal.signal(signal.SIGTERM, runner.handle_sigterm)
    deployments = build_deployments(namespace=namespace, collection=collection, cron=cron)
    for deployment in deployments:
        runner.add_deployment(deployment)
    if announce is not None:
        announce(", ".join(f"{d.flow_name}/{d.name}" for d in deployments))
    sweeper, deliverer = Sweeper(), Deliverer()
    sweeper.start()
    deliverer.start()
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        log.info("shutting down")
    finally:
        deliverer.stop()
        sweeper.stop()
