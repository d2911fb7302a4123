"""tierflow's S3 clients parse timestamps as botocore does, only quicker."""

from __future__ import annotations

import pytest
from botocore.utils import parse_timestamp

from tierflow.storage import quick_timestamp, s3_client

FORMS = [
    "2026-11-30T05:58:43.000Z",  # a listing's LastModified
    "2026-11-30T05:58:43.123456+02:00",
    "Mon, 30 Nov 2026 05:58:43 GMT",  # a GET's or HEAD's Last-Modified header
    "Mon, 30 Nov 2026 05:58:43 -0000",
    "1700000000.5",
    1700000000,
    "2026-11-30T05:58:43",  # no zone: botocore answers a naive datetime, and so must this
    "2026-11-30",
]


@pytest.mark.parametrize("value", FORMS)
def test_every_form_gives_what_botocore_gives(value):
    quick, botocore_own = quick_timestamp(value), parse_timestamp(value)
    assert quick == botocore_own
    assert quick.utcoffset() == botocore_own.utcoffset()


def test_a_bad_timestamp_is_refused_as_botocore_refuses_it():
    with pytest.raises(ValueError, match="not a time"):
        quick_timestamp("not a time")


def test_listings_and_gets_through_the_shared_client_carry_aware_times(s3):
    s3.put_object(Bucket="tierflow-test", Key="a.txt", Body=b"a")
    client = s3_client(None, None)
    listed = client.list_objects_v2(Bucket="tierflow-test")["Contents"][0]["LastModified"]
    got = client.get_object(Bucket="tierflow-test", Key="a.txt")["LastModified"]
    assert listed.tzinfo is not None and got.tzinfo is not None
    assert abs((listed - got).total_seconds()) < 1  # moto's listing keeps milliseconds, its header not
    plain = s3.list_objects_v2(Bucket="tierflow-test")["Contents"][0]["LastModified"]
    assert listed == plain
