"""Object reads through a presigned URL on a plain urllib3 pool: the GET botocore would send, for
about 35% less processor time.

A tier reads every object it processes, and a flow's process holds the interpreter lock most of
the time (bench/pipeline.py), so the processor time of one GET is throughput. From 16 threads
against moto's server, botocore's GetObject of a small object took 1.11 ms of it in
bench/reads.py (its event chain, a prepared request, the response parsed against the operation's
model of some fifty headers); a presigned GET sent with urllib3 took 0.72 ms in all.

Presigning costs botocore 170 microseconds per URL, 100 of them on what is the same for every key
of a bucket: resolving the endpoint from its rule set, the event chain, building the request. So
botocore presigns one URL per bucket (`_Template`), and each key's URL is that URL's location
with the key in botocore's encoding, signed by botocore's own signer (`S3SigV4QueryAuth`) with
the client's credentials, region and signing name: the same URL botocore makes, byte for byte
(tests/core/test_presigned_reads.py compares them), in 65 microseconds. A bucket whose URL is not
plain SigV4 query signing (another signer, extra parameters) is presigned by botocore for every
key, and a bucket's template is learned again after any answer but a 200 (botocore may have
learned meanwhile that the bucket lives in another region).

Only the plain success is used from here: a 200 and its body. Anything else (an error answer, a
redirect to another region, throttling, a broken connection) is asked again of botocore by the
caller (`tierflow.storage.read_object`), whose retries and error answers then apply as if this
module did not exist. So:

- botocore's `before-send` event is still emitted with the request, so whatever answers requests
  there (moto's in-process S3, a recorder) answers these too;
- the body is returned as stored (`decode_content=False`, as botocore does: an object stored with
  `Content-Encoding: gzip` stays gzip) and urllib3 checks its length against `Content-Length`;
  S3's optional checksums are not asked for (botocore asks for them and checks them);
- the path is not taken through a proxy (botocore's proxy settings are not repeated here), and is
  given up for the client, with one warning, after a connection error, or when botocore reads an
  object whose presigned GET was refused with a 4xx (a store that takes no presigned GETs would
  otherwise cost two requests per object). `TIERFLOW_S3_PRESIGNED_READS=false` turns it off.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import urllib3
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError
from botocore.httpsession import get_cert_path
from botocore.utils import percent_encode

_log = logging.getLogger(__name__)

_EXPIRES_SECONDS = 900
"""A presigned URL is used at once; this only has to outlast a slow connection attempt."""

_PROBE_KEY = "k"
"""The key of the URL botocore presigns to learn a bucket's template."""

_UNLEARNED: Any = object()
"""A bucket whose template is not known yet (None: known not to have one)."""

_SIGV4_QUERY = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
                "X-Amz-Signature", "X-Amz-Security-Token"}
"""The parameters of a URL signed by `S3SigV4QueryAuth`, and nothing else."""


def proxied(client: BaseClient) -> bool:
    """True when requests of this client may go through a proxy (its config or `*_PROXY`)."""
    environment = {scheme for scheme in urllib.request.getproxies() if scheme != "no"}
    return bool(client.meta.config.proxies or environment)


