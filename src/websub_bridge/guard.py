"""The outbound guard: the only place that decides whether the bridge may
reach an address.

Every URL the bridge fetches or posts to comes from someone else (a topic a
user asked to follow, the hub a publisher advertises, a callback a WebSub
subscriber gives, a ``Location`` header): left unchecked, the bridge would
be a proxy into the operator's own network (server-side request forgery).
So three layers, each in this module:

* :func:`check_url` refuses what is not a plain ``http``/``https`` URL with a
  host (no userinfo, no control characters, a valid port);
* :class:`AddressPolicy` says, as a pure function, whether one IP address may
  be reached: only globally routable unicast addresses, unless the operator
  allow-lists a network (``--websub-allow-network CIDR``);
* :class:`GuardedEndpointFactory` is what the outbound ``Agent`` connects
  through: it resolves the host itself, checks *every* address the resolver
  answers (one private address among public ones refuses the lot, so a DNS
  answer cannot smuggle one in), and connects to the checked address, with
  no second resolution (DNS rebinding cannot swap the address between check
  and connect). TLS still verifies the certificate against the original
  host name, which is also the SNI.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Sequence
from typing import Any, Union

import attrs
import idna
from twisted.internet import defer
from twisted.internet.address import IPv4Address as TwistedIPv4Address
from twisted.internet.address import IPv6Address as TwistedIPv6Address
from twisted.internet.error import DNSLookupError
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

__all__ = [
    "AddressPolicy",
    "GuardError",
    "GuardedEndpointFactory",
    "IPAddress",
    "IPNetwork",
    "check_url",
    "numeric_host",
    "parse_network",
]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class GuardError(Exception):
    """An outbound request the guard refuses.

    The message names the URL part or the address that was refused and why;
    it holds no secret, so it may be shown to an operator or an API client.
    """


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# IANA IPv4 Special-Purpose Address Registry (RFC 6890 and successors),
# plus multicast and the old class E: nothing here is a public web server.
_REFUSED_V4 = _nets(
    "0.0.0.0/8",  # "this network", 0.0.0.0 reaches the local host on Linux
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # carrier-grade NAT (shared address space)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (cloud metadata services live here)
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation TEST-NET-1
    "192.88.99.0/24",  # deprecated 6to4 relay anycast
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation TEST-NET-2
    "203.0.113.0/24",  # documentation TEST-NET-3
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
)

# Only global unicast (2000::/3) is reachable for IPv6; these parts of it
# are still special-use. Addresses that embed an IPv4 address (mapped,
# compatible, NAT64, 6to4, Teredo) are judged by what they embed.
_GLOBAL_V6 = ipaddress.IPv6Network("2000::/3")
_REFUSED_V6 = _nets(
    "2001::/23",  # IETF protocol assignments (Teredo is handled apart)
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation (RFC 9637)
)
_TEREDO = ipaddress.IPv6Network("2001::/32")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _network_tuple(networks: Sequence[IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(networks)


@attrs.frozen
class AddressPolicy:
    """Which IP addresses the bridge may connect to.

    Refused: every special-use range (private, loopback, link-local,
    multicast, unspecified, reserved, CGN, benchmarking, documentation,
    broadcast, ULA, site-local, discard-only, ...); IPv4-mapped and
    IPv4-compatible IPv6 addresses are judged as the IPv4 address they hold,
    and NAT64, 6to4 and Teredo addresses by the IPv4 addresses they embed.
    An address inside one of ``allowed_networks`` is always permitted: that
    is how an operator lets the bridge reach a hub on its own network (or
    loopback, in tests).
    """

    allowed_networks: tuple[IPNetwork, ...] = attrs.field(
        default=(), converter=_network_tuple
    )

    def permits(self, address: IPAddress) -> bool:
        """Whether ``address`` may be connected to (a pure function)."""
        if isinstance(address, ipaddress.IPv6Address):
            if address.scope_id is not None:
                # A zone index only means something on a link: link-local.
                return self._allowed(address)
            mapped = address.ipv4_mapped
            if mapped is not None:
                return self.permits(mapped)
        if self._allowed(address):
            return True
        if isinstance(address, ipaddress.IPv4Address):
            return not any(address in net for net in _REFUSED_V4)
        return self._permits_v6(address)

    def _allowed(self, address: IPAddress) -> bool:
        return any(
            address.version == net.version and address in net
            for net in self.allowed_networks
        )

    def _permits_v6(self, address: ipaddress.IPv6Address) -> bool:
        packed = int(address)
        if address in _COMPATIBLE:
            if packed <= 1:  # :: and ::1
                return False
            return self.permits(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
        if address in _NAT64:
            return self.permits(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
        if address in _SIX_TO_FOUR:
            embedded = address.sixtofour
            return embedded is not None and self.permits(embedded)
        if address in _TEREDO:
            teredo = address.teredo
            return teredo is not None and all(self.permits(v4) for v4 in teredo)
        if address not in _GLOBAL_V6:
            return False
        return not any(address in net for net in _REFUSED_V6)


def parse_network(text: str) -> IPNetwork:
    """Parse an operator's ``--websub-allow-network`` value (``CIDR``).

    A bare address means that one address. Host bits set (``10.0.0.1/8``)
    are refused rather than silently widened: the operator meant something
    else.
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise GuardError(f"not a network in CIDR notation: {text!r} ({e})") from None


