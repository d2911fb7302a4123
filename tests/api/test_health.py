"""`/health`, `/ready`, and a trigger sent while `tierflow serve`'s runner is still starting."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from deployments import runs
from flows.trigger import trigger_collection
from tests.api.conftest import assert_error, bucket_body, collection_body, in_namespace
from tierflow.settings import get_settings


@pytest.fixture
def unregistered(monkeypatch, catalog) -> str:
    """A trigger deployment name no runner has registered (yet)."""
    name = f"probe-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("TIERFLOW_TRIGGER_DEPLOYMENT", f"trigger-collection/{name}")
    get_settings.cache_clear()
    yield name
    get_settings.cache_clear()


def register(name: str) -> None:
    """What a runner does first: the trigger deployment under that name."""
    trigger_collection.to_deployment(name=name).apply()


def test_health_needs_no_key_and_ready_says_what_is_missing(prefect_harness, unregistered):
    client = TestClient(create_app(), raise_server_exceptions=False)
    assert client.get("/health").json() == {"status": "ok"}
    waiting = client.get("/ready")
    assert waiting.status_code == 503
    body = waiting.json()
    assert body["error"]["type"] == "ServiceUnavailableError" and "not registered yet" in body["error"]["message"]
    assert body["error"]["details"]["checks"]["catalog"] == "ok"
    register(unregistered)
    assert client.get("/ready").json() == {"status": "ready", "checks": {"catalog": "ok", "deployment": "ok"}}


def test_in_a_server_that_starts_a_runner_an_older_registration_does_not_count(prefect_harness, unregistered,
                                                                                 monkeypatch):
    client = TestClient(create_app(), raise_server_exceptions=False)
    register(unregistered)  # left by an earlier server on the same Prefect API
    monkeypatch.setattr(runs, "_runner_since", [])
    runs.expect_runner()
    waiting = client.get("/ready").json()
    assert waiting["error"]["details"]["checks"]["deployment"] == "this server's runner is still starting"
    register(unregistered)  # this server's runner, up
    assert client.get("/ready").status_code == 200


def test_a_trigger_waits_for_a_starting_runner_and_fails_clearly_without_one(prefect_harness, unregistered,
                                                                             monkeypatch):
    with pytest.raises(runs.RunnerUnavailableError, match="does not exist"):
        runs.start_trigger_run({"namespace": "n", "collection": "c"}, idempotency_key="k0")  # no runner expected
    monkeypatch.setattr(runs, "_runner_since", [])
    runs.expect_runner()
    started: list[str] = []
    waiting = threading.Thread(target=lambda: started.append(runs.start_trigger_run(
        {"namespace": "n", "collection": "c"}, idempotency_key="k1")))
    waiting.start()
    register(unregistered)  # the runner comes up while the trigger waits
    waiting.join(timeout=60)
    assert len(started) == 1 and len(started[0]) == 36  # a flow run id


def test_a_run_is_created_once_per_key_and_found_when_the_answer_was_lost(prefect_harness, unregistered,
                                                                          monkeypatch):
    register(unregistered)
    first = runs.start_trigger_run({"namespace": "n", "collection": "c"}, idempotency_key="batch-1")
    assert runs.start_trigger_run({"namespace": "n", "collection": "c"}, idempotency_key="batch-1") == first

    # Prefect creates the run, but its answer never comes back: asked again, the API has it.
    from prefect.client.orchestration import SyncPrefectClient

    create = SyncPrefectClient.create_flow_run_from_deployment
    made: list[str] = []

    def created_then_lost(self, *args, **kwargs):
        made.append(str(create(self, *args, **kwargs).id))
        raise httpx.ReadTimeout("the answer was lost")

    monkeypatch.setattr(SyncPrefectClient, "create_flow_run_from_deployment", created_then_lost)
    found = runs.start_trigger_run({"namespace": "n", "collection": "c"}, idempotency_key="batch-2")
    assert found == made[0] and set(made) == {found}  # one run, whatever was asked again


def test_a_server_shutting_down_takes_no_trigger_and_is_not_ready(prefect_harness, unregistered, monkeypatch):
    register(unregistered)
    monkeypatch.setattr(runs, "_stopping", [])
    runs.stop_taking_runs()
    with pytest.raises(runs.RunnerUnavailableError, match="shutting down"):
        runs.start_trigger_run({"namespace": "n", "collection": "c"}, idempotency_key="k2")
    answer = TestClient(create_app(), raise_server_exceptions=False).get("/ready")
    assert answer.status_code == 503 and answer.json()["error"]["details"]["checks"]["server"] == "shutting down"


def test_not_ready_until_runs_start_warm(prefect_harness, unregistered, monkeypatch):
    # `tierflow serve`'s first run would wait for the fork server's imports: until they are done,
    # the server says its runner is still starting.
    register(unregistered)
    warm = threading.Event()
    monkeypatch.setattr(runs, "_runs_warm", [])
    runs.report_warm_starts_with(warm.is_set)
    client = TestClient(create_app(), raise_server_exceptions=False)
    waiting = client.get("/ready")
    assert waiting.status_code == 503
    assert "importing what its runs need" in waiting.json()["error"]["details"]["checks"]["deployment"]
    warm.set()
    assert client.get("/ready").status_code == 200


def test_a_trigger_retries_quickly_under_the_settings_in_force(prefect_harness):
    # The trigger's own retries replace Prefect's slow last ones; the settings for that are built
    # once for the settings in force, and again when those change.
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from flows.clients import QUICK_RETRIES

    with runs._quick_retries() as first:
        assert PREFECT_CLIENT_MAX_RETRIES.value() == len(QUICK_RETRIES)
    with runs._quick_retries() as again:
        assert again.settings is first.settings
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}), runs._quick_retries():
        assert PREFECT_API_URL.value() == "http://127.0.0.1:9/api"
        assert PREFECT_CLIENT_MAX_RETRIES.value() == len(QUICK_RETRIES)


def test_a_trigger_reads_its_deployment_once_and_again_once_it_was_replaced(prefect_harness, unregistered,
                                                                             monkeypatch):
    from prefect.client.orchestration import get_client

    register(unregistered)
    read = runs._served_deployment
    reads: list[str] = []

    def counted(client, name, deadline):
        reads.append(name)
        return read(client, name, deadline)

    monkeypatch.setattr(runs, "_served_deployment", counted)
    first = runs.start_trigger_run({"namespace": "n", "collection": "c"}, idempotency_key="r1")
    second = runs.start_trigger_run({"namespace": "n", "collection": "c"}, idempotency_key="r2")
    assert first != second and len(reads) == 1  # a round trip to the API less before each run

    with get_client(sync_client=True) as client:  # deleted, and registered anew under another id
        old = client.read_deployment_by_name(f"trigger-collection/{unregistered}")
        client.delete_deployment(old.id)
    register(unregistered)
    third = runs.start_trigger_run({"namespace": "n", "collection": "c"}, idempotency_key="r3")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(third)
    assert run.deployment_id != old.id and len(reads) == 2

    with get_client(sync_client=True) as client:  # deleted for good: the trigger says so
        client.delete_deployment(run.deployment_id)
    with pytest.raises(runs.RunnerUnavailableError, match="does not exist"):
        runs.start_trigger_run({"namespace": "n", "collection": "c"}, idempotency_key="r4")


def _runs_of(deployment: str) -> list[object]:
    """The flow runs of trigger deployment `deployment` the Prefect API holds."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])))


