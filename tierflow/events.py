"""S3 event notifications: files that land are registered, files removed are deleted, at once.

Accepted as AWS S3 and MinIO send them (`{"Records": [...]}`, `ObjectCreated:*` and
`ObjectRemoved:*`) and as EventBridge delivers them (`{"detail-type": "Object Created", "detail":
{...}}`, one or a list). Only events of the tierflow bucket's own S3 bucket and prefix apply;
others are counted as ignored. Each object keeps the sequencer of the newest event applied to
it, so an event repeated, or older than one applied (they arrive in any order), changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from tierflow.catalog import objects as catalog_objects
from tierflow.catalog.engine import open_session
from tierflow.deletions import delete_objects
from tierflow.discovery import entry_facts, head_keys, is_gone, object_id_for, register_entries
from tierflow.errors import BadRequestError
from tierflow.settings import get_settings
from tierflow.storage import is_derivative, s3_client, storage_location
from tierflow.timestamps import now_text

MAX_EVENTS = 1000
"""Events one request may carry (S3 sends one to a few; a batch from a queue, more)."""
MAX_SIZE = (1 << 63) - 1
"""The largest `size` an event may state: what the catalog's integer columns hold."""


@dataclass(frozen=True)
class ObjectEvent:
    """One object created or removed in S3."""

    removed: bool
    s3_bucket: str
    key: str
    etag: str = ""
    size: int = 0
    sequencer: str = ""


@dataclass
class EventOutcome:
    """What a request's events did: objects registered, objects deleted, events ignored."""

    registered: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    ignored: int = 0


def parse_notification(body: Any) -> list[ObjectEvent]:
    """The object events of an S3, MinIO or EventBridge notification; BadRequestError naming the
    field when the body is neither."""
    if _event_count(body) > MAX_EVENTS:
        raise BadRequestError(f"Records: at most {MAX_EVENTS} events per request", details={"field": "Records"})
    if isinstance(body, dict) and isinstance(body.get("Records"), list):
        parsed = [_from_record(r, f"Records[{i}]") for i, r in enumerate(body["Records"])]
    elif isinstance(body, dict) and "detail" in body:
        parsed = [_from_eventbridge(body, "detail")]
    elif isinstance(body, list) and all(isinstance(e, dict) and "detail" in e for e in body):
        parsed = [_from_eventbridge(e, f"[{i}].detail") for i, e in enumerate(body)]
    else:
        raise BadRequestError("expected an S3 event notification: {\"Records\": [...]} as S3 and MinIO send it, "
                              "or EventBridge events ({\"detail-type\": ..., \"detail\": {...}})",
                              details={"field": "Records"})
    return [event for event in parsed if event is not None]


def _event_count(body: Any) -> int:
    """How many events a body carries, before any is read."""
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict) and isinstance(body.get("Records"), list):
        return len(body["Records"])
    return 1


def _part(parent: dict[str, Any], name: str) -> dict[str, Any]:
    """A nested object of an event, or an empty one where it has none."""
    value = parent.get(name)
    return value if isinstance(value, dict) else {}


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequestError(f"{where}: expected a non-empty string", details={"field": where})
    return value


def _optional_text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequestError(f"{where}: expected a string", details={"field": where})
    return value


