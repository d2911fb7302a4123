"""Objects read through presigned URLs come back exactly as botocore reads them, and anything but
a plain success is botocore's to answer (tierflow.presigned_reads)."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient

from tests.utils.s3_answers import s3_error
from tierflow.settings import get_settings
from tierflow.storage import StorageError, StoredFile, forget_clients, read_object, s3_client

BUCKET = "tierflow-test"


def _sends(client: BaseClient) -> list[str]:
    """The URL of each GetObject the client sends from now on (botocore's or presigned)."""
    urls: list[str] = []
    client.meta.events.register("before-send.s3.GetObject", lambda request, **_: urls.append(request.url))
    return urls


def _presigned(urls: list[str]) -> list[str]:
    return [url for url in urls if "X-Amz-Signature=" in url]


def _as_botocore_reads(client: BaseClient, key: str) -> StoredFile:
    response = client.get_object(Bucket=BUCKET, Key=key)
    return StoredFile(response["Body"].read(), response.get("ContentType"), response["Metadata"])


@pytest.fixture
def served(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Moto's S3 over HTTP with an empty bucket; tierflow's clients made afresh for it."""
    monkeypatch.delenv("TIERFLOW_S3_PRESIGNED_READS", raising=False)
    get_settings.cache_clear()
    forget_clients()
    s3_client(moto_endpoint, None).create_bucket(Bucket=BUCKET)
    yield moto_endpoint
    forget_clients()
    get_settings.cache_clear()


OBJECTS: dict[str, dict[str, Any]] = {
    "notes/a b/é ü+%.txt": {"Body": "grüße".encode(), "ContentType": "text/plain; charset=utf-8",
                            "Metadata": {"Owner": "zoe", "topic": "greetings"}},
    "blob.gz": {"Body": gzip.compress(b"kept compressed"), "ContentEncoding": "gzip"},
    "empty": {"Body": b""},
}


def test_a_presigned_read_gives_what_botocore_gives(served):
    client = s3_client(served, None)
    for key, put in OBJECTS.items():
        client.put_object(Bucket=BUCKET, Key=key, **put)
    sent = _sends(client)
    read = {key: read_object(client, BUCKET, key) for key in OBJECTS}
    assert len(_presigned(sent)) == len(sent) == len(OBJECTS)  # each read was one presigned GET
    for key, put in OBJECTS.items():
        assert read[key] == _as_botocore_reads(client, key)
        assert read[key].body == put["Body"]  # as stored: a gzip object is not unpacked


def test_an_error_answer_is_asked_again_of_botocore_and_reads_as_before(served):
    client = s3_client(served, None)
    sent = _sends(client)
    with pytest.raises(StorageError, match="no such key") as missing:
        read_object(client, BUCKET, "nothing-here")
    assert missing.value.code == "NoSuchKey"
    assert len(sent) == 2 and len(_presigned(sent)) == 1  # once each way, not retried
    with pytest.raises(StorageError, match="no such S3 bucket"):
        read_object(client, "no-such-bucket", "a")


def test_a_connection_error_hands_the_client_to_botocore_for_good(served, monkeypatch, caplog):
    client = s3_client(served, None)
    client.put_object(Bucket=BUCKET, Key="a", Body=b"one")
    client.put_object(Bucket=BUCKET, Key="b", Body=b"two")
    attempts: list[str] = []

    def refused(self: urllib3.PoolManager, method: str, url: str, **_: Any) -> None:
        attempts.append(url)  # only the presigned path uses PoolManager.request; botocore does not
        raise urllib3.exceptions.NewConnectionError(None, "connection refused")

    monkeypatch.setattr(urllib3.PoolManager, "request", refused)
    with caplog.at_level(logging.WARNING, logger="tierflow.presigned_reads"):
        assert read_object(client, BUCKET, "a").body == b"one"
        assert read_object(client, BUCKET, "b").body == b"two"
    assert len(attempts) == 1
    assert "s3://tierflow-test/a" in caplog.text and "through botocore from now on" in caplog.text


def test_a_store_that_refuses_presigned_gets_is_read_through_botocore_for_good(served, caplog):
    client = s3_client(served, None)
    client.put_object(Bucket=BUCKET, Key="a", Body=b"one")
    client.put_object(Bucket=BUCKET, Key="b", Body=b"two")

    def refuse_presigned(request: Any, **_: Any) -> AWSResponse | None:
        if "X-Amz-Signature=" in request.url:
            return s3_error(request.url, 403, "AccessDenied")
        return None

    sent = _sends(client)  # before the refusal, which ends the event
    client.meta.events.register("before-send.s3.GetObject", refuse_presigned)
    with caplog.at_level(logging.WARNING, logger="tierflow.presigned_reads"):
        assert read_object(client, BUCKET, "a").body == b"one"
        assert read_object(client, BUCKET, "b").body == b"two"
    assert len(_presigned(sent)) == 1 and len(sent) == 3  # only the first read tried it
    assert "refused a presigned GET of s3://tierflow-test/a (403)" in caplog.text


def test_requests_answered_in_process_are_answered_for_presigned_reads_too(s3, monkeypatch):
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"from moto's in-process S3", ContentType="text/plain")

    def networked(*_: Any, **__: Any) -> None:
        raise AssertionError("a presigned read went to the network past moto's before-send handler")

    monkeypatch.setattr(urllib3.PoolManager, "request", networked)
    client = s3_client(None, None)
    sent = _sends(client)
    assert read_object(client, BUCKET, "a") == StoredFile(b"from moto's in-process S3", "text/plain", {})
    assert len(_presigned(sent)) == len(sent) == 1


@pytest.mark.parametrize("setting", [("HTTP_PROXY", "http://127.0.0.1:9"), ("TIERFLOW_S3_PRESIGNED_READS", "false")])
def test_every_read_goes_through_botocore_behind_a_proxy_or_when_turned_off(served, monkeypatch, setting):
    s3_client(served, None).put_object(Bucket=BUCKET, Key="a", Body=b"one")
    monkeypatch.setenv(*setting)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # botocore itself goes straight to moto
    get_settings.cache_clear()
    forget_clients()
    client = s3_client(served, None)
    sent = _sends(client)
    assert read_object(client, BUCKET, "a").body == b"one"
    assert len(sent) == 1 and not _presigned(sent)
