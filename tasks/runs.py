"""Reading Prefect's view of flow runs (shared by the crash sweep and the faces)."""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound


async def read_run_states(task_ids: list[str]) -> dict[str, str]:
    """Prefect's state type of each run that exists (e.g. RUNNING, COMPLETED, CRASHED)."""
    states: dict[str, str] = {}
    async with get_client() as client:
        for task_id in task_ids:
            try:
                run = await client.read_flow_run(UUID(task_id))
            except (ObjectNotFound, ValueError):
                continue
            states[task_id] = run.state.type.value if run.state else "PENDING"
    return states
