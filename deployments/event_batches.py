"""Batches for files that landed: the objects S3 events registered, gathered for
`TIERFLOW_EVENT_DEBOUNCE_SECONDS` from the first, then one batch per collection that reads their
bucket, for just those of the objects it has not processed as they are now (`dedup_strategy: skip`);
none when that leaves nothing.

Why gather: S3 sends one event per file, and a batch per file would pay a run's start for each.
What is gathered lives in this process only: if it stops first, the objects are registered and
pending all the same, and the next scheduled `process-pending` run (or any trigger) takes them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from tierflow.models.trigger import MAX_OBJECT_IDS
from tierflow.settings import get_settings
from tierflow.sync import window_triggers

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
        """The batches these objects call for (`tierflow.sync.window_triggers`: none for objects
        that are gone or that every collection has processed as they are now); their trigger
        answers."""
        return [self._start(namespace_id=namespace, collection=collection, request=request)
                for namespace, collection, request in window_triggers(namespace_id=namespace_id, bucket_id=bucket_id,
                                                                      object_ids=object_ids)]


batcher = EventBatcher()
"""This process's batcher (the REST API's)."""
