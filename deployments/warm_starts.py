"""Flow runs of `tierflow serve` started warm: forked from a process that has already imported
Prefect and tierflow, instead of a new interpreter per run.

A new interpreter spends about 3 s importing Prefect and tierflow before a run begins, which is
most of a small batch's time. `tierflow serve` starts one fork server (Python's `forkserver`)
as it starts, which imports them once; each flow run of its runner is then a process forked from
it, that runs the flow exactly as `python -m prefect.engine` would. A run keeps its own process,
so the runner still cancels it, counts it and kills it as before. The measurements and the
options weighed are in docs/design/warm-starts.md.

Each run dies with the server (it watches the server's process) and with the fork server: a run
never outlives `tierflow serve`, however it dies. The fork server exits once the server and its
runs are gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import runpy
import sys
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.to_thread

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._process_manager import ProcessHandle
    from prefect.settings import Settings

PRELOAD = ["deployments.warm_starts", "deployments.fork_server", "anyio._backends._asyncio"]
"""What the fork server imports once: `deployments/fork_server.py` (Prefect's engine and the trigger
flow with all of tierflow, and what Prefect builds lazily in each process), and what a run
imports late."""

_FORKS = multiprocessing.get_context("forkserver")
log = logging.getLogger(__name__)


_warm = threading.Event()
"""Set once the fork server has imported everything and forked a first process."""


def start_fork_server() -> None:
    """Start the fork server now, so that the first run does not wait for its imports (it is
    started again by the next run if it ever exits), and have it fork one process that does
    nothing: `fork_server_ready()` is true once that process has run."""
    _FORKS.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()
    threading.Thread(target=_warm_up, name="fork-server-warm-up", daemon=True).start()


def fork_server_ready() -> bool:
    """Whether a run forked now starts at once (the fork server has finished its imports: until
    then, a fork waits for them)."""
    return _warm.is_set()


def _warm_up() -> None:
    """Fork a process that does nothing: its start waits until the fork server has imported
    everything, then sets `_warm`."""
    try:
        process = _FORKS.Process(target=_nothing, name="fork-server-warm-up")
        process.start()
        process.join()
    except Exception as error:  # a fork server that failed fails the runs too, with their own error
        log.warning("the fork server could not start a process (%s: %s); the runs it starts "
                    "will fail with that error", type(error).__name__, error)
    finally:
        _warm.set()


def _nothing() -> None:
    """The warm-up process's work."""


class WarmStarter:
    """Starts one flow run in a process forked from the fork server (Prefect's `ProcessStarter`
    protocol: hand the process over through `task_status`, then return when it exits).

    The process is given the environment `python -m prefect.engine` would be given by Prefect's
    own starter: the runner's settings, the flow run's id, its deployment's name, the heartbeat
    and the control channel through which the runner asks a run to stop before killing it. With
    the deployment's `entrypoint`, the run takes its flow from there rather than reading the
    deployment from the API first (what Prefect's engine does when given one)."""

    def __init__(self, *, deployment_name: str | None, entrypoint: str | None, heartbeat_seconds: int | None,
                 control_channel: Any | None) -> None:
        self._deployment_name = deployment_name
        self._entrypoint = entrypoint
        self._heartbeat_seconds = heartbeat_seconds
        self._control_channel = control_channel

    async def start(self, flow_run: FlowRun,
                    task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED) -> None:
        from prefect.runner._process_manager import ProcessHandle

        control = self._register_control(flow_run)
        try:
            settings, settings_env = run_settings(self._heartbeat_seconds)
            process = _FORKS.Process(target=run_engine, args=(self._environment(flow_run, control, settings_env),
                                                              settings), name=f"flow-run-{flow_run.id}")
            # Starting asks the fork server over a local socket; it may first (re)start the fork
            # server, which takes seconds: not on the runner's loop.
            await anyio.to_thread.run_sync(process.start, limiter=anyio.CapacityLimiter(1))
        except BaseException:
            if control:
                self._control_channel.unregister(flow_run.id)
            raise
        task_status.started(ProcessHandle(process))
        # A thread of its own waits for the exit, so runs never queue for the loop's shared threads.
        await anyio.to_thread.run_sync(process.join, limiter=anyio.CapacityLimiter(1))

    def _register_control(self, flow_run: FlowRun) -> dict[str, str]:
        """The control channel's address for this run, or nothing where the runner has none (it
        then stops a run by killing its process)."""
        if self._control_channel is None:
            return {}
        try:
            port, token = self._control_channel.register(flow_run.id)
        except RuntimeError:
            return {}
        return {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}

    def _environment(self, flow_run: FlowRun, control: dict[str, str], settings_env: dict[str, str]
                     ) -> dict[str, str]:
        from prefect.utilities.processutils import sanitize_subprocess_env

        env: dict[str, str | None] = {
            **os.environ,
            **settings_env,
            "PREFECT__FLOW_RUN_ID": str(flow_run.id),
            "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
            "PREFECT__DEPLOYMENT_NAME": self._deployment_name,
            **control,
        }
        if self._entrypoint:
            env["PREFECT__FLOW_ENTRYPOINT"] = self._entrypoint
        return sanitize_subprocess_env(env)


_run_settings: dict[tuple[int, int | None], tuple[Settings, Settings, dict[str, str]]] = {}
"""For the settings in force (by identity) and a heartbeat: those settings, a run's, and a run's as
environment variables."""


def run_settings(heartbeat_seconds: int | None) -> tuple[Settings, dict[str, str]]:
    """A run's Prefect settings: those in force in the runner, with the runner's heartbeat; and
    the same as environment variables. Built again only when the settings in force change.

    Why: a run given its settings need not read them from its environment, which took it 30 to
    50 ms, and reading them as variables holds the runner's loop before each run it starts."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings

    current = get_current_settings()
    key = (id(current), heartbeat_seconds)
    known = _run_settings.get(key)
    if known is None or known[0] is not current:
        run = current if heartbeat_seconds is None else current.copy_with_update(
            updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: int(heartbeat_seconds)})
        known = (current, run, run.to_environment_variables(exclude_unset=True))
        _run_settings.clear()  # only the settings in force now are asked for again
        _run_settings[key] = known
    return known[1], known[2]


def run_engine(env: dict[str, str], settings: Settings) -> None:
    """In the forked process: become the flow run's process. Die with the fork server, take the
    run's environment and settings, and run Prefect's engine as `python -m prefect.engine` does
    (its exit code is the process's)."""
    import prefect.engine
    from prefect.context import SettingsContext, get_settings_context

    from deployments.suspension_watch import watch_suspension_beside_start
    from tierflow.process import die_with_parent, die_with_server

    die_with_parent(os.getppid())
    watch_suspension_beside_start()
    os.environ.clear()
    os.environ.update(env)
    # Not through the fork server alone: each run holds the fork server's end of the pipe that
    # tells it the server is gone, so it outlives the server as long as a run does.
    die_with_server()
    sys.argv = ["prefect.engine", env["PREFECT__FLOW_RUN_ID"]]
    # Prefect read its settings when the fork server imported it: the run takes the runner's, as
    # the runs Prefect starts in a subprocess of their own read them from their environment.
    with SettingsContext(profile=get_settings_context().profile, settings=settings):
        # Run as a path, not as the module the fork server already imported (runpy warns then).
        runpy.run_path(prefect.engine.__file__, run_name="__main__")
