"""Delivering webhook events from the outbox, in a thread of `tierflow serve` and `tierflow
deployments serve` (the delivery itself: tierflow/webhooks.py)."""

from __future__ import annotations

import logging
import threading

from tierflow.settings import get_settings
from tierflow.webhooks import deliver_due, delivery_client

log = logging.getLogger(__name__)


class Deliverer:
    """Every `TIERFLOW_WEBHOOK_POLL_SECONDS`, from `start()` until `stop()`, attempts the webhook
    events that are due. Several servers may run one: each event is claimed before it is sent."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tierflow-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with delivery_client() as client:
            while not self._stop.wait(get_settings().webhook_poll_seconds):
                try:
                    deliver_due(client)
                except Exception:  # the catalog unreachable: the events wait in the outbox
                    log.warning("webhook delivery failed; it tries again shortly", exc_info=True)
