"""The served deployments: a manual/API one and a cron one (run for real in tests/api/test_served.py)."""

from __future__ import annotations

from pathlib import Path

from deployments.serve import NEW_OR_CHANGED, build_deployments


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
    assert scheduled.parameters["request"] == NEW_OR_CHANGED


def test_prefect_yaml_deployments_point_at_the_flow_with_valid_parameters():
    import importlib

    import yaml

    from flows.trigger import trigger_collection
    from tierflow.process import MALLOC_ARENAS

    spec = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text())
    entrypoints = {d["name"]: d["entrypoint"] for d in spec["deployments"]}
    assert entrypoints == {"trigger-collection": "flows/trigger.py:trigger_collection",
                           "process-pending": "flows/trigger.py:trigger_collection",
                           "resume-crashed": "flows/resume.py:resume_crashed_batches",
                           "sync-buckets": "flows/sync.py:sync_buckets"}
    for deployment in spec["deployments"]:
        module, _, name = deployment["entrypoint"].partition(":")
        assert hasattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)
        assert deployment["work_pool"]["name"] == "tierflow-pool"
        assert deployment["work_pool"]["job_variables"]["env"]["MALLOC_ARENA_MAX"] == str(MALLOC_ARENAS)
        if "parameters" in deployment:
            checked = trigger_collection.validate_parameters(deployment["parameters"])
            assert checked["request"].dedup_strategy == NEW_OR_CHANGED["dedup_strategy"]


def test_the_local_prefect_api_of_tierflow_serve_listens_on_loopback_only_and_dies_with_it(tmp_path):
    # Anyone who reaches a Prefect API can run tierflow's deployments: the temporary one
    # `tierflow serve` starts must bind loopback. And a server killed with SIGKILL must not leave
    # it behind, sharing Prefect's database with the next server's.
    import os
    import signal
    import subprocess
    import sys
    import time

    from deployments import prefect_api

    assert prefect_api.HOST == "127.0.0.1"
    script = ("import os, sys; from deployments.prefect_api import local_prefect_api\n"
              "with local_prefect_api() as api:\n"
              "    print(api.url, flush=True); sys.stdin.read()\n")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path)
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env=env, cwd=Path(__file__).parents[2], text=True)
    try:
        url = parent.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api"), url
        children = _children_of(parent.pid)
        assert len(children) == 1
        # It yields the CPU to the server's REST API, relative to the server's own priority.
        assert _niceness(children[0]) == _niceness(parent.pid) + prefect_api.NICENESS
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while _alive(children[0]):
        assert time.monotonic() < deadline, "the Prefect API outlived the server that started it"
        time.sleep(0.1)


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _children_of(pid: int) -> list[int]:
    from pathlib import Path as _Path

    found = []
    for stat in _Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_runner_starts_runs_warm_and_can_be_told_to_take_no_more_runs(prefect_harness):
    # Warm starts and draining on SIGTERM need these parts of Prefect's runner; this fails when
    # Prefect moves them.
    import asyncio
    import uuid

    from prefect.client.schemas.objects import FlowRun

    from deployments.serve import DrainingRunner, build_deployments, running_processes, stop_polling
    from deployments.warm_starts import WarmStarter

    manual = build_deployments(namespace="ns", collection="c", cron="0 * * * *")[0]

    async def started_then_stopped() -> tuple[bool, bool, bool, str | None]:
        runner = DrainingRunner(name="probe")
        async with runner:
            run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), deployment_id=await runner.aadd_deployment(manual))
            starter = runner._scheduled_run_poller._resolve_starter(run)
            warm = isinstance(starter, WarmStarter) and starter._control_channel is runner._control_channel
            # The run takes its flow from the module it has imported, not from the deployment read first.
            entrypoint = starter._environment(run, {}, {}).get("PREFECT__FLOW_ENTRYPOINT")
            manager = runner._process_manager
            return (warm, stop_polling(runner), running_processes(runner) == 0 and callable(manager.flow_run_count),
                    entrypoint)

    assert asyncio.run(started_then_stopped()) == (True, True, True, "flows.trigger.trigger_collection")


