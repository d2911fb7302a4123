"""Delivering webhook events from the outbox, in a thread of `tierflow serve` and `tierflow
deployments serve` (the delivery itself: tierflow/webhooks.py)."""

from __future__ import annotations

from deployments.periodic import Periodic
from tierflow.settings import get_settings
from tierflow.webhooks import deliver_due, delivery_client


class Deliverer(Periodic):
    """Every `TIERFLOW_WEBHOOK_POLL_SECONDS`, from `start()` until `stop()`, attempts the webhook
    events that are due. Several servers may run one: each event is claimed before it is sent."""

    def __init__(self) -> None:
        self._client = delivery_client()
        super().__init__("tierflow-webhooks", lambda: get_settings().webhook_poll_seconds, self._deliver)

    def _deliver(self) -> None:
        deliver_due(self._client)

    def stop(self) -> None:
        super().stop()
        self._client.close()
