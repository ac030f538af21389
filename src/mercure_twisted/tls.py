"""HTTPS listeners with HTTP/2 (ALPN) and certificates reloaded on SIGHUP.

Twisted's own ``ssl:`` endpoint offers no ALPN, so browsers would speak
HTTP/1.1 and get at most six ``EventSource`` streams per origin.  An
``ssl:`` description in ``listen`` is therefore parsed here, with the same
parameters as Twisted's (``port``, ``interface``, ``backlog``,
``privateKey``, ``certKey``, ``extraCertChain``, ``dhParameters``,
``sslmethod``), and served with ``h2`` and ``http/1.1`` offered through ALPN
(``h2`` only when the ``h2`` package is installed, which ``twisted[http2]``
brings).

``ReloadableTLS`` hands every new TLS connection the SSL context of the
certificate last loaded.  On SIGHUP the files are read again: connections
already open keep the context they were made with (nothing is dropped),
new handshakes get the new certificate.  A reload that fails (a missing
file, a key that does not match) is logged and the previous certificate
stays in use.
"""

from __future__ import annotations

import re
import signal
from typing import Any, Iterable, Sequence

from OpenSSL import SSL
from twisted.application.internet import StreamServerEndpointService
from twisted.application import strports
from twisted.application.service import IServiceCollection, Service
from twisted.internet import ssl
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IProtocolFactory
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.filepath import FilePath
from twisted.web import http
from zope.interface import implementer

from .config import ConfigError

__all__ = ["CertificateReloader", "ReloadableTLS", "listen", "parse_ssl"]

_SSL_PARAMETERS = (
    "port", "interface", "backlog", "privateKey", "certKey",
    "extraCertChain", "dhParameters", "sslmethod",
)

_CERTIFICATE = re.compile(
    r"(-----BEGIN CERTIFICATE-----\n.+?\n-----END CERTIFICATE-----)", re.DOTALL
)


def _segments(description: str) -> list[str]:
    # One grammar for endpoint strings: tap's (backslash escapes, ':' splits).
    from .tap import _segments as segments

    return segments(description)


def parse_ssl(description: str) -> dict[str, str] | None:
    """The parameters of an ``ssl:`` description; None for any other type.

    Raises ``ConfigError`` for a parameter Twisted's ``ssl:`` would not take.
    """
    segments = _segments(description)
    if segments[0] != "ssl":
        return None
    params: dict[str, str] = {}
    positional = ["port", "privateKey", "certKey"]  # Twisted's positional order
    for segment in segments[1:]:
        name, sep, value = segment.partition("=")
        if not sep:
            if not positional:
                raise ConfigError(f"listen {description!r}: unexpected {segment!r}")
            params[positional.pop(0)] = segment
            continue
        if name not in _SSL_PARAMETERS:
            raise ConfigError(
                f"listen {description!r}: unknown ssl parameter {name!r} "
                f"(known: {', '.join(_SSL_PARAMETERS)})"
            )
        params[name] = value
        if name in positional:
            positional.remove(name)
    if "port" not in params or not params["port"].isdigit():
        raise ConfigError(f"listen {description!r}: ssl needs a port number")
    params.setdefault("privateKey", "server.pem")
    params.setdefault("certKey", params["privateKey"])
    return params


def alpn_protocols() -> list[bytes]:
    """What ALPN offers: h2 first when twisted.web can speak it."""
    return [b"h2", b"http/1.1"] if http.H2_ENABLED else [b"http/1.1"]


