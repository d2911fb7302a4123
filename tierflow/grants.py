"""Storage grants: the S3 locations a namespace may reach, and the check every read and write makes.

The operator grants a namespace locations (`tierflow storage grant`). A tenant's key may bind a
bucket only inside one of them, with the grant's endpoint (a tenant never names a host of its
own, so the server never sends its credentials where no operator pointed it). Every `s3://` URL an
object carries is located again where it is read or written beside (`locate`): inside the bucket's
own storage, which for a tenant's bucket must still be granted, or, for a bucket without storage,
inside a grant of its namespace. What lies elsewhere is never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierflow.errors import ForbiddenError, ValidationError
from tierflow.urls import http_url


class NotGrantedError(ForbiddenError):
    """A location outside what the namespace was granted (or outside the bucket's own storage)."""

    category = "permission"


@dataclass(frozen=True)
class Location:
    """An S3 location: a bucket, a key prefix, and the endpoint and region that reach it
    (None: the server's default endpoint and region)."""

    s3_bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Location:
        """The location of a grant row or a bucket's `storage` binding."""
        return cls(row["s3_bucket"], row.get("prefix") or "", normal_endpoint(row.get("endpoint_url")),
                   row.get("region"))

    def url(self) -> str:
        return f"s3://{self.s3_bucket}/{self.prefix}"

    def holds(self, s3_bucket: str, key: str) -> bool:
        """Whether the key lies under this location."""
        return s3_bucket == self.s3_bucket and key.startswith(self.prefix)

    def covers(self, other: Location) -> bool:
        """Whether every key of `other` lies under this location, reached the same way."""
        return self.holds(other.s3_bucket, other.prefix) and self.endpoint_url == other.endpoint_url


@dataclass(frozen=True)
class Target:
    """Where one object is read (or a derivative written): the key and how to reach it."""

    s3_bucket: str
    key: str
    endpoint_url: str | None
    region: str | None

    def binding(self) -> dict[str, Any]:
        """As a bucket's `storage` binding, for `tierflow.storage.storage_location`."""
        return {"endpoint_url": self.endpoint_url, "region": self.region}


def escapes(key: str) -> bool:
    """True for a key that a server or proxy normalising its URL could read as a key elsewhere:
    '.' or '..' segments, backslashes, control characters."""
    if "\\" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        return True
    return any(segment in (".", "..") for segment in key.split("/"))


def has_tricks(path: str) -> bool:
    """True for a key or prefix a caller should not name: one that `escapes`, or with a leading
    '/' or empty segments ('//'), which S3 keeps but paths elsewhere fold."""
    return path.startswith("/") or "//" in path or escapes(path)


def grant_prefix(prefix: str) -> str:
    """A granted prefix as stored: a folder (ending in '/'), or '' for the whole bucket.

    A grant of `team-a` must not cover `team-ab/`, so it is the folder `team-a/`."""
    prefix = prefix.strip()
    if has_tricks(prefix):
        raise ValidationError([{"type": "value_error", "location": ["prefix"],
                                "message": f"{prefix!r} is not a plain prefix (no leading '/', '.', '..' or '//')"}])
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def grant_location(url: str, *, endpoint_url: str | None = None, region: str | None = None) -> Location:
    """The location of `s3://BUCKET[/PREFIX]` as a grant holds it; ValidationError naming the part
    that is wrong."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ValidationError([{"type": "value_error", "location": ["location"],
                                "message": f"{url!r} is not an s3://BUCKET[/PREFIX] location"}])
    s3_bucket, _, prefix = url[5:].partition("/")
    if not 3 <= len(s3_bucket) <= 63:
        raise ValidationError([{"type": "value_error", "location": ["location"],
                                "message": f"{s3_bucket!r} is not an S3 bucket name (3 to 63 characters)"}])
    return Location(s3_bucket, grant_prefix(prefix), normal_endpoint(endpoint_url), region or None)


def normal_endpoint(url: str | None) -> str | None:
    """An endpoint URL compared as the same host whatever its spelling: scheme and host in lower
    case, no trailing '/'. ValidationError for anything but a plain http(s) URL."""
    if url is None or url == "":
        return None
    try:
        parts = http_url(url.strip())
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("expected no credentials, query or fragment")
    except ValueError as error:
        raise ValidationError([{"type": "value_error", "location": ["endpoint_url"],
                                "message": f"{url!r} is not a plain http(s) endpoint URL: {error}"}]) from None
    host = parts.hostname.lower() if parts.hostname else ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def granted_binding(namespace: str, grants: list[Location], storage: dict[str, Any]) -> dict[str, Any]:
    """The `storage` a tenant asked for, if a grant of its namespace covers it, with the grant's
    endpoint and region; NotGrantedError naming what is not granted."""
    prefix = storage.get("prefix") or ""
    if has_tricks(prefix):
        raise NotGrantedError(f"storage.prefix {prefix!r} is not granted: a prefix may not start with '/' "
                              "or hold '.', '..' or '//' segments", details={"field": "storage.prefix"})
    asked_endpoint = normal_endpoint(storage.get("endpoint_url"))
    if asked_endpoint is not None and all(g.endpoint_url != asked_endpoint for g in grants):
        raise NotGrantedError(
            f"storage.endpoint_url {storage['endpoint_url']!r} is not granted to namespace '{namespace}': a tenant "
            "uses the endpoint of a grant (leave endpoint_url out)", details={"field": "storage.endpoint_url"})
    for grant in grants:
        wanted = Location(storage["s3_bucket"], prefix, asked_endpoint or grant.endpoint_url)
        if grant.covers(wanted) and storage.get("region") in (None, grant.region):
            return {**storage, "prefix": prefix, "endpoint_url": grant.endpoint_url, "region": grant.region}
    granted = ", ".join(g.url() for g in grants) or "nothing"
    raise NotGrantedError(f"storage: s3://{storage['s3_bucket']}/{prefix} is not granted to namespace "
                          f"'{namespace}' (granted: {granted})", details={"field": "storage"})


def locate(bucket: dict[str, Any], grants: list[Location], url: str) -> Target:
    """Where the object at `url` of this bucket may be read; NotGrantedError when it lies outside
    the bucket's storage, a tenant's bucket is no longer granted, or a bucket without storage
    names a location none of its namespace's grants covers."""
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise ValidationError([{"type": "value_error", "location": ["blobs", "data"],
                                "message": f"{url[:200]!r} is not an s3://bucket/key URL"}])
    s3_bucket, _, key = url[5:].partition("/")
    name = bucket.get("bucket_name", bucket.get("bucket_id"))
    if escapes(key):
        raise NotGrantedError(f"{url}: keys with '.' or '..' segments are not read")
    storage = bucket.get("storage")
    if storage:
        own = Location.of(storage)
        if not own.holds(s3_bucket, key):
            raise NotGrantedError(f"{url} lies outside bucket '{name}''s storage {own.url()}")
        if bucket.get("tenant_defined") and not any(g.covers(own) for g in grants):
            raise NotGrantedError(f"bucket '{name}''s storage {own.url()} is no longer granted to its namespace")
        return Target(s3_bucket, key, own.endpoint_url, own.region)
    grant = next((g for g in grants if g.holds(s3_bucket, key)), None)
    if grant is None:
        raise NotGrantedError(f"{url} is not inside a storage grant of bucket '{name}''s namespace "
                              "(a bucket without storage reads only granted locations)")
    return Target(s3_bucket, key, grant.endpoint_url, grant.region)
