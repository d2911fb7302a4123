"""A tier's live progress from its counters: rate since it began, an ETA only once every input
is known, and a batch that has not moved for TIERFLOW_STALL_SECONDS shown as stalled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from tierflow.catalog.rows import BatchRow, TierRow
from tierflow.progress import batch_activity, percent_done, tier_progress
from tierflow.timestamps import format_timestamp

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def _at(seconds_ago: float) -> str:
    return format_timestamp(NOW - timedelta(seconds=seconds_ago))


def _tier(**values: Any) -> TierRow:
    row = {"started_at": _at(10), "completed_at": None, "inputs_known": 0, "inputs_done": 0, "inputs_final": False,
           "first_done_at": None, "last_activity_at": None}
    return cast(TierRow, {**row, **values})


def test_the_eta_comes_once_inputs_have_ended_and_every_input_is_known():
    assert tier_progress(_tier(inputs_known=100), NOW)["eta_seconds"] is None  # nothing ended yet
    growing = tier_progress(_tier(inputs_known=100, inputs_done=40), NOW)
    assert (growing["rate_per_second"], growing["eta_seconds"], growing["total_final"]) == (4.0, None, False)
    final = tier_progress(_tier(inputs_known=100, inputs_done=40, inputs_final=True), NOW)
    assert (final["processed"], final["total"], final["eta_seconds"]) == (40, 100, 15.0)
    ended = tier_progress(_tier(inputs_known=100, inputs_done=100, completed_at=_at(5)), NOW)
    assert (ended["rate_per_second"], ended["eta_seconds"], ended["total_final"]) == (20.0, 0.0, True)


def test_a_running_batch_that_has_not_moved_is_stalled():
    batch = cast(BatchRow, {"status": "IN_PROGRESS", "updated_at": _at(600)})
    quiet = [_tier(started_at=_at(500), last_activity_at=_at(400))]
    assert batch_activity(batch, quiet, NOW, stall_seconds=300) == {"last_activity_at": _at(400), "stalled": True}
    moving = [_tier(started_at=_at(500), last_activity_at=_at(1))]
    assert not batch_activity(batch, moving, NOW, stall_seconds=300)["stalled"]
    done = cast(BatchRow, {"status": "COMPLETED", "updated_at": _at(600)})
    assert not batch_activity(done, quiet, NOW, stall_seconds=300)["stalled"]
    assert percent_done([_tier(inputs_known=10, inputs_done=5), _tier(inputs_known=30, inputs_done=5)]) == 25.0
