"""Object storage through boto3: listing (streamed pages), HEAD and GET, run concurrently.

Clients are cached per endpoint and region and shared by threads (boto3 clients are thread-safe).
Every concurrent request of a process goes through one shared pool of `io_concurrency` threads,
so chunks running side by side share that limit instead of multiplying it: more requests than
the client's connection pool only open and throw away connections. The pool serves the calls in
the order they came (`_CallOrderPool`), so a chunk that started first also finishes first.
botocore's `standard` retry mode already repeats throttling and 5xx answers with backoff; what
still fails is classified here as transient or terminal, so callers never parse messages.
Objects are read by presigned GETs where the client allows it (`tierflow.presigned_reads`), with
botocore answering everything but a plain success.
"""

from __future__ import annotations

import itertools
import queue
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import parse_timestamp

from tierflow.errors import TerminalError, TransientError
from tierflow.presigned_reads import PresignedReader, proxied
from tierflow.settings import get_settings
from tierflow.timestamps import format_timestamp

T = TypeVar("T")

_TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
    "ServiceUnavailable", "503", "500", "502", "504",
}


class StorageError(TerminalError):
    """S3 refused a request for a reason that will not go away (missing key, access denied)."""

    category = "dependency"

    def __init__(self, message: str, *, bucket: str, key: str | None = None, code: str | None = None) -> None:
        super().__init__(message, details={"s3_bucket": bucket, "key": key, "code": code})
        self.code = code


class ObjectTooLargeError(TerminalError):
    """An object over `TIERFLOW_MAX_OBJECT_BYTES`: its input fails, and its bytes are not read."""

    category = "resource"

    def __init__(self, where: str, *, size: int | None, limit: int) -> None:
        said = f"{size} bytes" if size is not None else "more bytes than that"
        super().__init__(f"{where}: {said}; objects are read up to {limit} bytes (TIERFLOW_MAX_OBJECT_BYTES)",
                         details={"size_bytes": size, "limit": limit})


class StorageUnavailableError(TransientError):
    """S3 could not be reached or asked us to slow down, even after botocore's retries."""

    category = "network"


def storage_location(binding: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(endpoint_url, region) for a bucket binding, falling back to the settings."""
    settings = get_settings()
    binding = binding or {}
    return (
        binding.get("endpoint_url") or settings.s3_endpoint_url,
        binding.get("region") or settings.s3_region,
    )


_clients: dict[tuple[str | None, str | None], BaseClient] = {}
_clients_lock = threading.Lock()
_readers: weakref.WeakKeyDictionary[BaseClient, PresignedReader] = weakref.WeakKeyDictionary()
"""The presigned reader of each shared client that may use one (`read_object`)."""


def quick_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, quicker for the two forms S3 sends: ISO 8601 in listings
    (`2026-11-30T05:58:43.000Z`) and RFC 1123 in GET and HEAD headers (`Mon, 30 Nov 2026 05:58:43
    GMT`). botocore parses both with dateutil, 33 and 46 microseconds each; these take 0.2 and 4
    (every listed key and every GET has one). Anything else goes to botocore's own parser."""
    if isinstance(value, str):
        for parse in (datetime.fromisoformat, parsedate_to_datetime):
            try:
                parsed = parse(value)
            except (TypeError, ValueError):
                continue
            if parsed.tzinfo is not None:  # botocore's answer too; without a zone it differs
                return parsed
    return parse_timestamp(value)


def s3_client(endpoint_url: str | None, region: str | None) -> BaseClient:
    """A shared S3 client for an endpoint (None: AWS) with retries and a sized connection pool.

    The pool holds a connection for each thread of the shared I/O pool plus one per chunk task
    (chunks write derivatives such as thumbnails from their own thread). Made once per process
    under a lock: sixteen I/O threads asking at once used to build sixteen clients, each loading
    botocore's service model (seconds of CPU at the start of every worker process)."""
    key = (endpoint_url, region)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            settings = get_settings()
            config = Config(
                retries={"mode": "standard", "total_max_attempts": settings.s3_max_attempts},
                signature_version="s3v4",  # what it signs requests with anyway; presigned URLs too
                max_pool_connections=settings.io_concurrency + settings.chunk_concurrency,
                s3={"addressing_style": "path"} if endpoint_url else {},
            )
            session = _botocore_session()
            session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=quick_timestamp)
            client = _clients[key] = boto3.session.Session(botocore_session=session).client(
                "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=config
            )
            if settings.s3_presigned_reads and not proxied(client):
                _readers[client] = PresignedReader(client, credentials=session.get_credentials(),
                                                   ca_bundle=session.get_config_variable("ca_bundle"))
        return client


_shared_loader: list[Any] = []
"""The data loader of the process's first botocore session, given to every later one."""


