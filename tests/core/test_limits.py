"""Limits on what one input may cost: object bytes, documents per input, image pixels, query time."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import text

from tests.utils.factories import apply_definitions, chunk_collection, put_text, text_bucket, trigger
from tierflow.batch_view import batch_view
from tierflow.catalog.engine import QueryTimeoutError, open_session, time_limit
from tierflow.extractors import ExtractionError, ExtractorInput
from tierflow.extractors.image import ImageExtractor, ImageParameters
from tierflow.settings import get_settings
from tierflow.storage import ObjectTooLargeError, forget_clients, read_object, s3_client

LIMIT = 1000


@pytest.fixture
def small_objects(monkeypatch):
    monkeypatch.setenv("TIERFLOW_MAX_OBJECT_BYTES", str(LIMIT))
    get_settings.cache_clear()
    yield LIMIT
    get_settings.cache_clear()


@pytest.mark.parametrize("reads", ["presigned", "botocore"])
def test_an_object_over_the_limit_is_refused_by_its_size_over_http(moto_endpoint, monkeypatch, reads):
    monkeypatch.setenv("TIERFLOW_S3_PRESIGNED_READS", str(reads == "presigned").lower())
    get_settings.cache_clear()
    forget_clients()
    client = s3_client(moto_endpoint, None)
    client.create_bucket(Bucket="limits")
    client.put_object(Bucket="limits", Key="fits", Body=b"x" * LIMIT)
    client.put_object(Bucket="limits", Key="big", Body=b"x" * (LIMIT + 1))
    assert read_object(client, "limits", "fits", max_bytes=LIMIT).body == b"x" * LIMIT
    with pytest.raises(ObjectTooLargeError, match=f"{LIMIT + 1} bytes; objects are read up to {LIMIT}") as raised:
        read_object(client, "limits", "big", max_bytes=LIMIT)
    assert raised.value.category == "resource"
    forget_clients()
    get_settings.cache_clear()


def test_an_object_over_the_limit_is_refused_when_answered_in_process(s3):
    s3.put_object(Bucket="tierflow-test", Key="big", Body=b"x" * (LIMIT + 1))
    with pytest.raises(ObjectTooLargeError):
        read_object(s3_client(None, None), "tierflow-test", "big", max_bytes=LIMIT)


def test_a_listed_object_over_the_limit_fails_alone_unread(flows, tmp_path, small_objects):
    put_text(flows, "notes/small.txt", "a few words")
    put_text(flows, "notes/big.txt", "word " * 400)
    apply_definitions(tmp_path, {"namespace": "lim", "buckets": [text_bucket()], "collections": [chunk_collection()]})
    read: list[str] = []
    s3_client(None, None).meta.events.register("before-send.s3.GetObject", lambda request, **_: read.append(request.url))
    view = batch_view(trigger("lim", "chunks")["batch_id"])
    assert [url.split("?")[0].rsplit("/", 1)[-1] for url in read] == ["small.txt"]  # the big one is never asked for
    assert view["status"] == "COMPLETED_WITH_ERRORS" and view["failed_object_count"] == 1
    (failed,) = view["failed_inputs"]
    assert failed["error"]["category"] == "resource" and "TIERFLOW_MAX_OBJECT_BYTES" in failed["error"]["message"]
    assert view["audit"]["balanced"] and view["tier_tasks"][0]["inputs_succeeded"] == 1


def test_an_input_that_yields_too_many_documents_fails_alone(flows, tmp_path, monkeypatch):
    monkeypatch.setenv("TIERFLOW_MAX_DOCUMENTS_PER_INPUT", "3")
    get_settings.cache_clear()
    put_text(flows, "notes/short.txt", "one two three")
    put_text(flows, "notes/long.txt", "one two three four five six seven")
    apply_definitions(tmp_path, {"namespace": "lim", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=1)]})
    view = batch_view(trigger("lim", "chunks")["batch_id"])
    assert view["tier_tasks"][0]["documents_written"] == 3 and view["failed_object_count"] == 1
    (failed,) = view["failed_inputs"]
    assert failed["error"]["category"] == "resource" and "made 7 documents" in failed["error"]["message"]
    get_settings.cache_clear()


def _png(width: int, height: int, mode: str = "1") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(catalog):
    bomb = _png(12_000, 10_000)  # 120 million pixels, a few kilobytes of PNG
    assert len(bomb) < 64_000
    extractor = ImageExtractor()
    with pytest.raises(ExtractionError, match="12000 × 10000 pixels") as raised:
        extractor.extract(ExtractorInput(kind="object", record={}, values={"image": bomb}), ImageParameters())
    assert raised.value.category == "resource"
    made = extractor.extract(ExtractorInput(kind="object", record={}, values={"image": _png(40, 20, "RGB")}),
                             ImageParameters())
    assert made[0]["width"] == 40


@pytest.mark.both_backends
def test_a_query_past_its_time_limit_is_stopped(catalog):
    slow = {"sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
            "postgresql": "SELECT pg_sleep(30)"}
    with open_session(catalog) as session:
        backend = session.connection().dialect.name
        with pytest.raises(QueryTimeoutError, match="longer than 0.2 s"), time_limit(session, 0.2):
            session.execute(text(slow[backend]))
    with open_session(catalog) as session, time_limit(session, 5):
        assert session.execute(text("SELECT 1")).scalar_one() == 1
