"""`/v1/webhooks`: be called when a namespace's batches or tiers end (see tierflow/webhooks.py)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import NamespaceDep
from api.models import Deleted, Webhook, WebhookDelivery, WebhookRequest
from tierflow import webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", response_model=Webhook)
def create_webhook(request: WebhookRequest, namespace: NamespaceDep) -> dict:
    """Register a webhook; the answer carries its secret, this once."""
    return webhooks.create_webhook(namespace_id=namespace["namespace_id"], url=request.url,
                                   events=list(request.events), secret=request.secret)


@router.get("/list", response_model=list[Webhook])
def list_webhooks(namespace: NamespaceDep) -> list[dict]:
    """The namespace's webhooks (without their secrets)."""
    return webhooks.list_webhooks(namespace["namespace_id"])


@router.delete("/{webhook_id}", response_model=Deleted)
def delete_webhook(webhook_id: str, namespace: NamespaceDep) -> dict:
    """Delete a webhook and the events it has not delivered."""
    webhooks.delete_webhook(namespace["namespace_id"], webhook_id)
    return {"success": True, "message": f"webhook {webhook_id} deleted"}


@router.get("/{webhook_id}/deliveries", response_model=list[WebhookDelivery])
def list_deliveries(webhook_id: str, namespace: NamespaceDep) -> list[dict]:
    """The webhook's latest 100 delivery attempts, newest first."""
    return webhooks.webhook_deliveries(namespace["namespace_id"], webhook_id)
