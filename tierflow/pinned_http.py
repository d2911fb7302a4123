"""HTTP requests to a stranger's URL that connect to the address that was checked.

Checking a host name and then letting the HTTP client resolve it again lets a name answer a public
address to the check and a loopback one to the connection (DNS rebinding). Here the name is
resolved once (`resolve`), every address it gives is checked (`refusal`), and the request goes to
the first of them that connects, by IP, the name kept as `Host` and, for https, as the TLS server
name (SNI and the certificate check), redirects never followed.
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import socket
from collections.abc import Mapping

import httpx

from tierflow.errors import BadRequestError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix: its addresses reach the IPv4 address in their last 32 bits."""
_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "192.0.0.0/24", "192.88.99.0/24", "64:ff9b:1::/48", "3fff::/20", "5f00::/16", "fec0::/10"))
"""Special-purpose ranges (RFC 6890 and its updates) that not every Python's `is_global` knows."""


class AddressRefusedError(BadRequestError):
    """The URL's host does not resolve, or resolves to an address a request may not reach."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"url: {reason}", details={"field": "url", "url": url[:200]})


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to now, in the resolver's order: the one place a pinned
    request asks for a name (tests replace it, or `socket.getaddrinfo`, with a fake)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 address reaches, or a 6to4 one is routed through."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def refusal(address: IPAddress) -> str | None:
    """Why a request may not go to `address` (e.g. "a loopback address"), or None if it is
    public. An IPv6 address that embeds an IPv4 one (mapped, NAT64, 6to4) is judged by it."""
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_v4(address)) is not None:
        reason = refusal(embedded)
        return f"an address embedding {embedded}, {reason}" if reason else None
    for kind, test in (("a loopback", address.is_loopback), ("an unspecified", address.is_unspecified),
                       ("a link-local", address.is_link_local), ("a multicast", address.is_multicast),
                       ("a reserved", address.is_reserved), ("a private", address.is_private),
                       ("a non-public", not address.is_global or any(address in n for n in _NOT_PUBLIC
                                                                    if n.version == address.version))):
        if test:
            return f"{kind} address"
    return None


def checked_addresses(url: httpx.URL) -> list[str]:
    """The addresses the URL's host resolves to, once, if every one of them is public;
    AddressRefusedError naming the first that is not (or saying the host does not resolve)."""
    host = url.raw_host.decode("ascii")
    try:
        answers = resolve(host, url.port or (443 if url.scheme == "https" else 80))
    except (OSError, UnicodeError) as error:
        raise AddressRefusedError(str(url), f"its host {host} does not resolve ({type(error).__name__})") from error
    if not answers:
        raise AddressRefusedError(str(url), f"its host {host} resolves to no address")
    for answer in answers:
        address = ipaddress.ip_address(answer)
        if reason := refusal(address):
            raise AddressRefusedError(str(url), f"its host {host} resolves to {address}, {reason}; not contacted")
    return answers


def new_client(*, timeout: float) -> httpx.Client:
    """A client for `post`: no redirects and no proxies from the environment (either could lead
    where the check did not look), no cookies (requests go to IPs: a cookie one receiver set
    would be sent to another on the same IP)."""
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, cookies=no_cookies)


def post(client: httpx.Client, url: str, *, content: bytes, headers: Mapping[str, str],
         allow_private: bool = False) -> httpx.Response:
    """POST to `url` at an address `checked_addresses` accepted (the next one when connecting to
    one fails, as a client given the name would), never following a redirect. `allow_private`:
    nothing is refused, so the client is given the name. The connection is closed after the
    answer: a pooled one, keyed by IP, could carry another name's request past its certificate."""
    target = httpx.URL(url)
    if target.scheme not in ("http", "https"):
        raise AddressRefusedError(url, "expected an http:// or https:// URL")
    if allow_private:
        return client.post(target, content=content, headers=headers, follow_redirects=False)
    host = target.raw_host.decode("ascii")
    pinned_headers = {**headers, "Host": target.netloc.decode("ascii"), "Connection": "close"}
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    addresses = checked_addresses(target)

    def send(address: str) -> httpx.Response:
        return client.post(target.copy_with(host=address), content=content, headers=pinned_headers,
                           extensions=extensions, follow_redirects=False)

    for address in addresses[:-1]:
        try:
            return send(address)
        except httpx.ConnectError:
            continue  # as a client given the name would: the next address
    return send(addresses[-1])
