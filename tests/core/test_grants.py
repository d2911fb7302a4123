"""Storage grants: which locations a tenant may bind, and what each object URL may reach."""

from __future__ import annotations

import pytest

from tierflow.errors import ValidationError
from tierflow.grants import Location, NotGrantedError, grant_location, granted_binding, locate

GRANTS = [grant_location("s3://shared/team-a"), grant_location("s3://minio-files", endpoint_url="http://MinIO:9000/")]


def test_a_grant_is_a_folder_and_its_endpoint_is_compared_whatever_its_spelling():
    assert grant_location("s3://shared/team-a") == Location("shared", "team-a/", None, None)
    assert grant_location("s3://shared") == Location("shared", "", None, None)
    assert GRANTS[1].endpoint_url == "http://minio:9000"
    for bad in ("shared/team-a", "s3://", "s3://ab/x", "s3://shared/a/../b", "s3://shared//a", "s3://shared/./a"):
        with pytest.raises(ValidationError):
            grant_location(bad)
    with pytest.raises(ValidationError, match="endpoint"):
        grant_location("s3://shared", endpoint_url="file:///etc/passwd")


@pytest.mark.parametrize("storage", [
    {"s3_bucket": "shared", "prefix": "team-a/"},
    {"s3_bucket": "shared", "prefix": "team-a/reports/"},
    {"s3_bucket": "minio-files", "prefix": "", "endpoint_url": "http://minio:9000"},
])
def test_a_tenant_binds_inside_a_grant_and_gets_its_endpoint(storage):
    bound = granted_binding("a", GRANTS, storage)
    assert bound["s3_bucket"] == storage["s3_bucket"] and bound["prefix"] == storage["prefix"]
    assert bound["endpoint_url"] == (None if storage["s3_bucket"] == "shared" else "http://minio:9000")


@pytest.mark.parametrize(("storage", "named"), [
    ({"s3_bucket": "operator-secrets"}, "s3://operator-secrets/ is not granted"),
    ({"s3_bucket": "shared", "prefix": ""}, "s3://shared/ is not granted"),
    ({"s3_bucket": "shared", "prefix": "team-ab/"}, "s3://shared/team-ab/ is not granted"),
    ({"s3_bucket": "shared", "prefix": "team-a"}, "s3://shared/team-a is not granted"),
    ({"s3_bucket": "shared", "prefix": "team-a/../team-b/"}, "storage.prefix"),
    ({"s3_bucket": "shared", "prefix": "team-a//x"}, "storage.prefix"),
    ({"s3_bucket": "shared", "prefix": "/team-a/"}, "storage.prefix"),
    ({"s3_bucket": "shared", "prefix": "team-a/", "endpoint_url": "http://127.0.0.1:9/"}, "storage.endpoint_url"),
    ({"s3_bucket": "shared", "prefix": "team-a/", "endpoint_url": "http://minio:9000"}, "s3://shared/team-a/"),
    ({"s3_bucket": "shared", "prefix": "team-a/", "region": "eu-west-1"}, "s3://shared/team-a/ is not granted"),
])
def test_a_tenant_cannot_bind_what_is_not_granted(storage, named):
    with pytest.raises(NotGrantedError, match=named.replace(".", r"\.").replace("/", "/")) as raised:
        granted_binding("a", GRANTS, storage)
    assert raised.value.status == 403


BOUND = {"bucket_name": "notes", "storage": {"s3_bucket": "shared", "prefix": "team-a/in/"}}


def test_objects_are_read_only_inside_their_buckets_storage():
    target = locate(BOUND, [], "s3://shared/team-a/in/x.txt")  # an operator's bucket needs no grant
    assert (target.s3_bucket, target.key, target.endpoint_url) == ("shared", "team-a/in/x.txt", None)
    for outside in ("s3://operator-secrets/prod.env", "s3://shared/team-a/other.txt", "s3://shared/team-a/in/../x",
                    "s3://shared/team-a/in/./../x"):
        with pytest.raises(NotGrantedError):
            locate(BOUND, GRANTS, outside)
    # S3 keeps empty segments; a listed key with one is read (folded, it stays inside the prefix).
    assert locate(BOUND, GRANTS, "s3://shared/team-a/in//x").key == "team-a/in//x"


def test_a_tenants_bucket_stops_reading_when_its_grant_is_revoked():
    tenant_bucket = {**BOUND, "tenant_defined": True}
    assert locate(tenant_bucket, GRANTS, "s3://shared/team-a/in/x.txt").key == "team-a/in/x.txt"
    with pytest.raises(NotGrantedError, match="no longer granted"):
        locate(tenant_bucket, GRANTS[1:], "s3://shared/team-a/in/x.txt")


def test_a_bucket_without_storage_reads_only_granted_locations_through_their_endpoint():
    unbound = {"bucket_name": "loose", "storage": None}
    target = locate(unbound, GRANTS, "s3://minio-files/any/key.txt")
    assert target.endpoint_url == "http://minio:9000" and target.key == "any/key.txt"
    for outside in ("s3://operator-secrets/prod.env", "s3://shared/team-b/x", "s3://shared/team-ab/x"):
        with pytest.raises(NotGrantedError, match="not inside a storage grant"):
            locate(unbound, GRANTS, outside)
    with pytest.raises(ValidationError):
        locate(unbound, GRANTS, "http://169.254.169.254/latest/meta-data")