def _size(value: Any, where: str) -> int:
    """An event's object size in bytes (absent: 0); a JSON float, string or container is refused
    rather than converted, so `1e400` or `"abc"` never reaches the catalog."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise BadRequestError(f"{where}: expected a whole number of bytes from 0 to {MAX_SIZE}",
                              details={"field": where})
    return value


def _from_record(record: Any, where: str) -> ObjectEvent | None:
    """An S3 or MinIO record; None for event types other than created and removed."""
    if not isinstance(record, dict):
        raise BadRequestError(f"{where}: expected an object", details={"field": where})
    name = _text(record.get("eventName"), f"{where}.eventName").removeprefix("s3:")
    if not name.startswith(("ObjectCreated:", "ObjectRemoved:")):
        return None
    s3 = _part(record, "s3")
    bucket = _part(s3, "bucket")
    obj = _part(s3, "object")
    return ObjectEvent(
        removed=name.startswith("ObjectRemoved:"),
        s3_bucket=_text(bucket.get("name"), f"{where}.s3.bucket.name"),
        key=unquote_plus(_text(obj.get("key"), f"{where}.s3.object.key")),  # S3 sends keys URL-encoded
        etag=_optional_text(obj.get("eTag", obj.get("etag")), f"{where}.s3.object.eTag").strip('"'),
        size=_size(obj.get("size"), f"{where}.s3.object.size"),
        sequencer=_optional_text(obj.get("sequencer"), f"{where}.s3.object.sequencer"),
    )


def _from_eventbridge(event: dict[str, Any], where: str) -> ObjectEvent | None:
    """An EventBridge event of S3; None for types other than Object Created and Object Deleted."""
    kind = event.get("detail-type")
    if kind not in ("Object Created", "Object Deleted"):
        return None
    detail = _part(event, "detail")
    bucket = _part(detail, "bucket")
    obj = _part(detail, "object")
    return ObjectEvent(
        removed=kind == "Object Deleted",
        s3_bucket=_text(bucket.get("name"), f"{where}.bucket.name"),
        key=_text(obj.get("key"), f"{where}.object.key"),  # EventBridge sends keys as they are
        etag=_optional_text(obj.get("etag"), f"{where}.object.etag").strip('"'),
        size=_size(obj.get("size"), f"{where}.object.size"),
        sequencer=_optional_text(obj.get("sequencer"), f"{where}.object.sequencer"),
    )


def _newer(sequencer: str, applied: str | None) -> bool:
    """Whether an event with `sequencer` came after the one `applied` (hexadecimal values, of
    any length); an event without one is taken as it comes."""
    if applied is None or not sequencer or not applied:
        return True
    try:
        return int(sequencer, 16) > int(applied, 16)
    except ValueError:
        return sequencer > applied


def apply_events(bucket: dict[str, Any], events: list[ObjectEvent]) -> EventOutcome:
    """Register the created objects and delete the removed ones (with their documents in every
    tier) of the tierflow `bucket`; what was done."""
    outcome = EventOutcome()
    storage = bucket.get("storage") or {}
    prefix = storage.get("prefix") or ""
    mine = [e for e in events if storage and e.s3_bucket == storage.get("s3_bucket")
            and e.key.startswith(prefix) and not is_derivative(e.key) and not e.key.endswith("/")]
    outcome.ignored = len(events) - len(mine)
    latest: dict[str, ObjectEvent] = {}
    for event in mine:  # the newest event of each object in this request
        object_id = object_id_for(bucket["bucket_id"], event.key)
        if object_id not in latest or _newer(event.sequencer, latest[object_id].sequencer):
            latest[object_id] = event
    outcome.ignored += len(mine) - len(latest)
    with open_session(get_settings().database_url) as session:
        applied = catalog_objects.applied_sequencers(session, object_ids=list(latest))
    fresh = {oid: e for oid, e in latest.items() if _newer(e.sequencer, applied.get(oid))}
    outcome.ignored += len(latest) - len(fresh)
    created = {oid: e for oid, e in fresh.items() if not e.removed}
    removed = [oid for oid, e in fresh.items() if e.removed]
    if created:
        outcome.registered = _register_created(bucket, created)
    with open_session(get_settings().database_url, write=True) as session:
        catalog_objects.record_events(session, rows=[
            {"object_id": oid, "sequencer": e.sequencer, "removed": e.removed, "updated_at": now_text()}
            for oid, e in fresh.items()])
    present = _present(removed)
    delete_objects(bucket=bucket, object_ids=present)
    outcome.deleted = present
    return outcome


def _register_created(bucket: dict[str, Any], created: dict[str, ObjectEvent]) -> list[str]:
    """Register the objects these events created that differ from what the catalog holds; their
    ids. Each is HEAD-ed: an event tells no LastModified or metadata, and the same bytes put
    again (the same etag) may carry new metadata, which a listing would see as a new
    LastModified."""
    client = s3_client(*storage_location(bucket["storage"]))
    heads = head_keys(client, bucket, sorted({e.key for e in created.values()}))
    with open_session(get_settings().database_url) as session:
        known = catalog_objects.listing_facts(session, object_ids=list(created))
    changed = {}
    for oid, event in created.items():
        found = heads[event.key]
        if is_gone(found):
            continue  # removed again since: its removal event deletes it
        if isinstance(found, Exception):
            raise found
        entry = {"Key": event.key, "ETag": found.get("ETag") or event.etag,
                 "Size": found.get("ContentLength", event.size), "LastModified": found.get("LastModified")}
        if known.get(oid) != entry_facts(entry):
            changed[oid] = entry
    if changed:
        register_entries(client, bucket, changed, True, heads=heads)
    return sorted(changed)


def _present(object_ids: list[str]) -> list[str]:
    """Those of these objects the catalog has."""
    if not object_ids:
        return []
    with open_session(get_settings().database_url) as session:
        return sorted(catalog_objects.get_objects(session, object_ids=object_ids))