@implementer(IOpenSSLServerConnectionCreator)
class ReloadableTLS:
    """The TLS settings of one listener, whose certificate can be reloaded."""

    log = Logger()

    def __init__(self, params: dict[str, str]) -> None:
        self._params = params
        self._options = self._load()

    @property
    def certificate_path(self) -> str:
        return self._params["certKey"]

    def _load(self) -> ssl.CertificateOptions:
        p = self._params
        try:
            cert_pem = FilePath(p["certKey"]).getContent()
            key_pem = FilePath(p["privateKey"]).getContent()
            private = ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
            chain = None
            if "extraCertChain" in p:
                text = FilePath(p["extraCertChain"]).getContent().decode("ascii")
                chain = [ssl.Certificate.loadPEM(c).original for c in _CERTIFICATE.findall(text)]
                if not chain:
                    raise ValueError(f"{p['extraCertChain']} holds no PEM certificate")
            kw: dict[str, Any] = {}
            if "sslmethod" in p:
                kw["method"] = getattr(SSL, p["sslmethod"])
            if "dhParameters" in p:
                kw["dhParameters"] = ssl.DiffieHellmanParameters.fromFile(
                    FilePath(p["dhParameters"])
                )
            options = ssl.CertificateOptions(
                privateKey=private.privateKey.original,
                certificate=private.original,
                extraCertChain=chain,
                acceptableProtocols=alpn_protocols(),
                **kw,
            )
            options.getContext()  # fail now, not at the first handshake
        except Exception as e:
            raise ConfigError(
                f"cannot load the TLS certificate {p['certKey']} / key {p['privateKey']}: {e}"
            ) from None
        return options

    def reload(self) -> bool:
        """Read the files again; True when the new certificate is in use."""
        try:
            options = self._load()
        except ConfigError as e:
            self.log.error("certificate reload failed, keeping the previous one: {error}",
                           error=str(e))
            return False
        self._options = options
        self.log.info("certificate {path} reloaded: new connections use it",
                      path=self.certificate_path)
        return True

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self._options.getContext(), None)


class _TLSServerProtocol(TLSMemoryBIOProtocol):
    """TLS over a TCP connection that says so.

    ``TLSMemoryBIOProtocol`` forwards unknown attributes to the TCP
    transport under it, so ``transport.TLS`` would read the plain socket's
    ``False`` and ``transport.socket`` the raw socket: code that writes
    straight to the socket when ``not transport.TLS`` (``web._sse``)
    would then bypass the encryption.  Here ``TLS`` is True, as on a
    ``startTLS`` connection.
    """

    TLS = True


class _TLSServerFactory(TLSMemoryBIOFactory):
    protocol = _TLSServerProtocol


class CertificateReloader(Service):
    """Reloads every ``ReloadableTLS`` on SIGHUP (the usual signal for
    "reread your certificates", sent by certbot/acme.sh deploy hooks)."""

    log = Logger()

    def __init__(self, reactor: Any, tls: Sequence[ReloadableTLS]) -> None:
        self._reactor = reactor
        self._tls = tuple(tls)
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        if hasattr(signal, "SIGHUP"):
            self._previous = signal.signal(signal.SIGHUP, self._signalled)

    def stopService(self) -> None:  # type: ignore[override]
        super().stopService()
        if hasattr(signal, "SIGHUP") and self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None

    def _signalled(self, signum: int, frame: Any) -> None:
        # A signal handler may run between any two bytecodes: do the work
        # in the reactor's own turn.
        self._reactor.callFromThread(self.reload)

    def reload(self) -> int:
        """Reload every certificate; how many now use the new files."""
        self.log.info("SIGHUP: reloading {count} TLS certificate(s)", count=len(self._tls))
        return sum(1 for tls in self._tls if tls.reload())


def listen(
    top: IServiceCollection,
    listeners: Iterable[tuple[str, IProtocolFactory]],
    reactor: Any,
) -> list[ReloadableTLS]:
    """Add one listening service per (endpoint description, factory) to ``top``.

    ``ssl:`` descriptions get ALPN and a reloadable certificate (and one
    ``CertificateReloader`` for all of them); the others go to
    ``strports.service`` as they are.  A port already in use fails the
    start, as with ``strports``.
    """
    reloadable: list[ReloadableTLS] = []
    for description, factory in listeners:
        params = parse_ssl(description)
        if params is None:
            service = strports.service(description, factory, reactor=reactor)
        else:
            tls = ReloadableTLS(params)
            reloadable.append(tls)
            endpoint = TCP4ServerEndpoint(
                reactor, int(params["port"]),
                backlog=int(params.get("backlog", 50)),
                interface=params.get("interface", ""),
            )
            wrapped = _TLSServerFactory(tls, False, factory)
            service = StreamServerEndpointService(endpoint, wrapped)
            service._raiseSynchronously = True
        service.setServiceParent(top)
    if reloadable:
        CertificateReloader(reactor, reloadable).setServiceParent(top)
    return reloadable
