"""twistd mercure: option parsing, endpoint backlog, open files limit."""

from __future__ import annotations

import pathlib
import resource

import pytest
from twisted.internet import endpoints
from twisted.python import usage

from mercure_twisted.config import DEV_JWT_SECRET, HubConfig, KeySpec
from mercure_twisted.tap import DEFAULT_BACKLOG, Options, raise_nofile_limit, with_backlog

SECRET = "a-secret-of-at-least-thirty-two-bytes!!"


def parse(*args: str, environ: dict[str, str] | None = None) -> HubConfig:
    options = Options(environ=environ or {})
    options.parseOptions(list(args))
    return options.hub_config


def usage_error(*args: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(usage.UsageError) as info:
        parse(*args, environ=environ)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- Options ------------------------------------------------------------------------


def test_no_flags_gives_the_defaults() -> None:
    assert parse(environ={"XDG_DATA_HOME": "/x"}) == HubConfig(
        transport="sqlite:///x/mercure-twisted/mercure.db", data_dir="/x/mercure-twisted"
    )


def test_every_flag() -> None:
    config = parse(
        "--listen", "tcp:3000:interface=127.0.0.1",
        "--listen", "tcp6:3001",
        "--publisher-jwt-key", "p-" + SECRET,
        "--publisher-jwt-alg", "HS512",
        "--subscriber-jwt-key", "s-" + SECRET,
        "--subscriber-jwt-alg", "HS384",
        "--anonymous",
        "--cors-origins", "https://a.example.com http://localhost:8080",
        "--publish-origins", "https://a.example.com",
        "--cookie-name", "auth",
        "--subscriptions",
        "--heartbeat", "0",
        "--write-timeout", "30.5",
        "--dispatch-timeout", "1",
        "--max-body-size", "2048",
        "--public-url", "https://hub.example.com/.well-known/mercure",
        "--issuer", "https://auth.example.com",
        "--protocol", "1",
        "--history-size", "0",
        "--history-max-age", "3600",
        "--transport", "memory://localhost:6379/0",
        "--data-dir", "/srv/mercure",
    )
    assert config == HubConfig(
        listen=("tcp:3000:interface=127.0.0.1", "tcp6:3001"),
        keys=(
            KeySpec(role="publisher", alg="HS512", key="p-" + SECRET),
            KeySpec(role="subscriber", alg="HS384", key="s-" + SECRET),
        ),
        anonymous=True,
        cors_origins=("https://a.example.com", "http://localhost:8080"),
        publish_origins=("https://a.example.com",),
        cookie_name="auth",
        subscriptions=True,
        heartbeat=0.0,
        write_timeout=30.5,
        dispatch_timeout=1.0,
        max_body_size=2048,
        public_url="https://hub.example.com/.well-known/mercure",
        issuers=("https://auth.example.com",),
        protocol="1",
        history_size=0,
        history_max_age=3600.0,
        transport="memory://localhost:6379/0",
        data_dir="/srv/mercure",
    )


def test_jwks_flags() -> None:
    config = parse(
        "--publisher-jwks-url", "https://a.example.com/jwks",
        "--subscriber-jwks-url", "https://b.example.com/jwks",
        "--subscriber-jwt-alg", "ES256",
    )
    assert config.keys == (
        KeySpec(role="publisher", alg="RS256", jwks_url="https://a.example.com/jwks"),
        KeySpec(role="subscriber", alg="ES256", jwks_url="https://b.example.com/jwks"),
    )


def test_dev_flag() -> None:
    config = parse("--dev")
    assert config.dev and config.anonymous and config.subscriptions and config.debug_ui
    assert [k.key for k in config.keys] == [DEV_JWT_SECRET, DEV_JWT_SECRET]


def test_flags_not_given_do_not_override_the_file(tmp_path: pathlib.Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('listen = "tcp:4000"\nheartbeat = 7\nprotocol = "0"\nanonymous = true\n')
    config = parse("--config", str(toml))
    assert config.listen == ("tcp:4000",)
    assert (config.heartbeat, config.protocol, config.anonymous) == (7.0, "0", True)
    config = parse("--config", str(toml), "--heartbeat", "9", "--listen", "tcp:5000")
    assert (config.heartbeat, config.listen) == (9.0, ("tcp:5000",))


def test_environment_between_file_and_flags(tmp_path: pathlib.Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('transport = "memory://file"\n')
    environ = {"MERCURE_TRANSPORT_URL": "memory://env"}
    assert parse("-c", str(toml), environ=environ).transport == "memory://env"
    assert parse("-c", str(toml), "--transport", "memory://flag", environ=environ).transport == "memory://flag"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--heartbeat", "soon"), "Parameter type enforcement failed: 'soon' is not a number of seconds"),
        (("--heartbeat", "-1"), "Parameter type enforcement failed: '-1' is not a non-negative number of seconds"),
        (("--write-timeout", "nan"), "Parameter type enforcement failed: 'nan' is not a non-negative number of seconds"),
        (("--history-size", "1.5"), "Parameter type enforcement failed: '1.5' is not an integer"),
        (("--history-size", "-2"), "Parameter type enforcement failed: '-2' is negative"),
        (("--max-body-size", "0"), "Parameter type enforcement failed: '0' is not a positive number of bytes"),
        (("--protocol", "2"), "Parameter type enforcement failed: --protocol must be 1, 0 or both, not '2'"),
        (("--cors-origins", "https://a.example.com/"), "cors_origins: 'https://a.example.com/' is not \"*\" or an origin like https://example.com[:port]"),
        (("--public-url", "hub.example.com"), "public_url must be an absolute http(s) URL, not 'hub.example.com'"),
        (("--publisher-jwt-key", SECRET, "--publisher-jwt-alg", "none"), "publisher key: unsupported algorithm 'none'"),
        (("--nope",), "option --nope not recognized"),
    ],
)
def test_usage_errors(args: tuple[str, ...], message: str) -> None:
    assert usage_error(*args).startswith(message)


def test_config_file_errors_are_usage_errors(tmp_path: pathlib.Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text("colour = 1\n")
    assert usage_error("--config", str(toml)) == f"unknown key 'colour' in {toml}"
    assert usage_error("--config", str(tmp_path / "none.toml")).startswith("cannot read config file ")


def test_help_lists_every_flag() -> None:
    text = str(Options(environ={}))
    for flag in (
        "listen", "config", "publisher-jwt-key", "publisher-jwt-alg", "subscriber-jwt-key",
        "subscriber-jwt-alg", "publisher-jwks-url", "subscriber-jwks-url", "anonymous",
        "cors-origins", "publish-origins", "cookie-name", "subscriptions", "heartbeat",
        "write-timeout", "dispatch-timeout", "max-body-size", "public-url", "issuer",
        "protocol", "history-size", "history-max-age", "transport", "data-dir", "dev",
    ):
        assert f"--{flag}" in text


# -- backlog ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:3000", f"tcp:3000:backlog={DEFAULT_BACKLOG}"),
        ("tcp:3000:interface=127.0.0.1", f"tcp:3000:interface=127.0.0.1:backlog={DEFAULT_BACKLOG}"),
        ("tcp6:3000:interface=\\:\\:1", f"tcp6:3000:interface=\\:\\:1:backlog={DEFAULT_BACKLOG}"),
        ("3000", f"tcp:3000:backlog={DEFAULT_BACKLOG}"),
        ("3000:interface=127.0.0.1", f"tcp:3000:interface=127.0.0.1:backlog={DEFAULT_BACKLOG}"),
        ("ssl:443:privateKey=k.pem:certKey=c.pem", f"ssl:443:privateKey=k.pem:certKey=c.pem:backlog={DEFAULT_BACKLOG}"),
        ("tcp:3000:backlog=50", "tcp:3000:backlog=50"),
        ("tcp:3000:interface=127.0.0.1:backlog=10", "tcp:3000:interface=127.0.0.1:backlog=10"),
        # An escaped colon is part of a value, not a "backlog=" parameter.
        ("ssl:443:privateKey=a\\:backlog=1.pem", f"ssl:443:privateKey=a\\:backlog=1.pem:backlog={DEFAULT_BACKLOG}"),
        ("unix:/run/mercure.sock", "unix:/run/mercure.sock"),
        ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),
    ],
)
def test_with_backlog(description: str, expected: str) -> None:
    assert with_backlog(description) == expected


