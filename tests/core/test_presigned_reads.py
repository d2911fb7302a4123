"""Objects read through presigned URLs come back exactly as botocore reads them, and anything but
a plain success is botocore's to answer (tierflow.presigned_reads)."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from unittest import mock

import boto3
import botocore.session
import pytest
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.config import Config

from tests.utils.s3_answers import s3_error
from tierflow.presigned_reads import PresignedReader
from tierflow.settings import get_settings
from tierflow.storage import StorageError, StoredFile, forget_clients, read_object, s3_client
from tierflow.timestamps import format_timestamp

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
    return StoredFile(response["Body"].read(), response.get("ContentType"), response["Metadata"],
                      response["ETag"].strip('"'), format_timestamp(response["LastModified"]))


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
    read = read_object(client, BUCKET, "a")
    assert read == StoredFile(b"from moto's in-process S3", "text/plain", {}, read.etag, read.last_modified)
    assert read.etag and read.last_modified
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


KEYS = ["a.txt", "dir/a b+c%~é.txt", "//x//y", "/lead", "q?x=1#f", "ü/日本語", "a&b=c;d", "x" * 300, "a/./b/../c"]


@pytest.mark.parametrize(("endpoint", "addressing"), [
    ("http://127.0.0.1:9000", "path"), (None, "auto"), (None, "virtual"), (None, "path")])
@pytest.mark.parametrize("token", [None, "session/token+="])
def test_a_key_is_signed_into_the_url_botocore_would_give(endpoint, addressing, token):
    session = botocore.session.get_session()
    session.set_credentials("AKIDEXAMPLE", "secret/key+", token)
    client = boto3.session.Session(botocore_session=session).client(
        "s3", endpoint_url=endpoint, region_name="eu-west-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": addressing}))
    reader = PresignedReader(client, credentials=session.get_credentials(), ca_bundle=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=datetime(2026, 11, 30, 12, 0, 0)):
        for bucket in ("tierflow-test", "a.dotted.bucket"):
            for key in KEYS:
                expected = client.generate_presigned_url(
                    "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=900)
                assert reader.presign(bucket, key) == expected


def test_botocore_presigns_once_per_bucket_and_again_after_an_answer_but_a_200(served, monkeypatch):
    client = s3_client(served, None)
    for key in ("a", "b", "c"):
        client.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    presigned: list[str] = []
    presign = client.generate_presigned_url
    monkeypatch.setattr(client, "generate_presigned_url",
                        lambda operation, Params, **kw: presigned.append(Params["Key"]) or presign(operation, Params, **kw))
    assert [read_object(client, BUCKET, k).body for k in ("a", "b")] == [b"a", b"b"]
    assert len(presigned) == 1  # one URL per bucket; each key is signed from it
    with pytest.raises(StorageError, match="no such key"):
        read_object(client, BUCKET, "missing")
    assert read_object(client, BUCKET, "c").body == b"c"
    assert len(presigned) == 2  # learned again after the 404: the bucket may have moved


def test_a_bucket_whose_url_is_not_plain_sigv4_query_signing_is_presigned_by_botocore_per_key(served, monkeypatch):
    client = s3_client(served, None)
    for key in ("a", "b"):
        client.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    presign = client.generate_presigned_url
    asked: list[str] = []

    def with_a_parameter_of_another_signer(operation: str, Params: dict[str, str], **kw: Any) -> str:
        asked.append(Params["Key"])
        return f"{presign(operation, Params, **kw)}&X-Amz-S3session-Token=t"

    monkeypatch.setattr(client, "generate_presigned_url", with_a_parameter_of_another_signer)
    sent = _sends(client)
    assert [read_object(client, BUCKET, k).body for k in ("a", "b")] == [b"a", b"b"]
    assert asked == ["k", "a", "b"]  # the probe, then botocore for each key
    assert len(sent) == 2 and all(url.endswith("&X-Amz-S3session-Token=t") for url in sent)