def test_a_run_created_here_starts_without_waiting_for_the_runners_poll(prefect_harness):
    # The REST API hands the run it created to the runner (`wake`); the runner polls only once an
    # hour here, so only that hand-over can start it. Fails when Prefect moves what it uses.
    import asyncio

    from prefect.client.orchestration import get_client

    from deployments.serve import DrainingRunner, build_deployments

    manual = build_deployments(namespace="ns", collection="c", cron="0 * * * *")[0]

    async def started_by_wake() -> tuple[list[object], object]:
        runner = DrainingRunner(name="probe-wake", query_seconds=3600)
        loop, seen, starts = asyncio.get_running_loop(), asyncio.Event(), []

        class Probe:
            async def start(self, flow_run: object, task_status: object = None) -> None:
                starts.append(flow_run.id)  # type: ignore[attr-defined]
                loop.call_soon_threadsafe(seen.set)
                raise RuntimeError("probe: no process started")

        async with runner:
            deployment_id = await runner.aadd_deployment(manual)
            runner._scheduled_run_poller._resolve_starter = lambda run: Probe()

            async def nothing_scheduled() -> list[object]:
                return []

            runner._scheduled_run_poller._get_scheduled_flow_runs = nothing_scheduled  # a poll finds nothing
            async with get_client() as client:
                run = await client.create_flow_run_from_deployment(deployment_id, parameters={
                    "namespace": "ns", "collection": "c"})
            runner.wake(run)
            await asyncio.wait_for(seen.wait(), timeout=60)
            runner.wake(run)  # handed over twice (or found by a poll too): started once
            await asyncio.sleep(0)
        return starts, run.id

    starts, run_id = asyncio.run(started_by_wake())
    assert starts == [run_id]


def test_a_run_is_given_the_runners_settings_built_once(prefect_harness):
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

    from deployments.warm_starts import run_settings

    settings, env = run_settings(30)
    assert settings.flows.heartbeat_frequency == 30 and env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert settings.api.url == get_current_settings().api.url and env["PREFECT_API_URL"] == settings.api.url
    assert run_settings(30)[0] is settings  # not built again for the next run
    assert run_settings(None)[0] is get_current_settings()
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 45}):
        assert run_settings(30)[0] is not settings  # the settings in force changed: built again
        assert run_settings(None)[0].flows.heartbeat_frequency == 45


def test_the_local_prefect_api_records_task_runs_in_batches():
    # Prefect reads these settings by name: a renamed one would be ignored without a word.
    import os
    from unittest import mock

    from prefect.settings import Settings

    from deployments.prefect_api import RECORDER_ENV

    with mock.patch.dict(os.environ, RECORDER_ENV):
        recorder = Settings().server.services.task_run_recorder
    assert (recorder.batch_size, recorder.flush_interval) == (100, 1.0)


def test_the_fork_server_builds_prefects_models_and_starts_no_thread():
    # A run forked from the fork server must not inherit a thread's half-held locks, and must not
    # build again what the fork server built once (Prefect's models, the shared SSL context).
    import subprocess
    import sys

    script = ("import threading, deployments.fork_server as f, prefect.client.orchestration as o\n"
              "from tierflow import storage\n"
              "print(threading.active_count(), f.build_deferred_models(), len(o.ssl._made), len(storage._shared_loader))")
    out = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["1", "0", "1", "1"]


def test_threads_of_tierflow_serve_talk_to_its_local_prefect_api(tmp_path):
    # Threads started without the main thread's context (uvicorn's, the sweeper's) got Prefect's
    # settings from before the local API had an address: each Prefect client made there started a
    # temporary Prefect API of its own, on the same database.
    import os
    import subprocess
    import sys

    script = ("import threading\nfrom prefect.settings import get_current_settings\n"
              "from deployments.stack import prefect_api\n"
              "with prefect_api() as api:\n"
              "    url, seen = api.url, []\n"
              "    thread = threading.Thread(target=lambda: seen.append(get_current_settings().api.url))\n"
              "    thread.start(); thread.join()\n"
              "    print(seen == [url], url)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    out = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[:1] == ["True"], out.stdout + out.stderr


def test_a_fork_server_that_cannot_fork_is_logged_once_and_readiness_moves_on(monkeypatch, caplog):
    # `/ready` waits for the warm-up; a fork server that cannot start must neither keep it waiting
    # nor print a thread's traceback into `tierflow serve`'s output.
    import threading

    from deployments import warm_starts

    class Broken:
        def __init__(self, **_: object) -> None:
            pass

        def start(self) -> None:
            raise OSError("no room for the fork server")

    monkeypatch.setattr(warm_starts, "_warm", threading.Event())
    monkeypatch.setattr(warm_starts._FORKS, "Process", Broken)
    hooked: list[object] = []
    monkeypatch.setattr(threading, "excepthook", hooked.append)
    thread = threading.Thread(target=warm_starts._warm_up)
    thread.start()
    thread.join()
    assert warm_starts.fork_server_ready() and hooked == []
    assert [r.getMessage() for r in caplog.records if r.name == warm_starts.log.name] == [
        "the fork server could not start a process (OSError: no room for the fork server); the runs it starts "
        "will fail with that error"]


def test_a_run_handed_to_a_runner_that_has_not_entered_is_left_to_its_polls(caplog):
    # The REST API answers before the runner has entered: a run handed over then must not fail
    # the trigger (its answer would say failed for a run that executes). Nor must a runner whose
    # parts Prefect has moved: it says so once and leaves the runs to its polls.
    import uuid

    from prefect.client.schemas.objects import FlowRun

    from deployments.serve import DrainingRunner, log

    runner = DrainingRunner(name="probe-not-entered")
    run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), deployment_id=uuid.uuid4())
    assert not hasattr(runner, "_scheduled_run_poller")
    runner.wake(run)
    assert not runner.wait_until_entered(0)

    runner._entered.set()  # entered, as far as it knows, on a Prefect without the poller it uses
    runner.started = True
    runner.wake(run)
    runner.wake(run)
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == [
        "Prefect's runner has no _scheduled_run_poller._submit_scheduled_flow_runs or _runs_task_group: runs "
        "created here wait for its next poll"]