def test_a_trigger_sent_before_the_runner_has_entered_waits_for_it_or_creates_no_run(api, flows, unregistered,
                                                                                      monkeypatch):
    # `tierflow serve` registers its deployments, then its runner enters: a trigger taken in
    # between created its run, then failed handing it over (500), and the run executed anyway.
    import asyncio

    from deployments.serve import DrainingRunner

    headers = in_namespace(api, "alpha")
    api.post("/v1/buckets", headers=headers, json=bucket_body())
    api.post("/v1/collections", headers=headers, json=collection_body("copies", buckets=["notes"]))
    for name in ("_runner_since", "_wake_runner", "_runner_entered"):
        monkeypatch.setattr(runs, name, [])
    runs.expect_runner()
    register(unregistered)  # this server's runner has registered the deployments, and not entered yet
    runner = DrainingRunner(name="probe-entering", query_seconds=3600)
    waiting = threading.Event()

    def wait_until_entered(timeout: float) -> bool:
        waiting.set()
        return runner.wait_until_entered(timeout)

    runs.wake_runner_with(runner.wake)
    runs.wait_for_runner_with(wait_until_entered)

    monkeypatch.setenv("TIERFLOW_RUNNER_START_SECONDS", "0.5")  # the runner never enters in time
    get_settings.cache_clear()
    refused = assert_error(api.post("/v1/collections/copies/trigger", headers=headers, json={}), 503,
                           "ServiceUnavailableError", "still starting")
    assert api.post("/v1/collections/copies/trigger", headers=headers, json={}).headers["Retry-After"].isdigit()
    assert _runs_of(unregistered) == [] and refused["error"]["details"] == {}
    statuses = [b["status"] for b in api.post("/v1/batches/list", headers=headers).json()["results"]]
    assert statuses == ["FAILED", "FAILED"]  # each says why; none waits for a run

    monkeypatch.setenv("TIERFLOW_RUNNER_START_SECONDS", "60")
    get_settings.cache_clear()
    answers: list[object] = []
    trigger = threading.Thread(target=lambda: answers.append(
        api.post("/v1/collections/copies/trigger", headers=headers, json={})))
    trigger.start()
    assert waiting.wait(timeout=60)
    assert _runs_of(unregistered) == []  # none before the runner is there to start it
    started: list[object] = []

    class Probe:
        async def start(self, flow_run: object, task_status: object = None) -> None:
            started.append(flow_run.id)  # type: ignore[attr-defined]
            raise RuntimeError("probe: no process started")

    async def enter_until_handed_a_run() -> None:
        async with runner:
            runner._scheduled_run_poller._resolve_starter = lambda run: Probe()
            deadline = asyncio.get_running_loop().time() + 60
            while not started and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)  # the hand-over runs on this loop

    asyncio.run(enter_until_handed_a_run())
    trigger.join(timeout=60)
    (answer,) = answers
    assert answer.status_code == 202, answer.text
    (run,) = _runs_of(unregistered)
    assert str(run.id) == answer.json()["task_id"] and started == [run.id]
