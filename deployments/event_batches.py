"""Batches for files that landed: the objects S3 events registered, gathered for
`TIERFLOW_EVENT_DEBOUNCE_SECONDS` from the first, then one batch per collection that reads their
bucket, for just those objects (`dedup_strategy: skip`: what a collection already made at that content is
left out).

Why gather: S3 sends one event per file, and a batch per file would pay a run's start for each.
What is gathered lives in this process only: if it stops first, the objects are registered and
pending all the same, and the next scheduled `process-pending` run (or any trigger) takes them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from tierflow.catalog import objects as catalog_objects
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.models.trigger import MAX_OBJECT_IDS, TriggerRequest
from tierflow.settings import get_settings

log = logging.getLogger(__name__)

StartBatch = Callable[..., dict[str, Any]]


def _start_batch(**arguments: Any) -> dict[str, Any]:
    from deployments.operations import start_batch

    return start_batch(**arguments)


class EventBatcher:
    """Gathers objects per bucket and starts their batches at the end of the debounce time."""

    def __init__(self, start: StartBatch = _start_batch) -> None:
        self._start = start
        self._lock = threading.Lock()
        self._waiting: dict[tuple[str, str], set[str]] = {}
        self._timers: dict[tuple[str, str], threading.Timer] = {}

    def add(self, *, namespace_id: str, bucket_id: str, object_ids: list[str]) -> None:
        """Gather these objects of the bucket. Their batches start `event_debounce_seconds` after
        the first object gathered, or at once when `MAX_OBJECT_IDS` are waiting: what a flood of
        events gathers stays bounded, and none waits longer than that."""
        if not object_ids:
            return
        key = (namespace_id, bucket_id)
        with self._lock:
            waiting = self._waiting.setdefault(key, set())
            waiting.update(object_ids)
            full = len(waiting) >= MAX_OBJECT_IDS
            if key not in self._timers:
                timer = threading.Timer(0 if full else get_settings().event_debounce_seconds, self._fire, args=(key,))
                timer.daemon = True
                self._timers[key] = timer
                timer.start()
                return
        if full:
            self._fire(key)

    def _fire(self, key: tuple[str, str]) -> None:
        with self._lock:
            object_ids = self._waiting.pop(key, set())
            timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()  # fired early (full): its turn has come already
        if not object_ids:
            return
        try:
            self.start_batches(namespace_id=key[0], bucket_id=key[1], object_ids=object_ids)
        except Exception:  # the objects stay registered and pending: the next run takes them
            log.exception("batches for %s object(s) of bucket %s could not be started", len(object_ids), key[1])

    def start_batches(self, *, namespace_id: str, bucket_id: str, object_ids: set[str]) -> list[dict[str, Any]]:
        """One batch per enabled collection reading the bucket, for those of these objects that
        still exist; their trigger answers."""
        with open_session(get_settings().database_url) as session:
            present = sorted(catalog_objects.get_objects(session, object_ids=list(object_ids)))
            readers = [c for c in resources.list_collections(session, namespace_id=namespace_id)
                       if c["enabled"] and c["source"]["type"] == "bucket"
                       and bucket_id in (c["source"].get("bucket_ids") or [])]
        answers = []
        for collection in readers:
            for start in range(0, len(present), MAX_OBJECT_IDS):
                request = TriggerRequest(object_ids=present[start:start + MAX_OBJECT_IDS], dedup_strategy="skip")
                answers.append(self._start(namespace_id=namespace_id, collection=collection["collection_id"],
                                           request=request))
        return answers


batcher = EventBatcher()
"""This process's batcher (the REST API's)."""
