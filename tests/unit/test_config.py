"""load_config: precedence, every key, rejection of what cannot work."""

from __future__ import annotations

import pathlib
from typing import Any

import attrs
import pytest

from mercure_twisted.config import (
    DEV_JWT_SECRET,
    ConfigError,
    HubConfig,
    KeySpec,
    load_config,
)

CONF = pathlib.Path(__file__).resolve().parents[2] / "conf"

PEM = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4FgI55q0N3JOS6QoPPuDGnONvgUC
NDaaq5uCrZyRe9BwXAzeUncOB7Aebo52yuDfu1JckIMKgD3dhRRqCMHcpg==
-----END PUBLIC KEY-----
"""

SECRET = "a-secret-of-at-least-thirty-two-bytes!!"


def load(
    tmp_path: pathlib.Path,
    toml: str | None = None,
    *,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> HubConfig:
    path = None
    if toml is not None:
        file = tmp_path / "hub.toml"
        file.write_text(toml)
        path = str(file)
    return load_config(flags=flags or {}, environ=environ or {}, toml_path=path)


def error(tmp_path: pathlib.Path, toml: str | None = None, **kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- defaults and precedence ----------------------------------------------------


def test_defaults_are_hubconfigs(tmp_path: pathlib.Path) -> None:
    """Everything defaults as in HubConfig but the durable SQLite history,
    kept in the XDG data directory of the user."""
    data = tmp_path / "mercure-twisted"
    assert load(tmp_path, environ={"XDG_DATA_HOME": str(tmp_path)}) == HubConfig(
        transport=f"sqlite://{data}/mercure.db", data_dir=str(data)
    )


def test_data_dir_sources(tmp_path: pathlib.Path) -> None:
    home = {"HOME": str(tmp_path / "home")}
    assert load(tmp_path, environ=home).data_dir == str(tmp_path / "home/.local/share/mercure-twisted")
    systemd = {**home, "STATE_DIRECTORY": "/var/lib/mercure:/var/lib/other"}
    assert load(tmp_path, environ=systemd).data_dir == "/var/lib/mercure"
    explicit = {**systemd, "MERCURE_DATA_DIR": str(tmp_path / "env")}
    config = load(tmp_path, environ=explicit)
    assert config.data_dir == str(tmp_path / "env")
    assert config.transport == f"sqlite://{tmp_path}/env/mercure.db"
    flagged = load(tmp_path, environ=explicit, flags={"data_dir": str(tmp_path / "flag")})
    assert flagged.data_dir == str(tmp_path / "flag")
    # An explicit transport is never replaced by the default file.
    memory = load(tmp_path, environ=explicit, flags={"transport": "memory://"})
    assert memory.transport == "memory://"


def test_precedence_defaults_toml_environment_flags(tmp_path: pathlib.Path) -> None:
    toml = 'transport = "memory://toml"\nheartbeat = 10\nhistory_size = 5\n'
    environ = {"MERCURE_TRANSPORT_URL": "memory://env"}
    config = load(tmp_path, toml, environ=environ)
    assert config.transport == "memory://env"
    assert config.heartbeat == 10.0
    assert config.history_size == 5
    assert config.write_timeout == 600.0  # default survives

    config = load(tmp_path, toml, environ=environ, flags={"transport": "memory://flag"})
    assert config.transport == "memory://flag"
    assert config.heartbeat == 10.0


def test_flag_overrides_environment_key(tmp_path: pathlib.Path) -> None:
    environ = {"MERCURE_PUBLISHER_JWT_KEY": "from-env-" + SECRET}
    config = load(tmp_path, f'publisher_jwt_key = "toml-{SECRET}"', environ=environ)
    assert config.keys_for("publisher")[0].key == "from-env-" + SECRET
    config = load(
        tmp_path, environ=environ, flags={"publisher_jwt_key": "flag-" + SECRET}
    )
    assert config.keys_for("publisher")[0].key == "flag-" + SECRET


def test_environment_variables(tmp_path: pathlib.Path) -> None:
    config = load(
        tmp_path,
        environ={
            "MERCURE_PUBLISHER_JWT_KEY": "pub-" + SECRET,
            "MERCURE_PUBLISHER_JWT_ALG": "HS512",
            "MERCURE_SUBSCRIBER_JWT_KEY": PEM,
            "MERCURE_SUBSCRIBER_JWT_ALG": "ES256",
            "MERCURE_TRANSPORT_URL": "memory://localhost:6379/1",
            "UNRELATED": "x",
        },
    )
    assert config.keys == (
        KeySpec(role="publisher", alg="HS512", key="pub-" + SECRET),
        KeySpec(role="subscriber", alg="ES256", key=PEM),
    )
    assert config.transport == "memory://localhost:6379/1"


def test_empty_environment_variable_is_unset(tmp_path: pathlib.Path) -> None:
    empty = {"MERCURE_PUBLISHER_JWT_KEY": "", "MERCURE_TRANSPORT_URL": "", "MERCURE_DATA_DIR": ""}
    config = load(tmp_path, environ={**empty, "XDG_DATA_HOME": str(tmp_path)})
    assert config == load(tmp_path, environ={"XDG_DATA_HOME": str(tmp_path)})
    assert not config.keys and config.transport.startswith("sqlite://")


# -- every key --------------------------------------------------------------------


FULL = f"""
listen = ["tcp:3000", "tcp6:3001"]
publisher_jwt_key = '''{PEM}'''
publisher_jwt_alg = "ES256"
subscriber_jwt_key = '''{PEM}'''
subscriber_jwt_alg = "ES256"
publisher_jwks_url = "https://auth.example.com/jwks"
subscriber_jwks_url = "https://auth.example.com/jwks2"
anonymous = true
cors_origins = ["https://a.example.com", "http://localhost:8080"]
publish_origins = "https://a.example.com https://b.example.com"
cookie_name = "auth"
subscriptions = true
heartbeat = 1.5
write_timeout = 0
dispatch_timeout = 2
max_body_size = 10
public_url = "https://hub.example.com/.well-known/mercure"
issuer = "https://global.example.com"
protocol = "1"
history_size = 0
history_max_age = 30
transport = "memory://r:6379/0"
data_dir = "/srv/mercure"
dev = false
debug_ui = true
max_matchers = 3
max_matcher_length = 4
max_topics = 5
max_subscriber_buffer = 6

