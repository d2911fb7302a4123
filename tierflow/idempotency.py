"""Idempotency keys: a repeated request with the same key gets the first answer, nothing new.

The first request claims the key (a row with no response yet) before it does anything, so two
concurrent requests with one key cannot both start work: the database's primary key decides.
The answer is stored when the work has started; if the work fails to start, the claim is
dropped so the client can try again with the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from tierflow.catalog import idempotency as catalog_idempotency
from tierflow.catalog.engine import open_session
from tierflow.errors import AlreadyExistsError, BadRequestError
from tierflow.settings import get_settings


def fingerprint(*parts: Any) -> str:
    """A hash of what makes two requests the same request."""
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def run_once(*, namespace_id: str, key: str, request_fingerprint: str,
             work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`work()`'s answer, stored under `key`; a repeat with the same key returns the stored one."""
    url = get_settings().database_url
    try:
        with open_session(url) as session:
            catalog_idempotency.claim_key(session, namespace_id=namespace_id, key=key, fingerprint=request_fingerprint)
    except IntegrityError:
        with open_session(url) as session:
            row = catalog_idempotency.read_claim(session, namespace_id=namespace_id, key=key)
        if row["fingerprint"] != request_fingerprint:
            raise BadRequestError(
                f"Idempotency-Key '{key}' was already used for a different request",
                details={"field": "Idempotency-Key"}) from None
        if row["response"] is None:
            raise AlreadyExistsError(
                f"a request with Idempotency-Key '{key}' is still being processed; repeat it shortly",
                details={"field": "Idempotency-Key"}) from None
        return dict(row["response"])
    try:
        response = work()
    except BaseException:
        with open_session(url) as session:
            catalog_idempotency.drop_claim(session, namespace_id=namespace_id, key=key)
        raise
    with open_session(url) as session:
        catalog_idempotency.store_answer(session, namespace_id=namespace_id, key=key, response=response)
    return response
