"""The full stack on one machine: a Prefect server, a process work pool, two workers, the REST API.

Everything is started as a user would: `prefect server start`, `prefect work-pool create`,
`prefect deploy` from `prefect.yaml`, two `prefect worker start`, and `tierflow serve --no-runner`
(the API alone, so the runs can only go to the workers). Two batches triggered over HTTP must be
picked up one by each of the two workers and finish with the right documents.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import httpx
import pytest

from tests.conftest import POSTGRES_URL
from tests.utils.browser import browser_page, chromium
from tests.utils.http_stack import ROOT, TIERFLOW, answers, define, finished_task, free_port, poll
from tests.utils.prefect_server import sibling_database

PREFECT = [sys.executable, "-m", "prefect"]


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`command` in a process group of its own, so that `_stop` also ends what it starts (the
    server's web process, a worker's flow-run processes)."""
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    """SIGTERM each process group; what has not exited after a few seconds is killed."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`prefect server start` on a free port (on PostgreSQL when the tests have one); its env."""
    from moto.server import ThreadedMotoServer

    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_API_URL=api, PREFECT_UI_API_URL=api,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_WORKER_QUERY_SECONDS="1",
               PREFECT_API_BLOCKS_REGISTER_ON_START="false")
    # services the test never needs (the runs are created by hand, not by schedules or automations)
    env.update({f"PREFECT_SERVER_SERVICES_{service}_ENABLED": "false" for service in
                ("SCHEDULER", "TRIGGERS", "LATE_RUNS", "FOREMAN", "REPOSSESSOR", "PAUSE_EXPIRATIONS")})
    if POSTGRES_URL:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = sibling_database(
            POSTGRES_URL, f"prefect_stack_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}", driver="postgresql+asyncpg",
            fresh=True)
    server = _start([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, home / "server.log")
    with httpx.Client(base_url=api, timeout=5) as client:
        poll(lambda: answers(client, "/health"), bool, seconds=120)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    env["TIERFLOW_S3_ENDPOINT_URL"] = "http://{}:{}".format(*moto.get_host_and_port())
    env["TIERFLOW_DATABASE_URL"] = f"sqlite:///{home / 'catalog.db'}"
    env["TIERFLOW_HOME"] = str(ROOT)  # where prefect.yaml's pull step takes the workers
    yield env
    moto.stop()
    _stop(server)


@pytest.fixture(scope="module")
def workers(prefect_server: dict[str, str], api: httpx.Client,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The pool, the trigger deployment on it, and two workers taking one run at a time each;
    yields each worker's log file. (The REST API starts meanwhile.)"""
    env = prefect_server
    _run([*PREFECT, "work-pool", "create", "tierflow-pool", "--type", "process"], env)
    _run([*PREFECT, "--no-prompt", "deploy", "--name", "trigger-collection"], env)
    logs = tmp_path_factory.mktemp("workers")
    names = ["worker-a", "worker-b"]
    started = [_start([*PREFECT, "worker", "start", "--pool", "tierflow-pool", "--name", name, "--limit", "1"],
                      env, logs / f"{name}.log") for name in names]
    poll(lambda: _online_workers(env), lambda online: online == set(names), seconds=60)
    yield {name: logs / f"{name}.log" for name in names}
    _stop(*started)


@pytest.fixture(scope="module")
def api(prefect_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """`tierflow serve --no-runner` with a fresh key: the REST API, runs left to the workers.
    Yielded as soon as it is started; `finished` waits until it answers."""
    env = prefect_server
    key = _run([*TIERFLOW, "keys", "create", "--name", "stack"], env).strip().splitlines()[-1]
    port = free_port()
    server = _start([*TIERFLOW, "serve", "--no-runner", "--port", str(port)], env,
                    tmp_path_factory.mktemp("api") / "api.log")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    yield client
    client.close()
    _stop(server)


def _online_workers(env: dict[str, str]) -> set[str]:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        return {w.name for w in client.read_workers_for_work_pool("tierflow-pool") if w.status.value == "ONLINE"}


def _flow_run(env: dict[str, str], task_id: str) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        return client.read_flow_run(UUID(task_id))


BATCHES = {"north": 4, "south": 6}
"""Namespace → number of files: each file "alpha beta gamma delta i" gives three word pairs."""


@pytest.fixture(scope="module")
def finished(prefect_server, workers, api) -> dict[str, tuple[dict[str, str], dict[str, Any], dict[str, Any]]]:
    """Both batches triggered over HTTP, then polled to the end: (headers, trigger answer, task)."""
    poll(lambda: answers(api, "/openapi.json"), bool, seconds=60)
    s3 = boto3.client("s3", endpoint_url=prefect_server["TIERFLOW_S3_ENDPOINT_URL"], region_name="us-east-1")
    s3.create_bucket(Bucket="files")
    defined = {}
    for namespace, count in BATCHES.items():
        defined[namespace] = define(api, namespace, f"{namespace}/")
        for i in range(count):
            s3.put_object(Bucket="files", Key=f"{namespace}/{i}.txt", Body=f"alpha beta gamma delta {i}".encode())
    started = {}
    for namespace, headers in defined.items():  # back to back, so both wait for a worker at once
        answer = api.post("/v1/collections/words/trigger", json={}, headers=headers)
        assert answer.status_code == 202, answer.text
        started[namespace] = (headers, answer.json())
    return {namespace: (headers, body, finished_task(api, headers, body["task_id"], seconds=180))
            for namespace, (headers, body) in started.items()}


def test_two_workers_take_one_batch_each(prefect_server, workers, api, finished):
    runs = {}
    for namespace, (headers, body, task) in finished.items():
        count = BATCHES[namespace]
        assert task["status"] == "COMPLETED", task
        batch = api.get(f"/v1/batches/{body['batch_id']}", headers=headers).json()
        assert [t["documents_written"] for t in batch["tier_tasks"]] == [3 * count, 3 * count]
        copies = api.post("/v1/collections/copies/documents/list", headers=headers, json={"limit": 100}).json()
        assert copies["pagination"]["total"] == 3 * count
        assert {d["text"] for d in copies["results"]} >= {"alpha beta", "gamma delta"}
        runs[namespace] = _flow_run(prefect_server, body["task_id"])

    north, south = runs["north"], runs["south"]
    assert north.work_pool_name == south.work_pool_name == "tierflow-pool"
    # Not asserted: that the two runs overlapped in time. A batch this small takes about as long as
    # a worker's poll interval, so whether the second worker picked its run up before the first
    # run ended is down to when each worker polled; what is certain is that each took one.
    assert north.infrastructure_pid != south.infrastructure_pid
    logs = {name: log.read_text() for name, log in workers.items()}
    # Both workers may see a run and start to submit it; the server lets one take it and tells the
    # other to abort, which it logs.
    ran = {name: {ns for ns, run in runs.items() if f"submitting flow run '{run.id}'" in text
                  and f"Aborted submission of flow run '{run.id}'" not in text}
           for name, text in logs.items()}
    assert sorted(map(len, ran.values())) == [1, 1] and set.union(*ran.values()) == {"north", "south"}, ran


def test_the_ui_shows_the_trigger_form_and_the_tier_subflows(prefect_server, finished):
    """What a user sees in Prefect's UI, in headless Chromium: the custom-run form of the trigger
    deployment with every field's title, and a finished run's tier subflows as its children."""
    from prefect.client.orchestration import SyncPrefectClient

    if chromium() is None:
        assert not os.environ.get("CI"), "CI must install chromium (.ci/run does)"
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    ui = prefect_server["PREFECT_API_URL"].removesuffix("/api")
    with SyncPrefectClient(prefect_server["PREFECT_API_URL"]) as client:
        deployment = client.read_deployment_by_name("trigger-collection/trigger-collection")
    with browser_page() as page:
        page.goto(f"{ui}/deployments/deployment/{deployment.id}/run")
        form = page.wait_for_text("Parameters", "namespace", "collection", "Include buckets", "Include collections",
                                  "Object ids", "Source filters", "Dedup strategy", "batch_id")
        assert "Something went wrong" not in form
        assert "The namespace, by id (ns_…) or name." in form  # descriptions come from the docstring

        _, body, _ = finished["north"]
        page.goto(f"{ui}/runs/flow-run/{body['task_id']}")
        page.wait_for_text("trigger-collection", "Subflow Runs")
        page.click_text("Subflow Runs")
        # the rows name each child's flow once the UI has fetched the flows
        page.wait_for_text("2 Flow runs", "tier-0", "tier-1", "process-tier")
