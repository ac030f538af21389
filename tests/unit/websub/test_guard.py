"""The address policy as a pure function, URL checks, numeric host spellings."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from websub_bridge.guard import (
    AddressPolicy,
    GuardError,
    check_url,
    numeric_host,
    parse_network,
)

POLICY = AddressPolicy()
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address

# Special-use ranges (IANA IPv4 and IPv6 special-purpose registries and the
# ones the brief names), each probed at its first, last and a middle address.
REFUSED_RANGES = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "233.252.0.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:2::/48",
    "2001:10::/28",
    "2001:db8::/32",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
]

PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.215.14",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.3.1",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4007:80e::200e",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
    "::8.8.8.8",
]


def _probes(cidr: str) -> list[str]:
    net = ipaddress.ip_network(cidr)
    return [str(net[0]), str(net[-1]), str(net[net.num_addresses // 2])]


@pytest.mark.parametrize(
    "address", [a for cidr in REFUSED_RANGES for a in _probes(cidr)]
)
def test_special_use_addresses_are_refused(address: str) -> None:
    assert not POLICY.permits(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_permitted(address: str) -> None:
    assert POLICY.permits(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::10.0.0.1",
        "::0.0.0.2",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
        "2001:0:7f00:1::808:808",  # Teredo, server 127.0.0.1
        "fe80::1%eth0",  # scoped
    ],
)
def test_ipv6_addresses_embedding_refused_ipv4_are_refused(address: str) -> None:
    assert not POLICY.permits(ipaddress.ip_address(address))


def test_allow_list_admits_its_networks_and_their_mapped_forms() -> None:
    policy = AddressPolicy([parse_network("10.0.0.0/8"), parse_network("::1")])
    assert policy.permits(V4("10.9.8.7"))
    assert policy.permits(V6("::ffff:10.9.8.7"))
    assert policy.permits(V6("::1"))
    assert not policy.permits(V4("127.0.0.1"))
    assert not policy.permits(V4("192.168.0.1"))
    assert policy.permits(V4("8.8.8.8"))
    # NAT64 and 6to4 forms are judged by what they embed, allow-list included.
    assert policy.permits(V6("64:ff9b::a09:807"))
    assert policy.permits(V6("2002:a09:807::"))


def test_allow_list_of_the_other_family_does_not_leak() -> None:
    policy = AddressPolicy([parse_network("::/0")])
    assert not policy.permits(V4("127.0.0.1"))
    assert policy.permits(V6("fd00::1"))


@pytest.mark.parametrize("text", ["127.0.0.0/8", " 10.0.0.0/8 ", "::1", "fd00::/8", "192.0.2.7"])
def test_parse_network(text: str) -> None:
    assert parse_network(text) == ipaddress.ip_network(text.strip())


@pytest.mark.parametrize("text", ["10.0.0.1/8", "localhost", "", "1.2.3.4/33", "::1/129"])
def test_parse_network_refuses(text: str) -> None:
    with pytest.raises(GuardError):
        parse_network(text)


# -- properties against the standard library, an independent reference -------

v4_addresses = st.integers(0, 2**32 - 1).map(V4)
v6_addresses = st.integers(0, 2**128 - 1).map(V6)


@given(v4_addresses)
@example(V4("100.64.0.1"))
def test_ipv4_refused_wherever_the_stdlib_sees_a_special_address(address: V4) -> None:
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )
    if special:
        assert not POLICY.permits(address)


@given(v4_addresses)
def test_ipv4_permitted_exactly_when_global_unicast_outside_protocol_ranges(address: V4) -> None:
    expected = (
        address.is_global
        and not address.is_multicast
        and address not in ipaddress.ip_network("192.0.0.0/24")
        and address not in ipaddress.ip_network("192.88.99.0/24")
    )
    assert POLICY.permits(address) == expected


@given(v4_addresses, st.integers(0, 2**80 - 1))
def test_ipv6_forms_of_an_ipv4_address_are_judged_as_it(address: V4, suffix: int) -> None:
    verdict = POLICY.permits(address)
    n = int(address)
    assert POLICY.permits(V6((0xFFFF << 32) | n)) == verdict  # mapped
    assert POLICY.permits(V6((0x64FF9B << 96) | n)) == verdict  # NAT64
    assert POLICY.permits(V6((0x2002 << 112) | (n << 80) | suffix)) == verdict  # 6to4
    if n > 1:
        assert POLICY.permits(V6(n)) == verdict  # IPv4-compatible


@given(v6_addresses)
def test_ipv6_refused_wherever_the_stdlib_sees_a_local_address(address: V6) -> None:
    if (
        address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_site_local
        or address.is_unspecified
        or address in ipaddress.ip_network("fc00::/7")
    ):
        assert not POLICY.permits(address)


@given(v6_addresses)
def test_ipv6_permitted_only_in_global_unicast_or_embedding_ranges(address: V6) -> None:
    embedding = any(
        address in ipaddress.ip_network(net) for net in ("::/96", "::ffff:0:0/96", "64:ff9b::/96")
    )
    if POLICY.permits(address) and not embedding:
        assert address in ipaddress.ip_network("2000::/3")


@given(v4_addresses | v6_addresses, st.lists(st.sampled_from(["10.0.0.0/8", "fd00::/8", "127.0.0.1/32"])))
def test_allow_list_only_ever_widens(address: V4 | V6, allowed: list[str]) -> None:
    policy = AddressPolicy([ipaddress.ip_network(n) for n in allowed])
    if POLICY.permits(address):
        assert policy.permits(address)
    if any(address.version == n.version and address in n for n in policy.allowed_networks):
        assert policy.permits(address)


# -- numeric host spellings ---------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "017700000001", "127.1", "127.0.1", "0x7F.0.0.0x1"],
)
def test_numeric_spellings_of_loopback(host: str) -> None:
    assert numeric_host(host) == V4("127.0.0.1")


@pytest.mark.parametrize("host", ["example.com", "127.0.0.1.example", "1.2.3.4.5", "0x", "09", "256.1.1.1", "1e3"])
def test_names_are_not_numeric(host: str) -> None:
    assert numeric_host(host) is None


def test_ipv6_literals() -> None:
    assert numeric_host("::1") == V6("::1")
    assert numeric_host("::ffff:127.0.0.1") == V4("127.0.0.1")
    assert numeric_host("[2001:db8::1]") == V6("2001:db8::1")
    assert numeric_host("not:an:address:") is None


def _inet_aton(text: str) -> V4 | None:
    try:
        return V4(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


@given(st.text("0123456789xXabcdefABCDEF.", min_size=1, max_size=24))
@example("0x7f.1")
@example("2130706433")
@example("1.2.65535")
def test_numeric_host_reads_what_inet_aton_reads(host: str) -> None:
    """glibc's inet_aton (what getaddrinfo uses) is the reference."""
    assert numeric_host(host) == _inet_aton(host)


