"""The request body limit: `TIERFLOW_MAX_REQUEST_BYTES`, answered 413 in the contract's body.

A declared `Content-Length` over the limit is answered before any of the body is read; a body
sent without one (chunked) is counted as it arrives and refused once it passes the limit, so a
caller can never make the server hold more than the limit in memory.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from tierflow.settings import get_settings

PAYLOAD_TOO_LARGE = "PayloadTooLargeError"


def too_large_message(limit: int) -> str:
    return f"request body larger than {limit} bytes (TIERFLOW_MAX_REQUEST_BYTES)"


class BodyLimit:
    """ASGI middleware that refuses request bodies over the configured size."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = get_settings().max_request_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised where the route reads its body; the error handlers answer it (413).
                    raise HTTPException(413, detail=too_large_message(limit))
            return message

        await self.app(scope, counted, send)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(error_body(413, PAYLOAD_TOO_LARGE, too_large_message(limit),
                                 {"limit_bytes": limit})).encode()
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    start: dict[str, Any] = {"type": "http.response.start", "status": 413, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