# Characters that never belong in a URL we send: whitespace and controls
# (request smuggling, header injection) and a backslash (parsers disagree).
_FORBIDDEN_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}\.?$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_url(url: str) -> urllib.parse.SplitResult:
    """Check that ``url`` is one the bridge may send a request to.

    Refused with :class:`GuardError`: a scheme other than ``http``/``https``,
    no host, userinfo (``user:pass@``: a classic way to disguise the real
    host, and a credential we would leak), an invalid or zero port, a host
    that is not a DNS name or an IP literal, whitespace or control
    characters anywhere. The address itself is checked later, when it is
    resolved (:class:`GuardedEndpointFactory`).

    Returns the URL normalised for sending: scheme and host in lower case,
    an internationalised host in its IDNA (``xn--``) form, non-ASCII
    characters of path and query percent-encoded, the fragment dropped.
    """
    if not isinstance(url, str):
        raise GuardError("URL must be text")
    if _FORBIDDEN_URL_CHARS.search(url):
        raise GuardError("URL contains whitespace, control characters or a backslash")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:
        raise GuardError(f"malformed URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise GuardError(f"only http and https URLs are allowed, not {scheme or 'none'!r}")
    if "@" in parts.netloc:
        raise GuardError("URLs with userinfo (user@host) are not allowed")
    raw_host = parts.hostname
    if not raw_host:
        raise GuardError("URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise GuardError("URL has an invalid port") from None
    if port == 0:
        raise GuardError("URL has an invalid port")
    host = _normalise_host(raw_host, bracketed=parts.netloc.startswith("["))
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    path = urllib.parse.quote(parts.path, safe="/%!$&'()*+,;=:@~-._")
    query = urllib.parse.quote(parts.query, safe="/?%!$&'()*+,;=:@~-._[]")
    return urllib.parse.SplitResult(scheme, netloc, path or "/", query, "")


def _normalise_host(host: str, *, bracketed: bool) -> str:
    """The host of a URL in the form we send and resolve, or GuardError."""
    if bracketed:
        try:
            v6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise GuardError("URL has a malformed IPv6 literal") from None
        if v6.scope_id is not None:
            raise GuardError("IPv6 zone identifiers are not allowed in URLs")
        return str(v6)
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise GuardError("URL host is not a valid internationalised domain name") from None
    host = host.lower()
    if not _DNS_NAME.match(host):
        raise GuardError("URL host is not a valid host name")
    return host


def numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host spelling stands for, or None for a name.

    ``getaddrinfo`` (through ``inet_aton``) reads ``2130706433``,
    ``0x7f.1``, ``0177.0.0.1`` and ``127.1`` as 127.0.0.1: the endpoint
    takes these as the address they spell rather than resolving them, so
    the policy always judges the address actually connected to. IPv6
    literals are accepted in their usual forms.
    """
    if ":" in host:
        try:
            v6 = ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            return None
        return v6.ipv4_mapped or v6
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _inet_aton_part(part)
        if value is None:
            return None
        values.append(value)
    *leading, last = values
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (5 - len(values))):
        return None
    number = 0
    for v in leading:
        number = number << 8 | v
    number = number << (8 * (5 - len(values))) | last
    return ipaddress.IPv4Address(number)


def _inet_aton_part(part: str) -> int | None:
    """One part of an ``inet_aton`` address: decimal, 0-octal or 0x-hex."""
    if not part.isascii():
        return None
    if part[:2].lower() == "0x":
        digits, base = part[2:], 16
        allowed = "0123456789abcdefABCDEF"
    elif len(part) > 1 and part[0] == "0":
        digits, base, allowed = part[1:], 8, "01234567"
    else:
        digits, base, allowed = part, 10, "0123456789"
    if not digits or any(c not in allowed for c in digits):
        return None
    return int(digits, base)


@implementer(IResolutionReceiver)
class _Collector:
    """Gathers every address one resolution answers, then fires a Deferred."""

    def __init__(self) -> None:
        self.addresses: list[IAddress] = []
        self.done: defer.Deferred[list[IAddress]] = defer.Deferred()

    def resolutionBegan(self, resolutionInProgress: IHostResolution) -> None:
        pass

    def addressResolved(self, address: IAddress) -> None:
        self.addresses.append(address)

    def resolutionComplete(self) -> None:
        if not self.done.called:
            self.done.callback(self.addresses)


def _ip_of(address: IAddress) -> IPAddress | None:
    if isinstance(address, (TwistedIPv4Address, TwistedIPv6Address)):
        try:
            return ipaddress.ip_address(address.host)
        except ValueError:
            return None
    return None


@implementer(IStreamClientEndpoint)
@attrs.define
class _GuardedEndpoint:
    """Resolve, check every address, connect to a checked one (pinned)."""

    _reactor: Any
    _resolver: IHostnameResolver
    _policy: AddressPolicy
    _tls: IPolicyForHTTPS | None
    _host: str
    _port: int
    _connect_timeout: float
    log = Logger()

    def connect(self, protocolFactory: IProtocolFactory) -> defer.Deferred[IProtocol]:
        return defer.Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _connect(self, factory: IProtocolFactory) -> IProtocol:
        addresses = await self._resolve()
        for address in addresses:
            if not self._policy.permits(address):
                self.log.warn(
                    "websub guard refused {host} -> {address}",
                    host=self._host,
                    address=str(address),
                )
                raise GuardError(
                    f"{self._host} resolves to {address}, an address the bridge may not reach"
                )
        last: BaseException | None = None
        for address in addresses:
            endpoint = self._endpoint_for(address)
            try:
                return await endpoint.connect(factory)
            except defer.CancelledError:
                raise
            except Exception as e:  # try the next checked address
                last = e
        assert last is not None
        raise last

    async def _resolve(self) -> list[IPAddress]:
        literal = numeric_host(self._host)
        if literal is not None:
            return [literal]
        collector = _Collector()
        self._resolver.resolveHostName(collector, self._host, self._port)
        resolved = await collector.done
        addresses: list[IPAddress] = []
        for raw in resolved:
            ip = _ip_of(raw)
            if ip is None:
                raise GuardError(f"{self._host} resolved to an unusable address")
            ip = (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise DNSLookupError(f"no address for {self._host}")
        return addresses

    def _endpoint_for(self, address: IPAddress) -> IStreamClientEndpoint:
        tcp: IStreamClientEndpoint
        if isinstance(address, ipaddress.IPv4Address):
            tcp = TCP4ClientEndpoint(
                self._reactor, str(address), self._port, timeout=self._connect_timeout
            )
        else:
            tcp = TCP6ClientEndpoint(
                self._reactor, str(address), self._port, timeout=self._connect_timeout
            )
        if self._tls is None:
            return tcp
        creator = self._tls.creatorForNetloc(self._host.encode("ascii"), self._port)
        # The TLS layer batches small writes until the next reactor turn: on
        # the injected reactor, not the global one.
        return wrapClientTLS(creator, tcp, clock=self._reactor)


@implementer(IAgentEndpointFactory)
class GuardedEndpointFactory:
    """The endpoint factory of the bridge's one outbound ``Agent``.

    Use with ``Agent.usingEndpointFactory(reactor, GuardedEndpointFactory(
    reactor, policy))``. ``resolver`` defaults to ``reactor.nameResolver``;
    ``tls_policy`` to :class:`BrowserLikePolicyForHTTPS` (the system trust
    store, ``service_identity`` checking the host name).
    """

    def __init__(
        self,
        reactor: Any,
        policy: AddressPolicy,
        resolver: IHostnameResolver | None = None,
        *,
        tls_policy: IPolicyForHTTPS | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._reactor = reactor
        self._policy = policy
        self._resolver = resolver if resolver is not None else reactor.nameResolver
        self._tls_policy = tls_policy if tls_policy is not None else BrowserLikePolicyForHTTPS()
        self._connect_timeout = connect_timeout

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """An endpoint that checks before it connects (errors surface there)."""
        scheme = uri.scheme.decode("ascii", "replace").lower()
        host = uri.host.decode("ascii", "replace").lower()
        if scheme not in _DEFAULT_PORTS:
            raise SchemeNotSupported(f"unsupported scheme: {scheme}")
        return _GuardedEndpoint(
            self._reactor,
            self._resolver,
            self._policy,
            self._tls_policy if scheme == "https" else None,
            host,
            uri.port,
            self._connect_timeout,
        )
