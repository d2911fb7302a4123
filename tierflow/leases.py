"""One run per batch: the lease a batch's run holds while it works, and the reservations that
start, retry and resume take before they start a run.

Why: a run whose process died (killed, out of memory, a power cut) leaves its batch unfinished
with nobody to notice, and two runs of one batch would process inputs twice. The run renews its
lease every third of `TIERFLOW_BATCH_LEASE_SECONDS`; a lease that ran out tells the sweep
(`deployments/recovery.py`) to resume the batch, whatever Prefect believes about the old run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tierflow.catalog import leases as catalog_leases
from tierflow.catalog.engine import open_session
from tierflow.errors import AlreadyExistsError
from tierflow.models.status import Status
from tierflow.retrying import catalog_retries
from tierflow.settings import get_settings
from tierflow.timestamps import format_timestamp, utcnow

log = logging.getLogger(__name__)

SERVER_ID_VARIABLE = "TIERFLOW_SERVER_ID"
"""Set by `tierflow serve` for the runs it starts: their leases name it as their holder."""


class LeaseHeldError(AlreadyExistsError):
    """Another run holds the batch's lease: this run must leave the batch alone."""


class BatchBusyError(AlreadyExistsError):
    """A run works on the batch (or is starting): it cannot be started, retried or resumed now
    (409, the contract's `AlreadyExistsError`: the batch already has its run)."""


def _stamp(seconds_from_now: float = 0) -> str:
    return format_timestamp(utcnow() + timedelta(seconds=seconds_from_now))


def holder_name() -> str:
    """Who runs this process's batches: its server (`TIERFLOW_SERVER_ID`) or host and pid."""
    return os.environ.get(SERVER_ID_VARIABLE) or f"{socket.gethostname()}:{os.getpid()}"


def reservation_seconds() -> float:
    """How long a reservation waits for its run to take the lease: the runner may be starting."""
    settings = get_settings()
    return settings.batch_lease_seconds + settings.runner_start_seconds


@dataclass(frozen=True)
class Reservation:
    """A batch reserved for one run about to start; `key` makes creating that run idempotent."""

    batch_id: str
    generation: int

    @property
    def owner(self) -> str:
        return f"{catalog_leases.RESERVED}{self.generation}"

    @property
    def key(self) -> str:
        return f"tierflow-{self.batch_id}-{self.generation}"


def reserve(batch_id: str, *, statuses: Collection[str], busy: str, force: bool = False,
            count_resume: bool = False) -> Reservation:
    """Reserve the batch for a run (compare-and-set); BatchBusyError with `busy` when a run holds
    it or its status is not one of `statuses`."""
    with open_session(get_settings().database_url) as session:
        generation = catalog_leases.reserve(session, batch_id=batch_id, now=_stamp(),
                                            until=_stamp(reservation_seconds()), statuses=statuses,
                                            force=force, count_resume=count_resume)
    if generation is None:
        raise BatchBusyError(busy, details={"batch_id": batch_id})
    return Reservation(batch_id, generation)


def give_back(reservation: Reservation, **batch_values: Any) -> bool:
    """Free a reservation whose run did not start, setting `batch_values` on the batch; False when
    its run has started meanwhile (and so owns the batch)."""
    from tierflow.catalog import batches as catalog_batches

    with open_session(get_settings().database_url) as session:
        if not catalog_leases.release(session, batch_id=reservation.batch_id, owner=reservation.owner):
            return False
        if batch_values:
            catalog_batches.update_batch(session, batch_id=reservation.batch_id, **batch_values)
    return True


def let_run_out(reservation: Reservation) -> None:
    """End a reservation whose run did not start now, leaving the batch to the next sweep."""
    with open_session(get_settings().database_url) as session:
        catalog_leases.expire(session, batch_id=reservation.batch_id, owner=reservation.owner, at=_stamp())


class Lease:
    """A run's hold on its batch, kept by a thread that renews it; `lost` is called (from that
    thread) if another run has taken it."""

    def __init__(self, batch_id: str, run_id: str, generation: int) -> None:
        self.batch_id, self.run_id, self.generation = batch_id, run_id, generation
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    @catalog_retries
    def take(cls, batch_id: str, run_id: str) -> Lease:
        """Take the batch's lease for this run; LeaseHeldError when another run holds it."""
        with open_session(get_settings().database_url) as session:
            generation = catalog_leases.acquire(session, batch_id=batch_id, run_id=run_id, holder=holder_name(),
                                                now=_stamp(), until=_stamp(get_settings().batch_lease_seconds))
        if generation is None:
            raise LeaseHeldError(f"batch {batch_id} is being run by another run; this run leaves it alone",
                                 details={"batch_id": batch_id})
        return cls(batch_id, run_id, generation)

    def keep(self, lost: Callable[[], None]) -> None:
        """Renew the lease every third of its length until `stop`; call `lost` if it was taken."""
        seconds = get_settings().batch_lease_seconds

        def renew_until_stopped() -> None:
            while not self._stop.wait(seconds / 3):
                try:
                    with open_session(get_settings().database_url) as session:
                        held = catalog_leases.renew(session, batch_id=self.batch_id, run_id=self.run_id,
                                                    until=_stamp(seconds))
                except Exception:  # the catalog is unreachable: try again at the next turn
                    log.warning("batch %s: could not renew its lease", self.batch_id, exc_info=True)
                    continue
                if not held:
                    log.error("batch %s: another run took its lease; this run stops", self.batch_id)
                    lost()
                    return

        self._thread = threading.Thread(target=renew_until_stopped, name=f"lease-{self.batch_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the lease itself is released or expired by `release` / `abandon`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def abandon(self) -> None:
        """Let the lease run out now: this run was interrupted, and the next sweep resumes the batch."""
        self.stop()
        try:
            with open_session(get_settings().database_url) as session:
                catalog_leases.expire(session, batch_id=self.batch_id, owner=self.run_id, at=_stamp())
        except Exception:  # unreachable: the lease runs out by itself
            log.warning("batch %s: could not hand its lease back", self.batch_id, exc_info=True)


def expired_leases() -> list[dict[str, Any]]:
    """Batches whose lease ran out, for the sweep."""
    with open_session(get_settings().database_url) as session:
        return catalog_leases.expired(session, now=_stamp())


RESUMABLE = (Status.DRAFT.value, Status.PENDING.value, Status.IN_PROGRESS.value, Status.PROCESSING.value,
             Status.FAILED.value)
"""Statuses a batch can be resumed from: unfinished, or FAILED with inputs still pending."""