[[issuers]]
iss = "https://a.example.com"
publisher_jwt_key = "a-{SECRET}"
publisher_jwt_alg = "HS512"
subscriber_jwks_url = "https://a.example.com/jwks"
subscriber_jwt_alg = "ES384"

[[issuers]]
iss = "https://b.example.com"
subscriber_jwt_key = "b-{SECRET}"
publisher_jwks_url = "https://b.example.com/jwks"
"""


def test_every_key(tmp_path: pathlib.Path) -> None:
    config = load(tmp_path, FULL)
    assert config == HubConfig(
        listen=("tcp:3000", "tcp6:3001"),
        keys=(
            KeySpec(role="publisher", alg="ES256", key=PEM),
            KeySpec(role="publisher", alg="ES256", jwks_url="https://auth.example.com/jwks"),
            KeySpec(role="subscriber", alg="ES256", key=PEM),
            KeySpec(role="subscriber", alg="ES256", jwks_url="https://auth.example.com/jwks2"),
            KeySpec(role="publisher", alg="HS512", key="a-" + SECRET, issuer="https://a.example.com"),
            KeySpec(
                role="subscriber", alg="ES384",
                jwks_url="https://a.example.com/jwks", issuer="https://a.example.com",
            ),
            KeySpec(
                role="publisher", alg="RS256",
                jwks_url="https://b.example.com/jwks", issuer="https://b.example.com",
            ),
            KeySpec(role="subscriber", alg="HS256", key="b-" + SECRET, issuer="https://b.example.com"),
        ),
        anonymous=True,
        cors_origins=("https://a.example.com", "http://localhost:8080"),
        publish_origins=("https://a.example.com", "https://b.example.com"),
        cookie_name="auth",
        subscriptions=True,
        heartbeat=1.5,
        write_timeout=0.0,
        dispatch_timeout=2.0,
        max_body_size=10,
        public_url="https://hub.example.com/.well-known/mercure",
        issuers=("https://global.example.com", "https://a.example.com", "https://b.example.com"),
        protocol="1",
        history_size=0,
        history_max_age=30.0,
        transport="memory://r:6379/0",
        data_dir="/srv/mercure",
        dev=False,
        debug_ui=True,
        max_matchers=3,
        max_matcher_length=4,
        max_topics=5,
        max_subscriber_buffer=6,
    )


def test_every_flag(tmp_path: pathlib.Path) -> None:
    """The flag names are the TOML names; the values have the same types."""
    flags: dict[str, Any] = {
        "listen": ("tcp:1", "tcp:2"),
        "publisher_jwt_key": PEM,
        "publisher_jwt_alg": "ES256",
        "subscriber_jwt_key": PEM,
        "subscriber_jwt_alg": "ES256",
        "publisher_jwks_url": "https://x.example.com/j",
        "subscriber_jwks_url": "https://y.example.com/j",
        "anonymous": True,
        "cors_origins": "https://a.example.com *",
        "publish_origins": ("https://a.example.com",),
        "cookie_name": "c",
        "subscriptions": True,
        "heartbeat": 0.0,
        "write_timeout": 1.0,
        "dispatch_timeout": 0.5,
        "max_body_size": 7,
        "public_url": "http://localhost:3000/.well-known/mercure",
        "issuer": "https://i.example.com",
        "protocol": "0",
        "history_size": 9,
        "transport": "memory://",
        "dev": False,
    }
    config = load(tmp_path, flags=flags)
    assert config.listen == ("tcp:1", "tcp:2")
    assert config.cors_origins == ("https://a.example.com", "*")
    assert config.publish_origins == ("https://a.example.com",)
    assert config.issuers == ("https://i.example.com",)
    assert config.protocol == "0"
    assert [(k.role, k.alg, k.jwks_url) for k in config.keys] == [
        ("publisher", "ES256", None),
        ("publisher", "ES256", "https://x.example.com/j"),
        ("subscriber", "ES256", None),
        ("subscriber", "ES256", "https://y.example.com/j"),
    ]
    assert (config.heartbeat, config.write_timeout, config.dispatch_timeout) == (0.0, 1.0, 0.5)
    assert (config.max_body_size, config.history_size, config.cookie_name) == (7, 9, "c")


def test_listen_as_string_and_origins_as_array(tmp_path: pathlib.Path) -> None:
    config = load(tmp_path, 'listen = "tcp:4000:interface=127.0.0.1"\ncors_origins = "*"')
    assert config.listen == ("tcp:4000:interface=127.0.0.1",)
    assert config.cors_origins == ("*",)


@pytest.mark.parametrize(("value", "expected"), [('"0"', "0"), ('"1"', "1"), ('"both"', "both"), ("0", "0"), ("1", "1")])
def test_protocol_values(tmp_path: pathlib.Path, value: str, expected: str) -> None:
    config = load(tmp_path, f"protocol = {value}")
    assert config.protocol == expected
    assert config.accepts_draft07 == (expected in ("0", "both"))
    assert config.accepts_draft08 == (expected in ("1", "both"))


def test_algorithm_defaults(tmp_path: pathlib.Path) -> None:
    config = load(
        tmp_path,
        f'publisher_jwt_key = "{SECRET}"\nsubscriber_jwks_url = "https://a.example.com/jwks"',
    )
    assert [k.alg for k in config.keys] == ["HS256", "RS256"]


def test_algorithm_without_key_configures_nothing(tmp_path: pathlib.Path) -> None:
    assert load(tmp_path, 'publisher_jwt_alg = "RS256"').keys == ()


# -- key files --------------------------------------------------------------------


def test_key_from_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pub.pem").write_text(PEM)
    (tmp_path / "sub.key").write_text(SECRET + "\n")
    config = load(
        tmp_path,
        'publisher_jwt_key = "@pub.pem"\npublisher_jwt_alg = "ES256"\n'
        f'subscriber_jwt_key = "@{tmp_path / "sub.key"}"',
    )
    assert config.keys_for("publisher")[0].key == PEM  # relative to the TOML file
    assert config.keys_for("subscriber")[0].key == SECRET  # trailing newline dropped


def test_key_from_file_in_flags_and_environment(tmp_path: pathlib.Path) -> None:
    (tmp_path / "k").write_text(SECRET)
    config = load(
        tmp_path,
        flags={"publisher_jwt_key": f"@{tmp_path / 'k'}"},
        environ={"MERCURE_SUBSCRIBER_JWT_KEY": f"@{tmp_path / 'k'}"},
    )
    assert [k.key for k in config.keys] == [SECRET, SECRET]


def test_missing_key_file(tmp_path: pathlib.Path) -> None:
    message = error(tmp_path, flags={"publisher_jwt_key": f"@{tmp_path}/nope.pem"})
    assert "--publisher-jwt-key" in message and "nope.pem" in message


def test_key_values_are_not_in_repr(tmp_path: pathlib.Path) -> None:
    config = load(tmp_path, flags={"publisher_jwt_key": SECRET})
    assert SECRET not in repr(config)


# -- dev preset ---------------------------------------------------------------------


def test_dev_preset(tmp_path: pathlib.Path) -> None:
    config = load(tmp_path, flags={"dev": True})
    assert config.dev
    assert config.keys == (
        KeySpec(role="publisher", alg="HS256", key=DEV_JWT_SECRET),
        KeySpec(role="subscriber", alg="HS256", key=DEV_JWT_SECRET),
    )
    assert config.anonymous and config.subscriptions and config.debug_ui
    assert config.cors_origins == ("*",)


def test_dev_preset_yields_to_explicit_settings(tmp_path: pathlib.Path) -> None:
    config = load(
        tmp_path,
        "dev = true\nanonymous = false\ndebug_ui = false\n"
        'cors_origins = ["http://localhost:8000"]\n'
        f'publisher_jwt_key = "{SECRET}"',
    )
    assert not config.anonymous and not config.debug_ui
    assert config.subscriptions  # not overridden: preset
    assert config.cors_origins == ("http://localhost:8000",)
    assert config.keys == (
        KeySpec(role="publisher", alg="HS256", key=SECRET),
        KeySpec(role="subscriber", alg="HS256", key=DEV_JWT_SECRET),
    )


def test_dev_preset_keeps_jwks(tmp_path: pathlib.Path) -> None:
    config = load(tmp_path, flags={"dev": True, "subscriber_jwks_url": "https://a.example.com/j"})
    assert [k.key for k in config.keys_for("subscriber")] == [None]


def test_no_publisher_key_is_allowed(tmp_path: pathlib.Path) -> None:
    assert load(tmp_path, flags={"subscriber_jwt_key": SECRET}).keys_for("publisher") == ()


# -- rejections -----------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: pathlib.Path) -> None:
    message = error(tmp_path, "hearbeat = 3")
    assert message == f"unknown key 'hearbeat' in {tmp_path / 'hub.toml'}"


def test_unknown_table(tmp_path: pathlib.Path) -> None:
    assert error(tmp_path, "[limits]\nmax_topics = 3").startswith("unknown key 'limits' in ")


def test_unknown_key_in_issuer_table(tmp_path: pathlib.Path) -> None:
    message = error(tmp_path, f'[[issuers]]\niss = "x"\npublisher_jwt_key = "{SECRET}"\nkid = "1"')
    assert message == f"unknown key 'issuers[0].kid' in {tmp_path / 'hub.toml'}"


def test_unknown_flag(tmp_path: pathlib.Path) -> None:
    assert error(tmp_path, flags={"nope": 1}) == "unknown option --nope"


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('heartbeat = "40"', "'heartbeat' in {path} must be a number"),
        ("heartbeat = true", "'heartbeat' in {path} must be a number"),
        ("max_body_size = 1.5", "'max_body_size' in {path} must be an integer"),
        ("history_size = true", "'history_size' in {path} must be an integer"),
        ('anonymous = "yes"', "'anonymous' in {path} must be a boolean"),
        ("listen = 3000", "'listen' in {path} must be a string or an array of strings"),
        ("listen = [3000]", "'listen' in {path} must be a string or an array of strings"),
        ("cors_origins = 1", "'cors_origins' in {path} must be an array of strings or a space-separated string"),
        ("cookie_name = 1", "'cookie_name' in {path} must be a string"),
        ("protocol = 1.0", "'protocol' in {path} must be \"0\", \"1\" or \"both\""),
        ("protocol = true", "'protocol' in {path} must be"),
        ("issuers = 1", "'issuers' in {path} must be an array of tables"),
        ('[[issuers]]\niss = 1', "'issuers[0].iss' in {path} must be a string"),
        ('[[issuers]]\niss = "a"\npublisher_jwt_key = 1', "'issuers[0].publisher_jwt_key' in {path} must be a string"),
    ],
)
def test_wrong_types(tmp_path: pathlib.Path, toml: str, fragment: str) -> None:
    assert fragment.format(path=tmp_path / "hub.toml") in error(tmp_path, toml)


def test_wrong_flag_type(tmp_path: pathlib.Path) -> None:
    assert error(tmp_path, flags={"heartbeat": "x"}) == "--heartbeat in the command line must be a number"


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"heartbeat": -1}, "heartbeat must be a non-negative number"),
        ({"write_timeout": float("nan")}, "write_timeout must be a non-negative number"),
        ({"dispatch_timeout": float("inf")}, "dispatch_timeout must be a non-negative number"),
        ({"history_size": -1}, "history_size must be non-negative"),
        ({"max_topics": -1}, "max_topics must be non-negative"),
        ({"max_body_size": 0}, "max_body_size must be a positive number of bytes"),
        ({"protocol": "2"}, 'protocol must be "0" (draft-07), "1" (draft-08) or "both"'),
        ({"public_url": "/.well-known/mercure"}, "public_url must be an absolute http(s) URL"),
        ({"public_url": "ftp://h/x"}, "public_url must be an absolute http(s) URL"),
        ({"cors_origins": "https://a.example.com/"}, "cors_origins: 'https://a.example.com/' is not"),
        ({"cors_origins": "a.example.com"}, "cors_origins: 'a.example.com' is not"),
        ({"cors_origins": "https://a.example.com:x"}, "is not"),
        ({"publish_origins": "https://a.example.com/path"}, "publish_origins: "),
        ({"cookie_name": "a b"}, "cookie_name 'a b' is not a valid cookie name"),
        ({"cookie_name": ""}, "is not a valid cookie name"),
        ({"transport": "localhost"}, "unsupported transport"),
        ({"transport": "ftp://localhost"}, "unsupported transport"),
        ({"history_max_age": -1}, "history_max_age must be a non-negative number of seconds"),
        ({"listen": ()}, "listen must name at least one endpoint"),
        ({"issuer": ""}, "issuer must not be empty"),
        ({"publisher_jwt_key": SECRET, "publisher_jwt_alg": "none"}, "publisher key: unsupported algorithm 'none'"),
        ({"subscriber_jwks_url": "jwks.json"}, "subscriber key: JWKS URL must be an absolute http(s) URL"),
    ],
)
def test_validation(tmp_path: pathlib.Path, settings: dict[str, Any], fragment: str) -> None:
    assert fragment in error(tmp_path, flags=settings)


def test_valid_origins(tmp_path: pathlib.Path) -> None:
    origins = "* https://a.example.com http://localhost:8080 http://[::1]:3000"
    assert load(tmp_path, flags={"cors_origins": origins}).cors_origins == tuple(origins.split())


def test_issuer_tables_rejections(tmp_path: pathlib.Path) -> None:
    assert "needs an 'iss'" in error(tmp_path, f'[[issuers]]\npublisher_jwt_key = "{SECRET}"')
    assert "has no key and no JWKS URL" in error(tmp_path, '[[issuers]]\niss = "a"')
    twice = f'[[issuers]]\niss = "a"\npublisher_jwt_key = "{SECRET}"\n' * 2
    assert "issuer 'a' appears twice" in error(tmp_path, twice)


def test_unreadable_and_invalid_toml(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file .*missing.toml"):
        load_config(flags={}, environ={}, toml_path=str(tmp_path / "missing.toml"))
    assert error(tmp_path, "heartbeat = ").startswith("invalid TOML in ")


def test_hmac_secret_with_rsa_algorithm_is_rejected(tmp_path: pathlib.Path) -> None:
    """check_key_spec from mercure_twisted.auth runs on every key."""
    message = error(tmp_path, flags={"publisher_jwt_key": SECRET, "publisher_jwt_alg": "RS256"})
    assert "publisher" in message and SECRET not in message


def test_jwks_url_with_hmac_algorithm_is_rejected(tmp_path: pathlib.Path) -> None:
    """One algorithm per role: an HMAC alg cannot go with a JWKS URL."""
    message = error(
        tmp_path,
        flags={"subscriber_jwks_url": "https://a.example.com/j", "subscriber_jwt_alg": "HS256"},
    )
    assert "subscriber" in message and "HS256" in message


def test_issuer_key_is_checked(tmp_path: pathlib.Path) -> None:
    toml = f'[[issuers]]\niss = "a"\npublisher_jwt_key = "{SECRET}"\npublisher_jwt_alg = "ES256"'
    assert "publisher" in error(tmp_path, toml)


# -- the examples in conf/ ----------------------------------------------------------


def test_every_conf_example_is_covered() -> None:
    assert sorted(p.name for p in CONF.glob("*.toml")) == sorted(EXAMPLES)


def _bridge(config: Any, standalone: bool = False) -> Any:
    from websub_bridge.config import bridge_config

    return bridge_config(config, standalone=standalone)


EXAMPLES = {
    "development.toml": lambda c: c.dev and c.listen == ("tcp:3000:interface=127.0.0.1",)
    and c.heartbeat == 15.0,
    "production.toml": lambda c: c.transport == "sqlite:///var/lib/mercure/mercure.db"
    and c.history_max_age == 86400 and not c.dev and not c.keys,
    "jwks.toml": lambda c: all(k.jwks_url for k in c.keys) and len(c.keys) == 2,
    "issuers.toml": lambda c: len(c.issuers) == 3 and all(k.issuer for k in c.keys)
    and c.protocol == "1",
    "rsa-keys.toml": lambda c: [k.alg for k in c.keys] == ["RS256", "ES256"]
    and all(k.key and k.key.lstrip().startswith("-----BEGIN PUBLIC KEY") for k in c.keys),
    "cors-cookies.toml": lambda c: "*" not in c.cors_origins and c.cookie_name,
    "draft07-only.toml": lambda c: c.protocol == "0" and not c.accepts_draft08,
    "websub-follow.toml": lambda c: c.websub_public_url == "https://hub.example.com"
    and [dict(f)["topic"] for f in c.websub["follow"]]
    == ["https://blog.example.com/feed.atom", "https://status.example.com/"],
    "websub-hub.toml": lambda c: _bridge(c).hub is not None
    and _bridge(c).hub.offered("https://example.com/books/7") is not None
    and _bridge(c).hub.offered("https://example.com/news").content_type == "application/atom+xml"
    and _bridge(c).hub.may_be_pinged("https://example.com/news"),
    "websub-bridge.toml": lambda c: _bridge(c, standalone=True).hub is not None
    and dict(c.websub["mercure"])["url"] == "https://hub.example.com/.well-known/mercure"
    and c.listen == ("tcp:8090:interface=127.0.0.1",),
    # (its transport URL and listener are parsed in test_redis_transport.py)
    "cluster.toml": lambda c: c.transport.startswith("redis://127.0.0.1:6379/0?")
    and c.listen == ("reuseport:3000:interface=127.0.0.1",) and c.subscriptions,
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_conf_example_loads(name: str) -> None:
    config = load_config(flags={}, environ={}, toml_path=str(CONF / name))
    assert EXAMPLES[name](config)


def test_production_example_with_environment_keys() -> None:
    config = load_config(
        flags={},
        environ={"MERCURE_PUBLISHER_JWT_KEY": SECRET, "MERCURE_SUBSCRIBER_JWT_KEY": SECRET},
        toml_path=str(CONF / "production.toml"),
    )
    assert [k.role for k in config.keys] == ["publisher", "subscriber"]


def test_config_is_frozen(tmp_path: pathlib.Path) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        load(tmp_path).heartbeat = 1  # type: ignore[misc]


# -- the WebSub bridge's settings (validated fully by websub_bridge.config) -------


def test_websub_table_gives_the_bridge_settings_and_keeps_the_rest_raw(tmp_path: pathlib.Path) -> None:
    config = load(tmp_path, """
