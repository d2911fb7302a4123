"""S3 clients of one process load botocore's models once (each client's own session loaded them
again: about 100 ms of CPU per client, at the start of every run)."""

from __future__ import annotations

import pytest

from tierflow import storage


def test_s3_clients_of_a_process_share_one_loader_of_botocores_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    storage.forget_clients()
    try:
        first = storage.s3_client("http://127.0.0.1:1", None)
        second = storage.s3_client("http://127.0.0.1:2", "eu-west-1")
        assert first is not second
        assert first._loader is second._loader  # type: ignore[attr-defined]
    finally:
        storage.forget_clients()
