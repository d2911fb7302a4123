"""Checking http(s) URLs a caller gives (webhooks, S3 endpoints) before anything reads their parts.

`urllib.parse.urlsplit` refuses some malformed hosts (`http://[::1`) and accepts a bad port until
`.port` is read (`http://h:99999/`), so every ValueError it can raise is met here, once, and
turned into a reason a person can act on.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def http_url(url: str) -> SplitResult:
    """The parts of `url`, an http:// or https:// URL with a host and, if it names a port, one
    from 1 to 65535; ValueError saying what is wrong otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError as error:  # an unclosed or invalid [IPv6] host
        raise ValueError(f"not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    try:
        port_ok = parts.port != 0
    except ValueError:  # not a number, or past 65535
        port_ok = False
    if not port_ok:
        raise ValueError("expected a port from 1 to 65535 after the host")
    return parts