def _botocore_session() -> botocore.session.Session:
    """A new botocore session that loads service models through the process's shared loader.

    Each session loads botocore's S3 model and endpoint data again through its own loader: about
    100 ms of CPU per client, 15 ms with a loader that has them already. Call under `_clients_lock`."""
    session = botocore.session.get_session()
    if _shared_loader:
        session.register_component("data_loader", _shared_loader[0])
    else:
        _shared_loader.append(session.get_component("data_loader"))
    return session


def load_s3_models() -> None:
    """Load what an S3 client needs into the shared loader now (a fork server, whose runs then
    make their clients without loading it again). Makes a client that is never used: no
    credentials are looked up, nothing is sent."""
    with _clients_lock:
        session = _botocore_session()
    session.create_client("s3", region_name="us-east-1", aws_access_key_id="-", aws_secret_access_key="-")


def forget_clients() -> None:
    """Drop the cached clients (tests that switch S3 endpoints or settings)."""
    with _clients_lock:
        _clients.clear()


def _wrap(error: Exception, bucket: str, key: str | None) -> Exception:
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        # S3's own message stays in the chained exception, for the server's log: it can name
        # accounts and roles, so what callers read is the error code alone.
        if code in _TRANSIENT_CODES:
            return StorageUnavailableError(f"{where}: S3 is unavailable ({code})")
        if code in ("NoSuchKey", "404", "NotFound"):
            return StorageError(f"{where}: no such key", bucket=bucket, key=key, code=code)
        if code in ("NoSuchBucket",):
            return StorageError(f"{where}: no such S3 bucket", bucket=bucket, key=key, code=code)
        return StorageError(f"{where}: {code or 'refused'}", bucket=bucket, key=key, code=code)
    if isinstance(error, BotoCoreError):
        return StorageUnavailableError(f"{where}: cannot reach S3 ({type(error).__name__})")
    return error


def iter_pages(client: BaseClient, *, bucket: str, prefix: str, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """Pages of `ListObjectsV2` entries under `prefix`, one page in memory at a time."""
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}):
            entries = [e for e in page.get("Contents", []) if not e["Key"].endswith("/")]
            if entries:
                yield entries
    except (ClientError, BotoCoreError) as error:
        raise _wrap(error, bucket, None) from error


_tickets = itertools.count()
"""Places in line, shared by every pool of the process: one is taken by each call, or ahead of it."""