@dataclass(frozen=True)
class Answer:
    """What the store answered a presigned GET: its status, body and headers."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    too_large: bool = False
    """The object is larger than the reader was allowed to read; `body` is then empty."""


@dataclass(frozen=True)
class _Template:
    """What every presigned URL of one bucket shares, read from one that botocore presigned."""

    location: str
    """The URL up to the key: `scheme://host/` and, addressed by path, `bucket/`."""
    region: str
    signing_name: str

    @classmethod
    def of(cls, url: str) -> _Template | None:
        """The template of botocore's presigned URL of `_PROBE_KEY`, or None if it is not plain
        SigV4 query signing of a URL ending in that key (then botocore presigns every key)."""
        location, _, query = url.partition("?")
        parameters = parse_qs(query, keep_blank_values=True)
        scope = parameters.get("X-Amz-Credential", [""])[0].split("/")
        if (not location.endswith("/" + _PROBE_KEY) or not parameters.keys() <= _SIGV4_QUERY
                or parameters.get("X-Amz-Algorithm") != ["AWS4-HMAC-SHA256"] or len(scope) != 5):
            return None
        return cls(location[: -len(_PROBE_KEY)], region=scope[2], signing_name=scope[3])


class PresignedReader:
    """GETs for one botocore client, on a connection pool of its own sized like the client's.

    `credentials` are the client's: those of the botocore session it was made from."""

    def __init__(self, client: BaseClient, *, credentials: Any, ca_bundle: str | None) -> None:
        config = client.meta.config
        self._client = client
        self._credentials = credentials
        self._templates: dict[str, _Template | None] = {}
        self._event = f"before-send.{client.meta.service_model.service_id.hyphenize()}.GetObject"
        self._pool = urllib3.PoolManager(
            maxsize=config.max_pool_connections,
            timeout=urllib3.Timeout(connect=config.connect_timeout, read=config.read_timeout),
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_bundle or get_cert_path(True),
        )
        self.enabled = True
        self._giving_up = threading.Lock()

    def get(self, bucket: str, key: str, *, max_bytes: int | None = None) -> Answer | None:
        """The store's answer to a presigned GET of `s3://bucket/key`; None when none was had
        (the path is off, the URL could not be signed, the connection failed). A body over
        `max_bytes` is not read: the answer says `too_large`."""
        if not self.enabled or self._credentials is None:  # botocore's own path words the error
            return None
        try:
            url = self.presign(bucket, key)
        except BotoCoreError:  # credentials that could not be refreshed, say: the same
            return None
        answer = self._send(url, bucket, key, max_bytes)
        if answer is not None and answer.status != 200:
            self._templates.pop(bucket, None)
        return answer

    def presign(self, bucket: str, key: str) -> str:
        """The URL botocore's `generate_presigned_url` would give for a GET of this key."""
        template = self._templates.get(bucket, _UNLEARNED)
        if template is _UNLEARNED:
            template = self._templates[bucket] = _Template.of(self._botocore_presign(bucket, _PROBE_KEY))
        if template is None:
            return self._botocore_presign(bucket, key)
        request = AWSRequest(method="GET", url=template.location + percent_encode(key, safe="/~"))
        S3SigV4QueryAuth(self._credentials.get_frozen_credentials(), template.signing_name, template.region,
                         expires=_EXPIRES_SECONDS).add_auth(request)
        return str(request.url)

    def _botocore_presign(self, bucket: str, key: str) -> str:
        return str(self._client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=_EXPIRES_SECONDS))

    def _send(self, url: str, bucket: str, key: str, max_bytes: int | None) -> Answer | None:
        """The answer of whatever answers botocore's `before-send` event, else of the store; a
        body is read only up to `max_bytes` (by its Content-Length, then as it streams)."""
        _, answered = self._client.meta.events.emit_until_response(
            self._event, request=AWSRequest(method="GET", url=url).prepare())
        if answered is not None:
            if max_bytes is not None and answered.status_code == 200 and len(answered.content) > max_bytes:
                return Answer(200, b"", answered.headers, too_large=True)
            return Answer(answered.status_code, answered.content, answered.headers)
        try:
            response = self._pool.request("GET", url, redirect=False, decode_content=False, preload_content=False)
            try:
                body, too_large = _bounded_body(response, max_bytes)
            finally:
                response.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as error:
            self.give_up(f"a presigned GET of s3://{bucket}/{key} failed ({error})")
            return None
        return Answer(response.status, body, response.headers, too_large=too_large)

    def give_up(self, reason: str) -> None:
        """Leave every later read of this client to botocore, and say why once."""
        with self._giving_up:
            if not self.enabled:
                return
            self.enabled = False
            _log.warning("Reading objects through botocore from now on: %s", reason)


def _bounded_body(response: urllib3.BaseHTTPResponse, max_bytes: int | None) -> tuple[bytes, bool]:
    """(the body, False), or (b"", True) without reading the rest when it is over `max_bytes`:
    the connection is then closed instead of drained."""
    if max_bytes is None or response.status != 200:
        return response.read(), False
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        response.close()
        return b"", True
    body = response.read(max_bytes + 1)  # all of it, unless there is more than max_bytes
    if len(body) > max_bytes:
        response.close()
        return b"", True
    return body, False
