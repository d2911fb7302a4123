"""A scripted DNS and a small fake internet for tests of requests to strangers' URLs.

`FakeNetwork` replaces `socket.getaddrinfo` (names answer what the test scripted, in turn: a
rebinding name answers one address and then another) and `socket.create_connection` (a public
address reaches the loopback `Listener` it is routed to, any other public one is refused), so
nothing reaches the real DNS or the internet, and every lookup of a name is counted.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

_PASS_THROUGH = {"localhost"}
"""Names answered by the system (from its hosts file): the test's own local services use them."""


class _Handler(BaseHTTPRequestHandler):
    server: Listener

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, headers = self.server.answers.pop(0) if self.server.answers else (200, {})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: Any) -> None:
        pass


class Listener(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 (https with `tls`) that keeps every request and answers the
    (status, headers) it is given, in turn, then 200."""

    daemon_threads = True

    def __init__(self, *answers: tuple[int, dict[str, str]], tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self.server_names: list[str | None] = []
        if tls is not None:
            tls.sni_callback = lambda sock, name, context: self.server_names.append(name)
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.port = int(self.server_address[1])
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class FakeNetwork:
    """Installed on `monkeypatch` for the test: see the module's docstring."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._getaddrinfo, self._connect = socket.getaddrinfo, socket.create_connection
        self._answers: dict[str, list[list[str]]] = {}
        self._routes: dict[tuple[str, int], int] = {}
        self.asked: list[str] = []
        """Every name looked up, in order."""
        self.connected: list[tuple[str, int]] = []
        """Every address a connection was opened to (after resolution), in order."""
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", self.create_connection)

    def answer(self, name: str, *answers: list[str]) -> None:
        """From now on, `name`'s lookups answer these address lists in turn, the last one ever after."""
        self._answers[name] = [list(a) for a in answers]

    def route(self, address: str, port: int, listener: Listener) -> None:
        """Connections to the public `address`:`port` reach `listener`."""
        self._routes[(str(ipaddress.ip_address(address)), port)] = listener.port

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,  # noqa: A002
                    flags: int = 0) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or name in _PASS_THROUGH:
            return self._getaddrinfo(host, port, family, type, proto, flags)
        try:
            return self._getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            pass  # a name, not an address
        self.asked.append(name)
        scripted = self._answers.get(name)
        if not scripted:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        addresses = scripted.pop(0) if len(scripted) > 1 else scripted[0]
        return [info for address in addresses
                for info in self._getaddrinfo(address, port, family, type, proto, socket.AI_NUMERICHOST)]

    def create_connection(self, address: tuple[Any, ...], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address[0], int(address[1])
        last: OSError | None = None
        for info in self.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            resolved = str(ipaddress.ip_address(info[4][0]))
            self.connected.append((resolved, port))
            try:
                if (resolved, port) in self._routes:
                    return self._connect(("127.0.0.1", self._routes[(resolved, port)]), *args, **kwargs)
                if ipaddress.ip_address(resolved).is_global:
                    raise ConnectionRefusedError(errno.ECONNREFUSED, f"{resolved} is not routed in this test")
                return self._connect((resolved, port), *args, **kwargs)
            except OSError as error:
                last = error
        raise last or OSError(f"{host} has no address")


def tls_for(name: str, directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for `name`, and a client context that
    trusts it (and checks host names, as a default one does)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    """The scripted network of one test."""
    return FakeNetwork(monkeypatch)


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    """Starts loopback listeners (`Listener`'s arguments) and closes them after the test."""
    made: list[Listener] = []

    def start(*answers: tuple[int, dict[str, str]], **kwargs: Any) -> Listener:
        made.append(Listener(*answers, **kwargs))
        return made[-1]

    yield start
    for listener in made:
        listener.close()