class _CallOrderPool:
    """Threads that serve requests in the order of the calls that made them: every request of an
    earlier `run_concurrently` call goes before any request of a later one.

    A plain thread pool serves requests as they were queued, so the 20 reads of a tier's small
    first chunk were interleaved with the 600 of the three chunks that started beside it, and
    the first document waited for most of them (bench/pipeline.py: about 2 s at 10,000 objects).
    """

    def __init__(self, size: int) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[Any], Any], Any, Future[Any]]] = (
            queue.PriorityQueue())
        for n in range(size):
            threading.Thread(target=self._serve, name=f"tierflow-io-{n}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            _, _, func, item, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(func(item))
            except BaseException as error:  # handed to the caller, as an executor would
                future.set_exception(error)

    def map(self, func: Callable[[Any], T], items: list[Any], ticket: int) -> list[T]:
        """`func(item)` for each item, by these threads, served in the place of `ticket`
        (`io_ticket`); the results in the order of `items`."""
        futures: list[Future[T]] = []
        for index, item in enumerate(items):
            futures.append(Future())
            self._queue.put((ticket, index, func, item, futures[-1]))
        return [future.result() for future in futures]


_pools: dict[int, _CallOrderPool] = {}
_pools_lock = threading.Lock()


def _io_pool() -> _CallOrderPool:
    """The process's shared I/O threads (one pool per configured size, made on first use)."""
    size = get_settings().io_concurrency
    with _pools_lock:
        if size not in _pools:
            _pools[size] = _CallOrderPool(size)
        return _pools[size]


def io_ticket() -> int:
    """A place in the shared I/O pool's line, taken now, for a `run_concurrently` call made later.

    A chunk takes one as it begins, so its reads are served in the order the chunks began, not
    in the order their threads happened to reach their reads: the tier's small first chunk
    (`ChunkCutter`) is not served behind the full chunks that began beside it
    (docs/design/tier-overlap.md).
    """
    return next(_tickets)


def run_concurrently(func: Callable[[str], T], keys: Iterable[str], *,
                     ticket: int | None = None) -> dict[str, T | Exception]:
    """`func(key)` for each key on the shared I/O pool; each result or its exception, by key.
    Served in the place of `ticket` (`io_ticket`) if given, else in the place this call takes.

    `func` must not itself call `run_concurrently` (it would wait on the pool it occupies)."""
    keys = list(keys)

    def guarded(key: str) -> T | Exception:
        try:
            return func(key)
        except Exception as error:  # collected per key: one bad key must not sink the others
            return error

    if len(keys) <= 1:
        return {k: guarded(k) for k in keys}
    place = io_ticket() if ticket is None else ticket
    return dict(zip(keys, _io_pool().map(guarded, keys, place), strict=True))


def head_object(client: BaseClient, bucket: str, key: str) -> dict[str, Any]:
    """HEAD one object: content type and user metadata (`x-amz-meta-*`)."""
    try:
        return dict(client.head_object(Bucket=bucket, Key=key))
    except (ClientError, BotoCoreError) as error:
        raise _wrap(error, bucket, key) from error


@dataclass(frozen=True)
class StoredFile:
    """An object's bytes with what its GET said about it (the same facts a HEAD gives)."""

    body: bytes
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    """The ETag of these bytes (unquoted): the version that was read, which may be newer than
    the one the listing saw."""
    last_modified: str | None = None
    """Its LastModified, as the catalog writes timestamps (with the etag, the version read)."""


def _described(body: bytes, headers: Mapping[str, str]) -> StoredFile:
    """A GET's body with the facts its headers give, named as botocore names them."""
    content_type, etag, metadata, modified = None, None, {}, None
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "content-type":
            content_type = value
        elif lowered == "etag":
            etag = value.strip('"')
        elif lowered == "last-modified":
            modified = _http_date(value)
        elif lowered.startswith("x-amz-meta-"):
            metadata[name[len("x-amz-meta-"):]] = value
    return StoredFile(bytes(body), content_type, metadata, etag, modified)


def _http_date(value: str) -> str | None:
    """An HTTP date header as the catalog writes timestamps; None if it does not parse."""
    try:
        return format_timestamp(parsedate_to_datetime(value))
    except (TypeError, ValueError):
        return None


def read_object(client: BaseClient, bucket: str, key: str, *, max_bytes: int | None = None) -> StoredFile:
    """GET one object: its bytes, content type and user metadata (`x-amz-meta-*`).
    ObjectTooLargeError, without reading the body, when it has more than `max_bytes`.

    Through the client's presigned reader when it has one (`tierflow.presigned_reads`: about 35%
    less processor time); any answer but a plain success is asked again of botocore."""
    reader = _readers.get(client)
    answer = reader.get(bucket, key, max_bytes=max_bytes) if reader is not None else None
    where = f"s3://{bucket}/{key}"
    if answer is not None and answer.too_large:
        raise ObjectTooLargeError(where, size=_length(answer.headers), limit=max_bytes or 0)
    if answer is not None and answer.status == 200:
        return _described(answer.body, answer.headers)
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        with response["Body"] as body:
            size = response.get("ContentLength")
            if max_bytes is not None and size is not None and size > max_bytes:
                raise ObjectTooLargeError(where, size=size, limit=max_bytes)
            data = bytes(body.read(max_bytes + 1) if max_bytes is not None else body.read())
            if max_bytes is not None and len(data) > max_bytes:
                raise ObjectTooLargeError(where, size=None, limit=max_bytes)
    except (ClientError, BotoCoreError) as error:
        raise _wrap(error, bucket, key) from error
    if reader is not None and answer is not None and 400 <= answer.status < 500:
        reader.give_up(f"the store refused a presigned GET of s3://{bucket}/{key} ({answer.status}) "
                       "and answered botocore's")
    modified = response.get("LastModified")
    return StoredFile(data, response.get("ContentType"), dict(response.get("Metadata") or {}),
                      str(response["ETag"]).strip('"') if response.get("ETag") else None,
                      format_timestamp(modified) if isinstance(modified, datetime) else None)


def _length(headers: Mapping[str, str]) -> int | None:
    value = next((v for k, v in headers.items() if k.lower() == "content-length"), None)
    return int(value) if value is not None and value.isdigit() else None


def write_object(client: BaseClient, bucket: str, key: str, body: bytes, content_type: str) -> None:
    """PUT one object (a derivative tierflow writes, such as a thumbnail)."""
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    except (ClientError, BotoCoreError) as error:
        raise _wrap(error, bucket, key) from error


DERIVATIVES = ".tierflow"
"""Folder name under which tierflow writes derivatives next to a source; discovery skips it."""


def derivative_key(source_key: str, suffix: str) -> str:
    """`photos/a.png` → `photos/.tierflow/a.png<suffix>`: beside the source, never rediscovered."""
    folder, _, name = source_key.rpartition("/")
    return f"{folder}/{DERIVATIVES}/{name}{suffix}" if folder else f"{DERIVATIVES}/{name}{suffix}"


def is_derivative(key: str) -> bool:
    """True for keys inside a `.tierflow/` folder (what `derivative_key` makes)."""
    return DERIVATIVES in key.split("/")[:-1]