def test_with_backlog_result_is_what_twisted_parses() -> None:
    from twisted.internet.testing import MemoryReactor

    reactor = MemoryReactor()
    endpoint = endpoints.serverFromString(reactor, with_backlog("tcp:3000:interface=127.0.0.1"))
    assert isinstance(endpoint, endpoints.TCP4ServerEndpoint)
    assert (endpoint._port, endpoint._interface, endpoint._backlog) == (3000, "127.0.0.1", DEFAULT_BACKLOG)
    endpoint = endpoints.serverFromString(reactor, with_backlog("3000"))
    assert isinstance(endpoint, endpoints.TCP4ServerEndpoint)
    assert endpoint._backlog == DEFAULT_BACKLOG


# -- open files limit -----------------------------------------------------------------


def test_raise_nofile_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard and soft > 256:
        # Lower it first (allowed without privileges) so that raising is seen.
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        soft = 256
    before, after = raise_nofile_limit()
    assert before == soft
    now_soft, now_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert now_hard == hard
    assert after == now_soft
    if hard != resource.RLIM_INFINITY:
        assert now_soft == hard
    # Idempotent.
    assert raise_nofile_limit() == (now_soft, now_soft)


# -- makeService ------------------------------------------------------------------------


def test_make_service_builds_the_tree(tmp_path: pathlib.Path) -> None:
    from twisted.application.internet import StreamServerEndpointService
    from twisted.application.service import IService, MultiService
    from twisted.internet.testing import MemoryReactorClock
    from twisted.web.server import Site

    from mercure_twisted.tap import makeService

    reactor = MemoryReactorClock()
    options = Options(environ={})
    options.parseOptions(
        ["--dev", "--listen", "tcp:3000:interface=127.0.0.1", "--listen", "tcp:3001:backlog=7",
         "--data-dir", str(tmp_path)]
    )
    top = makeService(options, reactor=reactor)
    assert isinstance(top, MultiService)
    children = list(top)
    assert len(children) == 3
    hub, *listeners = children
    assert IService.providedBy(hub) and not isinstance(hub, StreamServerEndpointService)
    assert all(isinstance(s, StreamServerEndpointService) for s in listeners)

    top.startService()
    try:
        assert [(port, backlog, interface) for port, _, backlog, interface in reactor.tcpServers] == [
            (3000, DEFAULT_BACKLOG, "127.0.0.1"),
            (3001, 7, ""),
        ]
        assert all(isinstance(factory, Site) for _, factory, _, _ in reactor.tcpServers)
        assert reactor.tcpServers[0][1] is reactor.tcpServers[1][1]  # one site
    finally:
        top.stopService()
    # makeService raised the open files limit on the way.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or soft == hard