def test_the_local_prefect_api_keeps_its_database_under_tierflows_home(tmp_path):
    # Prefect's own home (~/.prefect/prefect.db) is `prefect server start`'s: sharing it, that
    # server's runs went to tierflow's runner and stopping tierflow paused that server's deployments.
    import os
    import subprocess
    import sys

    script = ("from deployments.stack import prefect_api\n"
              "with prefect_api() as api:\n"
              "    print(api)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(HOME=str(tmp_path), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    out = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], env=env,
                         capture_output=True, text=True, timeout=120)
    database = tmp_path / ".tierflow" / "prefect" / "prefect.db"
    assert out.stdout.strip().endswith(f"(database {database})"), out.stdout + out.stderr
    assert database.is_file() and not (tmp_path / ".prefect" / "prefect.db").exists()


def test_a_prefect_home_or_database_the_operator_chose_is_the_local_apis(tmp_path, monkeypatch):
    import os

    from prefect.settings import Settings

    from deployments.prefect_api import own_database_url, shown_database

    for name in [k for k in os.environ if k.startswith("PREFECT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert own_database_url(Settings()) == f"sqlite+aiosqlite:///{tmp_path}/.tierflow/prefect/prefect.db"
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    assert own_database_url(Settings()) is None
    monkeypatch.delenv("PREFECT_HOME")
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://prefect:secret@db/prefect")
    assert own_database_url(Settings()) is None
    assert shown_database("postgresql+asyncpg://prefect:secret@db/prefect") == "postgresql+asyncpg://prefect:***@db/prefect"


def test_a_runner_pauses_on_exit_only_the_deployments_nobody_else_serves(prefect_harness):
    # Prefect's runner pauses every deployment it served: on a shared Prefect API, stopping one
    # server paused the deployments another process was still serving.
    import asyncio
    import time
    import uuid

    from prefect.client.orchestration import get_client

    from deployments.serve import DrainingRunner
    from flows.trigger import trigger_collection

    suffix = uuid.uuid4().hex[:8]
    new, found_paused, served = (trigger_collection.to_deployment(name=f"{kind}-{suffix}")
                                 for kind in ("new", "found-paused", "served"))

    async def paused_after_exit() -> tuple[dict[str, bool], DrainingRunner, dict[str, uuid.UUID]]:
        async with get_client() as client:
            paused_id, served_id = await found_paused.aapply(), await served.aapply()
            await client.pause_deployment(paused_id)
            # Another runner serving it asks for its runs, which marks it as polled.
            await client.get_scheduled_flow_runs_for_deployments([served_id])
            deadline = time.monotonic() + 30
            while (await client.read_deployment(served_id)).last_polled is None:
                assert time.monotonic() < deadline, "the Prefect API never marked the deployment polled"
                await asyncio.sleep(0.1)
            runner = DrainingRunner(name="probe-pause")
            async with runner:
                ids = {d.name: await runner.aadd_deployment(d) for d in (new, found_paused, served)}
            return ({name: (await client.read_deployment(i)).paused for name, i in ids.items()}, runner, ids)

    paused, runner, ids = asyncio.run(paused_after_exit())
    assert paused == {new.name: True, found_paused.name: True, served.name: False}
    assert runner.own_deployments == [ids[new.name], ids[found_paused.name]]


def test_deployments_serve_says_where_it_serves(prefect_harness, tmp_path):
    import os
    import subprocess
    import threading
    import time

    from prefect.settings import PREFECT_API_URL

    from tests.utils.http_stack import TIERFLOW

    url = PREFECT_API_URL.value()
    env = {**os.environ, "PREFECT_API_URL": url, "TIERFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
           "COLUMNS": "300"}
    server = subprocess.Popen([*TIERFLOW, "deployments", "serve", "--namespace", "north", "--collection", "words"],
                              env=env, cwd=Path(__file__).parents[2], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("serving ") for line in lines):
            assert server.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        started = next(line for line in lines if line.startswith("serving "))
        assert started.strip() == ("serving trigger-collection/trigger-collection, trigger-collection/process-pending "
                                   f"on Prefect API {url}")
    finally:
        server.kill()  # how fast SIGTERM stops it is not settled yet (under load it took over 25 s)
        server.wait()
    reader.join(timeout=5)
    assert "Traceback" not in "".join(lines)