[websub]
public_url = "https://hub.example.com"
allow_networks = ["10.0.0.0/8"]
http_secret = true
[[websub.follow]]
topic = "https://blog.example.com/feed"
""")
    assert config.websub_public_url == "https://hub.example.com"
    assert config.websub_allow_networks == ("10.0.0.0/8",)
    assert dict(config.websub)["http_secret"] is True
    (follow,) = config.websub["follow"]
    assert dict(follow) == {"topic": "https://blog.example.com/feed"}
    with pytest.raises(TypeError):
        config.websub["http_secret"] = False  # type: ignore[index]


def test_websub_flags_override_the_table(tmp_path: pathlib.Path) -> None:
    config = load(
        tmp_path, '[websub]\npublic_url = "https://a.example"\nallow_networks = ["10.0.0.0/8"]\n',
        flags={"websub_public_url": "https://b.example", "websub_allow_networks": ("127.0.0.0/8",)},
    )
    assert (config.websub_public_url, config.websub_allow_networks) == ("https://b.example", ("127.0.0.0/8",))


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("websub = 1\n", "'websub' in"),
        ("[websub]\npublic_url = 3\n", "'websub.public_url' in"),
        ("[websub]\nallow_networks = [1]\n", "'websub.allow_networks' in"),
        ('[websub]\npublic_url = "hub.example.com"\n', "websub_public_url must be an absolute http(s) URL"),
    ],
)
def test_websub_settings_of_the_wrong_type(tmp_path: pathlib.Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml)
    assert message in str(info.value)
