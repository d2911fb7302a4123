"""A running batch's live progress, from counters its commits keep on each tier's row.

Read on every `GET /v1/batches/{id}`, so it must cost a few row reads and never a count of the
manifest: the chunk that ends inputs adds them to `inputs_done` in its own transaction, and each
selection adds what it put in the manifest to `inputs_known` (tierflow/catalog/batches.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tierflow.catalog import batches as catalog_batches
from tierflow.catalog.engine import open_session
from tierflow.catalog.rows import BatchRow, TierRow
from tierflow.models.status import TERMINAL
from tierflow.retrying import catalog_retries
from tierflow.settings import get_settings


def _seconds(start: str | None, end: datetime) -> float | None:
    return None if start is None else (end - datetime.fromisoformat(start)).total_seconds()


def tier_progress(tier: TierRow, now: datetime) -> dict[str, Any]:
    """`processed` (inputs ended so far), `total` (known so far), `total_final` (whether that is all
    of them), `rate_per_second` (ended per second since the tier began), `eta_seconds` (null until
    inputs have ended and every input is known)."""
    processed, total, final = tier["inputs_done"], max(tier["inputs_known"], tier["inputs_done"]), tier["inputs_final"]
    completed = tier["completed_at"]
    ended = completed is not None
    elapsed = _seconds(tier["started_at"], datetime.fromisoformat(completed) if completed else now)
    rate = processed / elapsed if elapsed and elapsed > 0 and processed else 0.0
    eta: float | None = None
    if ended:
        eta = 0.0
    elif final and rate > 0:
        eta = round((total - processed) / rate, 1)
    return {"processed": processed, "total": total, "total_final": final or ended,
            "rate_per_second": round(rate, 1), "eta_seconds": eta}


def batch_activity(batch: BatchRow, tiers: list[TierRow], now: datetime, stall_seconds: float) -> dict[str, Any]:
    """`last_activity_at` (when an input last ended, or the batch last changed) and `stalled`
    (still running, and nothing moved for `stall_seconds`)."""
    moments = [batch["updated_at"], *(t["last_activity_at"] for t in tiers), *(t["started_at"] for t in tiers)]
    last = max(m for m in moments if m is not None)
    idle = _seconds(last, now) or 0.0
    return {"last_activity_at": last, "stalled": batch["status"] not in TERMINAL and idle > stall_seconds}


def percent_done(tiers: list[TierRow]) -> float:
    """The share of the batch's known inputs that ended, over every tier, in percent."""
    done = sum(t["inputs_done"] for t in tiers)
    known = sum(max(t["inputs_known"], t["inputs_done"]) for t in tiers)
    return round(100.0 * done / known, 1) if known else 0.0


@catalog_retries
def batch_percent(batch_id: str) -> float:
    """`percent_done` of this batch, read now."""
    with open_session(get_settings().database_url) as session:
        return percent_done(catalog_batches.get_tiers(session, batch_id=batch_id))
