"""Pinned requests: a name is resolved once, every address it gives is checked (loopback,
private, link-local, multicast, reserved, and IPv6 forms that embed such an IPv4), and the
request goes to a checked address with the name kept for `Host`, SNI and the certificate."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from tests.utils.fake_network import tls_for
from tierflow import pinned_http

PUBLIC, OTHER_PUBLIC = "1.2.3.4", "5.6.7.8"

REFUSED = [
    ("127.0.0.1", "a loopback address"), ("10.1.2.3", "a private address"),
    ("169.254.169.254", "a link-local address"), ("0.0.0.0", "an unspecified address"),
    ("224.0.0.1", "a multicast address"), ("240.0.0.1", "a reserved address"),
    ("100.64.0.1", "a non-public address"), ("192.0.0.8", "a non-public address"),
    ("::1", "a loopback address"), ("::", "an unspecified address"), ("fe80::1", "a link-local address"),
    ("fc00::1", "a private address"), ("ff0e::1", "a multicast address"), ("fec0::1", "a non-public address"),
    ("::7f00:1", "a reserved address"), ("64:ff9b:1::a00:1", "a reserved address"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a private address"),  # Teredo
    ("::ffff:127.0.0.1", "an address embedding 127.0.0.1, a loopback address"),
    ("::ffff:10.0.0.1", "an address embedding 10.0.0.1, a private address"),
    ("64:ff9b::7f00:1", "an address embedding 127.0.0.1, a loopback address"),  # NAT64
    ("64:ff9b::a9fe:a9fe", "an address embedding 169.254.169.254, a link-local address"),
    ("2002:7f00:1::1", "an address embedding 127.0.0.1, a loopback address"),  # 6to4
    ("2002:a00:1::1", "an address embedding 10.0.0.1, a private address"),
]


def _post(client: httpx.Client, url: str) -> httpx.Response:
    return pinned_http.post(client, url, content=b"{}", headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_each_address_form_that_reaches_a_private_network_is_refused(address, reason, network):
    assert pinned_http.refusal(ipaddress.ip_address(address)) == reason
    network.answer("hook.test", [address])
    with httpx.Client() as client, pytest.raises(pinned_http.AddressRefusedError) as refused:
        _post(client, "http://hook.test:8080/hook")
    assert refused.value.message == (
        f"url: its host hook.test resolves to {ipaddress.ip_address(address)}, {reason}; not contacted")
    assert network.connected == []


@pytest.mark.parametrize("address", [PUBLIC, "2606:4700::1111", "::ffff:1.2.3.4", "64:ff9b::102:304",
                                     "2002:102:304::1"])
def test_public_addresses_and_forms_embedding_one_are_accepted(address):
    assert pinned_http.refusal(ipaddress.ip_address(address)) is None


def test_every_address_a_name_gives_is_checked(network, listen):
    receiver = listen()
    network.answer("hook.test", [PUBLIC, "127.0.0.1"])
    network.route(PUBLIC, receiver.port, receiver)
    with httpx.Client() as client, pytest.raises(pinned_http.AddressRefusedError, match="127.0.0.1, a loopback"):
        _post(client, f"http://hook.test:{receiver.port}/hook")
    assert network.connected == [] and receiver.requests == []


def test_the_checked_address_is_the_one_connected_to_and_the_name_is_the_host(network, listen):
    receiver, internal = listen(), listen()
    network.answer("hook.test", [PUBLIC], ["127.0.0.1"])  # rebinding: public once, then loopback
    network.route(PUBLIC, internal.port, receiver)
    with httpx.Client() as client:
        assert _post(client, f"http://hook.test:{internal.port}/hook").status_code == 200
    assert network.asked == ["hook.test"] and network.connected == [(PUBLIC, internal.port)]
    assert internal.requests == [] and len(receiver.requests) == 1
    headers = receiver.requests[0]["headers"]
    assert headers["Host"] == f"hook.test:{internal.port}" and headers["Connection"] == "close"


def test_https_keeps_the_name_for_sni_and_the_certificate(network, listen, tmp_path):
    server_tls, client_tls = tls_for("hook.test", tmp_path)
    receiver = listen(tls=server_tls)
    network.answer("hook.test", [PUBLIC])
    network.route(PUBLIC, receiver.port, receiver)
    with httpx.Client(verify=client_tls) as client:
        assert _post(client, f"https://hook.test:{receiver.port}/hook").status_code == 200
    assert receiver.server_names == ["hook.test"] and receiver.requests[0]["headers"]["Host"] == (
        f"hook.test:{receiver.port}")
    network.answer("other.test", [PUBLIC])  # same address, another name: its certificate is not the receiver's
    with httpx.Client(verify=client_tls) as client, pytest.raises(httpx.ConnectError, match="certificate"):
        _post(client, f"https://other.test:{receiver.port}/hook")
    assert len(receiver.requests) == 1


def test_a_redirect_is_not_followed_even_by_a_client_that_would(network, listen):
    internal = listen()
    receiver = listen((302, {"Location": f"http://127.0.0.1:{internal.port}/stolen"}))
    network.answer("hook.test", [PUBLIC])
    network.route(PUBLIC, receiver.port, receiver)
    with httpx.Client(follow_redirects=True) as client:
        assert _post(client, f"http://hook.test:{receiver.port}/hook").status_code == 302
    assert internal.requests == [] and len(receiver.requests) == 1


def test_an_address_that_does_not_connect_gives_way_to_the_next_checked_one(network, listen):
    receiver = listen()
    network.answer("hook.test", [OTHER_PUBLIC, PUBLIC])
    network.route(PUBLIC, receiver.port, receiver)  # OTHER_PUBLIC refuses connections
    with httpx.Client() as client:
        assert _post(client, f"http://hook.test:{receiver.port}/hook").status_code == 200
    assert network.asked == ["hook.test"]
    assert network.connected == [(OTHER_PUBLIC, receiver.port), (PUBLIC, receiver.port)]


def test_a_name_that_does_not_resolve_is_refused(network):
    with httpx.Client() as client, pytest.raises(pinned_http.AddressRefusedError, match="does not resolve"):
        _post(client, "http://nowhere.test/hook")


@pytest.mark.parametrize("address", ["224.0.0.1", "2002:7f00:1::1", "64:ff9b::7f00:1", "192.0.0.8"])
def test_registration_refuses_what_delivery_refuses(catalog, monkeypatch, address):
    from tierflow.errors import BadRequestError
    from tierflow.webhooks import check_url

    monkeypatch.setattr(pinned_http, "resolve", lambda host, port: [address])
    with pytest.raises(BadRequestError, match=f"its host resolves to {address}, "):
        check_url("https://hooks.example.com/in")
