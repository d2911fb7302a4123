"""Answers a `before-send` handler gives botocore in the store's place (throttling, refusals)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse


class _Raw:
    """The raw body botocore reads an answer from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def s3_error(url: str, status: int, code: str) -> AWSResponse:
    """An S3 error answer with this status and error code, for the request to `url`."""
    return AWSResponse(url, status, {}, _Raw(f"<Error><Code>{code}</Code></Error>".encode()))
