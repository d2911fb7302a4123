"""Crash recovery through real processes: `tierflow serve` killed (SIGKILL) in the middle of a
600-object batch, started again, and the batch completes by itself, exactly. The bucket has no
unique_key, so an input processed twice would show as extra documents, and one lost as missing
ones. Nothing the killed server started may outlive it.
"""

from __future__ import annotations

import signal

import pytest

from tests.utils.http_stack import poll
from tests.utils.recovery import POINTS, alive, completes_exactly, interrupted, stack, state_of

__all__ = ["stack"]


@pytest.mark.parametrize("point", list(POINTS))
def test_a_killed_server_leaves_nothing_running_and_its_batch_completes_after_a_restart(stack, point):
    import asyncio

    namespace = "killed-" + point.replace(" ", "-")
    batch_id, task_id, processes = interrupted(stack, namespace, POINTS[point], signal.SIGKILL)
    assert processes, "the server started no process (Prefect API or flow run)"
    poll(lambda: [p for p in processes if alive(p)], lambda alive: not alive, seconds=15)
    completes_exactly(stack, batch_id)
    assert asyncio.run(state_of(task_id)) == "CRASHED"  # marked by the sweep: its process is gone
