"""ssl: listeners: the description grammar, ALPN, and certificate reload."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from OpenSSL import SSL

from mercure_twisted.config import ConfigError
from mercure_twisted.tls import ReloadableTLS, alpn_protocols, parse_ssl
from tests.certs import CertAuthority


def served_serial(tls: ReloadableTLS) -> int:
    """The serial of the certificate a new connection would present."""
    connection: SSL.Connection = tls.serverConnectionForTLS(None)
    certificate = connection.get_certificate()
    assert certificate is not None
    return int(certificate.get_serial_number())


def test_parse_ssl_takes_twisted_parameters() -> None:
    assert parse_ssl("tcp:3000") is None
    assert parse_ssl(r"ssl:443:privateKey=/k\:ey.pem:certKey=c.pem:backlog=4096") == {
        "port": "443", "privateKey": "/k:ey.pem", "certKey": "c.pem", "backlog": "4096",
    }
    assert parse_ssl("ssl:8443:privateKey=both.pem")["certKey"] == "both.pem"  # type: ignore[index]
    assert parse_ssl("ssl:port=8443:interface=127.0.0.1")["interface"] == "127.0.0.1"  # type: ignore[index]


@pytest.mark.parametrize("bad", ["ssl:443:nope=1", "ssl:privateKey=k.pem", "ssl:https"])
def test_parse_ssl_refuses_what_twisted_would_not_take(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_ssl(bad)


def test_h2_is_offered_first() -> None:
    assert alpn_protocols() == [b"h2", b"http/1.1"]


def test_reload_swaps_the_certificate_of_new_connections(tmp_path: Path) -> None:
    ca = CertAuthority(tmp_path)
    first, second = ca.leaf("first"), ca.leaf("second")
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(first.cert, live_cert)
    shutil.copy(first.key, live_key)
    tls = ReloadableTLS(parse_ssl(f"ssl:0:privateKey={live_key}:certKey={live_cert}") or {})
    before = tls.serverConnectionForTLS(None)
    assert served_serial(tls) == first.serial

    shutil.copy(second.cert, live_cert)
    shutil.copy(second.key, live_key)
    assert served_serial(tls) == first.serial  # nothing changes before the reload
    assert tls.reload()
    assert served_serial(tls) == second.serial
    # A connection made before keeps the certificate it was made with.
    assert before.get_certificate().get_serial_number() == first.serial  # type: ignore[union-attr]


def test_a_failed_reload_keeps_the_previous_certificate(tmp_path: Path) -> None:
    ca = CertAuthority(tmp_path)
    first, other = ca.leaf("first"), ca.leaf("other")
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(first.cert, live_cert)
    shutil.copy(first.key, live_key)
    tls = ReloadableTLS({"port": "0", "certKey": str(live_cert), "privateKey": str(live_key)})
    shutil.copy(other.key, live_key)  # a key that does not match the certificate
    assert not tls.reload()
    live_cert.unlink()
    assert not tls.reload()
    assert served_serial(tls) == first.serial


def test_an_unreadable_certificate_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
        ReloadableTLS({"port": "0", "certKey": str(tmp_path / "missing.pem"),
                       "privateKey": str(tmp_path / "missing.key")})


def test_make_service_serves_ssl_with_alpn_and_one_reloader(tmp_path: Path) -> None:
    from twisted.internet.testing import MemoryReactorClock
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from mercure_twisted.tap import Options, makeService
    from mercure_twisted.tls import CertificateReloader
    from mercure_twisted.web import HubSite

    leaf = CertAuthority(tmp_path).leaf("hub")
    reactor = MemoryReactorClock()
    options = Options(environ={})
    options.parseOptions([
        "--dev", "--transport", "memory://", "--listen", "tcp:3000",
        "--listen", f"ssl:3443:interface=127.0.0.1:privateKey={leaf.key}:certKey={leaf.cert}",
        "--metrics-listen", f"ssl:9443:privateKey={leaf.key}:certKey={leaf.cert}",
    ])
    top = makeService(options, reactor=reactor)
    assert sum(isinstance(s, CertificateReloader) for s in top) == 1
    top.startService()
    try:
        servers = {port: (factory, backlog, interface)
                   for port, factory, backlog, interface in reactor.tcpServers}
        assert set(servers) == {3000, 3443, 9443}
        tls_factory, backlog, interface = servers[3443]
        assert isinstance(tls_factory, TLSMemoryBIOFactory)
        assert (backlog, interface) == (4096, "127.0.0.1")
        assert isinstance(tls_factory.wrappedFactory, HubSite)
        assert tls_factory.wrappedFactory is servers[3000][0]  # one site, two listeners
        assert isinstance(servers[9443][0], TLSMemoryBIOFactory)
        assert not isinstance(servers[9443][0].wrappedFactory, HubSite)  # the metrics site
    finally:
        top.stopService()


def test_an_unloadable_certificate_stops_twistd_with_one_line(tmp_path: Path) -> None:
    from twisted.internet.testing import MemoryReactorClock

    from mercure_twisted.tap import Options, makeService

    options = Options(environ={})
    options.parseOptions(["--dev", "--transport", "memory://",
                          "--listen", f"ssl:3443:privateKey={tmp_path}/none.key"])
    with pytest.raises(SystemExit, match="twistd mercure: cannot load the TLS certificate"):
        makeService(options, reactor=MemoryReactorClock())
