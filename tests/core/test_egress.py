"""The egress policy (core/egress.py): decisions without connecting, and real
listeners on loopback that prove a refused connection never reached them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from printcloud.core import egress
from printcloud.core.egress import EgressPolicy, EgressRefused
from printcloud.core.settings import Settings
from tests.helpers.listeners import Listener

STRICT = EgressPolicy()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.1.2.3", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - a value under test, nothing binds
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "100.64.0.0/10"),
        ("100.127.255.254", "100.64.0.0/10"),
        ("192.0.2.1", "private"),  # TEST-NET-1
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "carries 127.0.0.1, a loopback"),
        ("::ffff:10.0.0.1", "carries 10.0.0.1, a private"),
        ("2002:7f00:1::", "carries 127.0.0.1"),  # 6to4 of loopback
        ("2002:a9fe:a9fe::1", "carries 169.254.169.254"),  # 6to4 of the metadata service
        ("64:ff9b::7f00:1", "carries 127.0.0.1"),  # NAT64 of loopback
        ("64:ff9b::a00:1", "carries 10.0.0.1"),
        ("64:ff9b::6440:1", "carries 100.64.0.1"),
    ],
)
def test_refuses_everything_but_global_unicast(address: str, reason: str) -> None:
    refusal = STRICT.refusal(address)
    assert refusal is not None and reason in refusal, refusal


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
    ],
)
def test_global_unicast_passes(address: str) -> None:
    assert STRICT.refusal(address) is None


def test_allow_list_of_networks_and_names() -> None:
    policy = EgressPolicy.from_entries(["10.20.0.0/16", "printer.corp.example.", "::1"])
    assert policy.allows("10.20.3.4")
    assert policy.allows("::ffff:10.20.3.4")
    assert not policy.allows("10.21.0.1")
    assert policy.allows("::1")
    assert not policy.allows("127.0.0.1")
    # A listed name may resolve anywhere; any other name may not reach a private address.
    assert policy.decide("Printer.Corp.Example", ["10.99.0.1"]) == ["10.99.0.1"]
    with pytest.raises(EgressRefused, match=r"resolves to 10\.99\.0\.1 is a private address"):
        policy.decide("other.example", ["10.99.0.1"])
    # One refused answer refuses the name, even beside a public one.
    with pytest.raises(EgressRefused):
        STRICT.decide("mixed.example", ["8.8.8.8", "127.0.0.1"])


def test_settings_read_the_allow_list_and_refuse_a_bad_entry() -> None:
    settings = Settings(egress_allow="127.0.0.0/8, ::1,printer.corp")  # type: ignore[arg-type]
    assert settings.egress_policy.allows("127.0.0.5")
    assert settings.egress_policy.name_listed("PRINTER.corp")
    assert settings.as_environment()["PRINTCLOUD_EGRESS_ALLOW"] == "127.0.0.0/8,::1,printer.corp"
    assert Settings().egress_policy == STRICT
    with pytest.raises(ValueError, match="neither a CIDR nor a host name"):
        Settings(egress_allow="not a host!")  # type: ignore[arg-type]


def test_check_url_names_the_field_and_the_reason() -> None:
    with pytest.raises(EgressRefused) as caught:
        STRICT.check_url("http://127.0.0.1:9/push", field="push_url")
    assert caught.value.field == "push_url"
    assert "127.0.0.1 is a loopback address" in caught.value.description
    with pytest.raises(EgressRefused, match=r"carries 127\.0\.0\.1"):
        STRICT.check_url("http://[::ffff:127.0.0.1]/", field="url")
    with pytest.raises(EgressRefused, match="localhost"):
        STRICT.check_url("http://localhost:9/", field="url")
    for bad in ("ftp://example.com/", "http:///x", "example.com", "http://u:p@example.com/"):
        with pytest.raises(Exception) as other:
            STRICT.check_url(bad, field="url")
        assert getattr(other.value, "field", None) == "url"
    # Global literals pass without resolving anything.
    STRICT.check_url("https://8.8.8.8/x", field="url")


# -- real connections on loopback ---------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener("127.0.0.1")
    yield server
    server.close()


def test_guarded_clients_never_reach_a_refused_listener(listener: Listener) -> None:
    url = f"http://127.0.0.1:{listener.port}/"
    with egress.client(STRICT) as http, pytest.raises(EgressRefused, match="loopback"):
        http.get(url)
    with egress.client(STRICT) as http, pytest.raises(EgressRefused, match="localhost"):
        http.get(f"http://localhost:{listener.port}/")

    async def refused() -> None:
        async with egress.async_client(STRICT) as http:
            await http.get(url)

    with pytest.raises(EgressRefused):
        asyncio.run(refused())
    assert listener.accepted == 0


def test_guarded_clients_reach_an_allowed_listener(listener: Listener) -> None:
    allowed = EgressPolicy.loopback()
    with egress.client(allowed) as http:
        assert http.get(f"http://127.0.0.1:{listener.port}/").text == "ok"

    async def fetch() -> str:
        async with egress.async_client(allowed) as http:
            return (await http.get(f"http://127.0.0.1:{listener.port}/")).text

    assert asyncio.run(fetch()) == "ok"
    assert listener.accepted == 2


def test_a_rebound_name_is_checked_again_at_connect_time(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name answered a public address when the URL was saved and answers loopback
    when the platform connects: the connection is refused, and nothing reaches the
    listener. (The public answer is never connected to: no packet leaves loopback.)"""
    answers = iter(["203.0.113.7", "93.184.216.34", "127.0.0.1", "127.0.0.1"])

    def rebinding(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(egress.socket, "getaddrinfo", rebinding)
    url = f"http://printer.tenant.example:{listener.port}/push"
    with pytest.raises(EgressRefused):  # 203.0.113.7 is TEST-NET-3: refused at save time
        STRICT.check_url(url, field="push_url")
    STRICT.check_url(url, field="push_url")  # a public answer: saved
    with egress.client(STRICT) as http, pytest.raises(EgressRefused, match="loopback"):
        http.get(url)
    assert listener.accepted == 0


def test_no_unix_sockets_and_no_environment_proxies(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy from the environment would connect on the platform's behalf, unchecked.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.port}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{listener.port}")
    with egress.client(STRICT) as http, pytest.raises(EgressRefused, match="loopback"):
        http.get(f"http://127.0.0.1:{listener.port + 1 if listener.port < 65535 else 1}/")
    assert listener.accepted == 0