@given(v4_addresses, st.sampled_from(["dec", "hex", "oct", "short2", "short3"]))
def test_every_spelling_of_an_address_reads_back(address: V4, style: str) -> None:
    n = int(address)
    a, b, c, d = address.packed
    spelled = {
        "dec": str(n),
        "hex": hex(n),
        "oct": "0" + oct(n)[2:] if n else "0",
        "short2": f"{a}.{n & 0xFFFFFF}",
        "short3": f"{a}.{b}.{(c << 8) | d}",
    }[style]
    assert numeric_host(spelled) == address


# -- check_url ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("http://example.com", "http://example.com/"),
        ("HTTPS://Example.COM:8443/a/b?c=d#frag", "https://example.com:8443/a/b?c=d"),
        ("https://bücher.example/ä?q=é", "https://xn--bcher-kva.example/%C3%A4?q=%C3%A9"),
        ("http://[2001:DB8::1]:8080/", "http://[2001:db8::1]:8080/"),
        ("http://127.0.0.1/", "http://127.0.0.1/"),
        ("http://a.example/p%20q", "http://a.example/p%20q"),
        # IDNA mapping turns look-alike dots and digits into plain ASCII, so
        # the address they spell is what the guard then judges.
        ("http://127\u30020\u30020\u30021/", "http://127.0.0.1/"),
        ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "http://127.0.0.1/"),
    ],
)
def test_check_url_accepts_and_normalises(url: str, normalised: str) -> None:
    assert check_url(url).geturl() == normalised


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "//example.com/",
        "/relative",
        "http:///path",
        "http://user@example.com/",
        "http://user:pass@example.com/",
        "http://example.com@evil.example/",
        "http://example.com:0/",
        "http://example.com:65536/",
        "http://example.com:port/",
        "http://exa mple.com/",
        "http://example.com/\r\nX-Injected: 1",
        "http://example.com/\x00",
        "http://example.com\\@evil.example/",
        "http://[fe80::1%25eth0]/",
        "http://[not-v6]/",
        "http://-bad-.example/",
        "http://a..b/",
        "http://" + "a" * 64 + ".example/",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(GuardError):
        check_url(url)


_url_parts = st.tuples(
    st.sampled_from(["http", "https", "HTTP", "ftp", "", "http:"]),
    st.text("ab.-_:@[]%19xXé\\ \t", max_size=20),
    st.text("/ab?#=&%é\r\n", max_size=12),
)


@given(_url_parts)
@example(("http", "[::1]:80", "/"))
@example(("http", "a@b", "/"))
def test_check_url_only_ever_raises_guard_error(parts: tuple[str, str, str]) -> None:
    scheme, netloc, path = parts
    try:
        result = check_url(f"{scheme}://{netloc}{path}")
    except GuardError:
        return
    assert result.scheme in ("http", "https")
    assert result.hostname
    assert "@" not in result.netloc
    assert result.geturl().isascii()
    assert not any(c in result.geturl() for c in " \t\r\n\\")
    # What check_url returns passes check_url unchanged.
    assert check_url(result.geturl()) == result
