"""Resuming batches whose run died, without a human: the lease sweep.

A run renews its batch's lease while it works (`tierflow.leases`). When the lease has run out,
the process running the batch is gone (killed, out of memory, a power cut, a restarted server)
or its run never started. The sweep then marks that run CRASHED in Prefect, whatever Prefect
believed, reserves the batch for a new run and starts it; the per-input ledger and the input
claims make the new run process exactly what was not done. `tierflow serve` and `tierflow
deployments serve` sweep every `TIERFLOW_SWEEP_SECONDS` in a thread (`Sweeper`); on a work pool,
the `resume-crashed` deployment does it on a schedule (`flows/resume.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from deployments.periodic import Periodic
from deployments.runs import batch_run_ids, mark_crashed, taking_runs
from tierflow.catalog import batches as catalog_batches
from tierflow.catalog import leases as catalog_leases
from tierflow.catalog.engine import open_session
from tierflow.leases import RESUMABLE, BatchBusyError, Reservation, expired_leases, reserve
from tierflow.models.status import Status
from tierflow.settings import get_settings
from tierflow.sync import due_triggers

log = logging.getLogger(__name__)

Start = Callable[[dict[str, Any], Reservation], None]
"""Starts the trigger flow of a reserved batch with these parameters."""


def claim_expired() -> list[tuple[dict[str, Any], Reservation]]:
    """Reserve every batch whose lease ran out and that can be resumed, after marking its runs
    CRASHED; the trigger parameters and reservation of each. A batch that cannot be resumed (it
    finished, or its runs died `TIERFLOW_AUTO_RESUMES` times) has its lease freed, and an
    unfinished one is marked FAILED with the reason."""
    settings = get_settings()
    claimed = []
    for row in expired_leases():
        batch_id = row["batch_id"]
        if not _resumable(row, settings.auto_resumes):
            continue
        try:
            reservation = reserve(batch_id, statuses=RESUMABLE, busy="taken", count_resume=True)
        except BatchBusyError:
            continue  # another sweep, or a resume by hand, took it first
        crashed = mark_crashed(batch_run_ids(batch_id), "its batch's lease ran out: the process running it is gone")
        log.warning("batch %s: lease ran out (runs %s marked CRASHED); resuming it", batch_id, crashed)
        claimed.append(({"namespace": row["namespace_id"], "collection": row["collection_id"],
                         "batch_id": batch_id}, reservation))
    return claimed


def _resumable(row: dict[str, Any], limit: int) -> bool:
    """Whether the sweep resumes this batch of an expired lease; if not, frees the lease (and
    fails a batch left unfinished)."""
    with open_session(get_settings().database_url) as session:
        pending = catalog_batches.pending_count(session, batch_id=row["batch_id"])
        finished = row["status"] not in RESUMABLE or (row["status"] == Status.FAILED.value and not pending)
        if not finished and row["auto_resumes"] < limit:
            return True
        if not catalog_leases.release(session, batch_id=row["batch_id"], owner=row["lease_owner"]):
            return False
        if not finished:
            message = (f"its run died or failed {row['auto_resumes'] + 1} times; {pending} input(s) are still "
                       "pending: `tierflow batch resume` runs them")
            catalog_batches.update_batch(session, batch_id=row["batch_id"], status=Status.FAILED.value,
                                         error_summary={"message": message, "pending_inputs": pending,
                                                        "resumable": True})
            log.error("batch %s: %s", row["batch_id"], message)
    return False


def sweep(start: Start) -> list[str]:
    """Resume every batch whose lease ran out, each started by `start`; their ids. One batch that
    cannot be started does not stop the others."""
    resumed = []
    for parameters, reservation in claim_expired():
        try:
            start(parameters, reservation)
        except Exception:
            log.exception("batch %s could not be resumed", reservation.batch_id)
            continue
        resumed.append(reservation.batch_id)
    return resumed


def start_through_deployment(parameters: dict[str, Any], reservation: Reservation) -> None:
    """`Start` for a process serving the deployments: a new run of the trigger deployment."""
    from deployments.operations import Via, run_batch

    run_batch(parameters, reservation=reservation, via=Via.DEPLOYMENT, fail_batch=False)


def sync_due_buckets() -> list[str]:
    """Start, through the trigger deployment, the batches that the checks of the buckets due
    call for (`tierflow.sync`: none for a bucket where nothing changed); their batch ids."""
    from deployments.operations import start_batch

    started = []
    for namespace_id, collection_id, request in due_triggers():
        try:
            started.append(start_batch(namespace_id=namespace_id, collection=collection_id,
                                       request=request)["batch_id"])
        except Exception:
            log.exception("the scheduled listing of bucket %s could not start for collection %s",
                          request.include_buckets, collection_id)
    return started


class Sweeper(Periodic):
    """Every `TIERFLOW_SWEEP_SECONDS`, from `start()` until `stop()`: resumes batches whose lease
    ran out (`sweep`) and checks the buckets whose scheduled listing is due."""

    def __init__(self, start: Start = start_through_deployment) -> None:
        def work() -> bool:
            if not taking_runs():
                return False  # shutting down: what is left is the next server's
            sweep(start)
            sync_due_buckets()
            return True

        super().__init__("tierflow-sweep", lambda: get_settings().sweep_seconds, work)
