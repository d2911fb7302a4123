"""`tierflow serve` stopped with SIGTERM: mid-batch, no run is left Running in Prefect and the
next server finishes the batch exactly; right after a batch, its run finishes in Prefect."""

from __future__ import annotations

import signal

import httpx

from tests.utils.http_stack import TERMINAL, poll, served
from tests.utils.recovery import POINTS, completes_exactly, interrupted, stack, state_of

__all__ = ["stack"]


def test_sigterm_leaves_no_run_running_and_the_next_server_finishes_the_batch(stack):
    import asyncio

    batch_id, task_id, _ = interrupted(stack, "stopped", POINTS["mid tier 0"], signal.SIGTERM)
    assert asyncio.run(state_of(task_id)) not in ("RUNNING", "PENDING")  # never "Running" for ever
    completes_exactly(stack, batch_id)


def test_sigterm_just_after_a_batch_lets_its_run_finish_in_prefect(stack):
    import asyncio

    with served(stack["env"]) as (server, base_url):
        client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {stack['key']}"}, timeout=30)
        headers = {"X-Namespace": "stopped"}  # everything there is processed: every input is skipped
        answer = client.post("/v1/collections/words/trigger", json={"dedup_strategy": "skip"}, headers=headers)
        assert answer.status_code == 202, answer.text
        task_id = answer.json()["task_id"]
        poll(lambda: client.get(f"/v1/batches/{answer.json()['batch_id']}", headers=headers).json()["status"],
             lambda status: status in TERMINAL)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) is not None
        client.close()
    assert asyncio.run(state_of(task_id)) == "COMPLETED"