# -- the WebSub bridge --------------------------------------------------------------


def test_websub_flags() -> None:
    options = Options(environ={})
    options.parseOptions([
        "--websub-public-url", "http://127.0.0.1:3000",
        "--websub-allow-network", "127.0.0.0/8", "--websub-allow-network", "::1/128",
    ])
    assert options.hub_config.websub_public_url == "http://127.0.0.1:3000"
    assert options.hub_config.websub_allow_networks == ("127.0.0.0/8", "::1/128")
    bridge = options["bridge_config"]
    assert bridge.public_url == "http://127.0.0.1:3000"
    assert [str(n) for n in bridge.allow_networks] == ["127.0.0.0/8", "::1/128"]
    assert "--websub-public-url" in str(options) and "--websub-allow-network" in str(options)


def test_the_websub_hub_role_is_configured_and_mounted(tmp_path: pathlib.Path) -> None:
    from twisted.internet.testing import MemoryReactorClock

    from mercure_twisted.tap import makeService
    from websub_bridge.service import BridgeService

    toml = tmp_path / "hub.toml"
    toml.write_text(
        '[websub]\npublic_url = "https://hub.example"\n'
        '[websub.hub]\ntopics = ["https://example.com/books/{id}"]\n'
    )
    options = Options(environ={})
    options.parseOptions(
        ["--dev", "--config", str(toml), "--listen", "tcp:3000:interface=127.0.0.1",
         "--data-dir", str(tmp_path)]
    )
    assert options["bridge_config"].hub.offered("https://example.com/books/1") is not None
    hub, bridge, listener = list(makeService(options, reactor=MemoryReactorClock()))
    assert isinstance(bridge, BridgeService) and bridge.hub_role is not None
    assert bridge.hub_role.url == "https://hub.example/websub/hub"
    root = listener.factory.resource
    assert root._mounted(b"/websub/hub") is bridge.hub_role.resource
    assert root._mounted(b"/websub/follows") is not bridge.hub_role.resource


def test_no_websub_settings_no_bridge() -> None:
    options = Options(environ={})
    options.parseOptions([])
    assert options["bridge_config"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--websub-allow-network", "10.0.0.0/8"), "the WebSub bridge needs a public URL"),
        (("--websub-public-url", "http://h.example", "--websub-allow-network", "10.0.0.1/8"), "--websub-allow-network: not a network"),
        (("--websub-public-url", "ftp://h.example"), "websub_public_url must be an absolute http(s) URL"),
    ],
)
def test_websub_usage_errors(args: tuple[str, ...], message: str) -> None:
    assert message in usage_error(*args)


def test_make_service_with_the_bridge_mounts_websub_after_the_hub(tmp_path: pathlib.Path) -> None:
    from twisted.internet.testing import MemoryReactorClock

    from mercure_twisted.tap import makeService
    from websub_bridge.service import BridgeService

    reactor = MemoryReactorClock()
    options = Options(environ={})
    options.parseOptions(
        ["--dev", "--listen", "tcp:3000:interface=127.0.0.1", "--data-dir", str(tmp_path),
         "--websub-public-url", "http://127.0.0.1:3000"]
    )
    top = makeService(options, reactor=reactor)
    hub, bridge, listener = list(top)
    # Started after the hub, stopped before it (and after the listener).
    assert isinstance(bridge, BridgeService)
    assert listener.factory.resource._mounted(b"/websub/follows") is not None
    assert listener.factory.resource._mounted(b"/websubx") is None


def test_a_transport_that_cannot_open_stops_the_start_with_one_line(tmp_path: pathlib.Path) -> None:
    """An unusable SQLite file is only found when the transport opens it,
    inside makeService: twistd must still stop with one line, no traceback."""
    from twisted.internet.testing import MemoryReactorClock

    from mercure_twisted.tap import makeService

    (tmp_path / "not-a-file.db").mkdir()
    options = Options(environ={})
    options.parseOptions(["--transport", f"sqlite://{tmp_path}/not-a-file.db"])
    with pytest.raises(SystemExit) as info:
        makeService(options, reactor=MemoryReactorClock())
    message = str(info.value.code)
    assert message.startswith("twistd mercure: ") and "\n" not in message
    assert "not-a-file.db" in message
