"""Live progress bars of a batch in the terminal: one per tier, from the batch's view."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from tierflow.batch_view import batch_view
from tierflow.models.status import TERMINAL

REFRESH_SECONDS = 0.2
"""How often the bars read the batch (a few row reads each time)."""
T = TypeVar("T")


def quiet_prefect_logs() -> None:
    """Keep Prefect's per-run and per-task log lines out of the terminal (shown with --verbose)."""
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _line(tier: dict[str, Any]) -> dict[str, Any]:
    """What a tier's bar shows."""
    progress = tier.get("progress") or {}
    eta = progress.get("eta_seconds")
    failures = tier["inputs_failed"] if tier["completed_at"] else tier.get("failed_so_far", 0)
    total = progress.get("total", 0)
    return {
        "completed": progress.get("processed", 0),
        "total": total or None,  # no total yet: a pulsing bar
        "known": f"{total}{'' if progress.get('total_final') else '+'}",  # + : more may come
        "rate": f"{progress.get('rate_per_second', 0):.0f}/s",
        "eta": "-" if eta is None else f"{eta:.0f}s",
        "failed": failures,
        "status": tier["status"],
    }


class BatchBars:
    """Rich bars for a batch's tiers, updated from its view until it ends."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("tier {task.fields[tier]}"), BarColumn(),
            TextColumn("{task.completed:.0f}/{task.fields[known]}"), TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"), TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[status]}"), console=console, transient=False, auto_refresh=False)
        self._tasks: dict[int, TaskID] = {}

    def show(self, view: dict[str, Any]) -> None:
        """Draw the batch as `view` shows it."""
        failed: dict[int, int] = {}
        for failure in view.get("failed_inputs") or []:
            failed[failure["tier_num"]] = failed.get(failure["tier_num"], 0) + 1
        for tier in view["tier_tasks"]:
            line = _line({**tier, "failed_so_far": failed.get(tier["tier_num"], 0)})
            task = self._tasks.get(tier["tier_num"])
            if task is None:
                self._tasks[tier["tier_num"]] = self._progress.add_task(
                    "", tier=tier["tier_num"], **{k: v for k, v in line.items() if k not in ("completed", "total")},
                    completed=line["completed"], total=line["total"])
            else:
                self._progress.update(task, completed=line["completed"], total=line["total"],
                                      **{k: v for k, v in line.items() if k not in ("completed", "total")})
        self._progress.refresh()

    async def follow(self, batch_id: str, until: Awaitable[T] | None = None) -> T | None:
        """Redraw every `REFRESH_SECONDS` until the batch has ended (or `until` has, if given);
        what `until` returned."""
        waited = None if until is None else asyncio.ensure_future(until)
        with self._progress:
            while True:
                view = await asyncio.to_thread(batch_view, batch_id)
                self.show(view)
                if waited is not None and waited.done():
                    break
                if waited is None and view["status"] in TERMINAL:
                    break
                if waited is None:
                    await asyncio.sleep(REFRESH_SECONDS)
                else:
                    await asyncio.wait({waited}, timeout=REFRESH_SECONDS)
            if waited is not None:
                self.show(await asyncio.to_thread(batch_view, batch_id))
        return None if waited is None else waited.result()
