"""Build a validated `HubConfig` from defaults, a TOML file, the environment and flags.

Precedence, lowest first: the defaults of `HubConfig`, the TOML file, the
environment (the Go hub's Docker variables), then command-line flags.  Every
layer is first reduced to the same flat mapping of setting names (the flag
names with underscores) to typed values, so a value means the same wherever
it comes from; the layers are then merged key by key and turned into one
`HubConfig`, which is validated before it is returned.

Every failure is a `ConfigError` with one line for the operator: unknown keys
are rejected, never ignored, and a wrong type names the key and the type that
was expected.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

#: Values of ``log_level``, lowest first (twisted.logger's LogLevel names).
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

#: Transport URL schemes this release can start (see transports/).
SUPPORTED_TRANSPORTS = ("sqlite", "memory", "redis", "rediss")

import attrs


__all__ = ["ENVIRONMENT", "SETTINGS", "load_config"]

ROLES: tuple[Role, ...] = ("publisher", "subscriber")

_MISSING: Any = object()


# -- typed readers -----------------------------------------------------------
# Each takes the raw value and returns the typed one, or raises TypeError
# with the name of the expected type (the caller adds key and source).


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("a boolean (true or false)")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an integer")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("a number")
    return float(value)


def _str_list(value: Any) -> tuple[str, ...]:
    """A string or an array of strings (``listen``)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError("a string or an array of strings")


def _words(value: Any) -> tuple[str, ...]:
    """An array of strings or one space-separated string (origins)."""
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(w for v in value for w in v.split())
    raise TypeError("an array of strings or a space-separated string")


def _protocol(value: Any) -> str:
    if isinstance(value, bool):
        raise TypeError('"0", "1" or "both"')
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError('"0", "1" or "both"')


#: Every flat setting, by its flag name with underscores, and its reader.
#: These are the keys accepted at the top level of the TOML file and in the
#: ``flags`` mapping (``issuers`` tables are TOML-only, see below).
SETTINGS: dict[str, Callable[[Any], Any]] = {
    "listen": _str_list,
    "publisher_jwt_key": _str,
    "publisher_jwt_alg": _str,
    "subscriber_jwt_key": _str,
    "subscriber_jwt_alg": _str,
    "publisher_jwks_url": _str,
    "subscriber_jwks_url": _str,
    "anonymous": _bool,
    "cors_origins": _words,
    "publish_origins": _words,
    "cookie_name": _str,
    "subscriptions": _bool,
    "heartbeat": _float,
    "write_timeout": _float,
    "dispatch_timeout": _float,
    "max_body_size": _int,
    "public_url": _str,
    "issuer": _str,
    "protocol": _protocol,
    "history_size": _int,
    "history_max_age": _float,
    "transport": _str,
    "data_dir": _str,
    "dev": _bool,
    "debug_ui": _bool,
    "max_matchers": _int,
    "max_matcher_length": _int,
    "max_topics": _int,
    "max_subscriber_buffer": _int,
    "max_connections": _int,
    "max_connections_per_client": _int,
    "metrics_listen": _str,
    "log_format": _str,
    "log_level": _str,
    "shutdown_timeout": _float,
    "websub_public_url": _str,
    "websub_allow_networks": _str_list,
}

#: Keys of one ``[[issuers]]`` table besides ``iss``.
_ISSUER_KEYS: dict[str, Callable[[Any], Any]] = {
    f"{role}_{what}": _str for role in ROLES for what in ("jwt_key", "jwt_alg", "jwks_url")
}

#: Environment variables and the setting each one sets.  An empty variable
#: counts as unset (Docker images often declare them empty).
ENVIRONMENT: dict[str, str] = {
    "MERCURE_PUBLISHER_JWT_KEY": "publisher_jwt_key",
    "MERCURE_PUBLISHER_JWT_ALG": "publisher_jwt_alg",
    "MERCURE_SUBSCRIBER_JWT_KEY": "subscriber_jwt_key",
    "MERCURE_SUBSCRIBER_JWT_ALG": "subscriber_jwt_alg",
    "MERCURE_TRANSPORT_URL": "transport",
    "MERCURE_DATA_DIR": "data_dir",
}

_KEY_VALUE_SETTINGS = frozenset(f"{role}_jwt_key" for role in ROLES)

_FLOAT_SETTINGS = ("heartbeat", "write_timeout", "dispatch_timeout", "history_max_age", "shutdown_timeout")
_INT_SETTINGS = (
    "history_size",
    "max_matchers",
    "max_matcher_length",
    "max_topics",
    "max_subscriber_buffer",
    "max_connections",
    "max_connections_per_client",
)


def _read(
    readers: Mapping[str, Callable[[Any], Any]],
    key: str,
    value: Any,
    name: str,
    where: str,
) -> Any:
    try:
        return readers[key](value)
    except TypeError as e:
        raise ConfigError(f"{name} in {where} must be {e}") from None


def _key_value(value: str, name: str, where: str, base: str | None) -> str:
    """Resolve ``@/path/key.pem`` to the file's text; other values are the key itself.

    A relative path is relative to ``base`` (the TOML file's folder) or to the
    working directory.  The trailing newline of a secret file written with
    ``echo`` is not part of the secret; PEM text is kept whole.
    """
    if not value.startswith("@"):
        return value
    path = value[1:]
    if base is not None and not os.path.isabs(path):
        path = os.path.join(base, path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"{name} in {where}: cannot read key file {path}: {reason}") from None
    if not text.lstrip().startswith("-----BEGIN"):
        text = text.rstrip("\r\n")
    if not text:
        raise ConfigError(f"{name} in {where}: key file {path} is empty")
    return text


# -- the layers --------------------------------------------------------------


def _from_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        if key not in SETTINGS:
            raise ConfigError(f"unknown option {flag}")
        value = _read(SETTINGS, key, value, flag, "the command line")
        if key in _KEY_VALUE_SETTINGS:
            value = _key_value(value, flag, "the command line", None)
        out[key] = value
    return out


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variable, key in ENVIRONMENT.items():
        value = environ.get(variable, "")
        if value == "":
            continue
        if key in _KEY_VALUE_SETTINGS:
            value = _key_value(value, variable, "the environment", None)
        out[key] = value
    return out


def _from_toml(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The flat settings of the file and its ``[[issuers]]`` tables."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML in {path}: {e}") from None
    base = os.path.dirname(os.path.abspath(path))

    out: dict[str, Any] = {}
    issuers: list[dict[str, Any]] = []
    for key, value in data.items():
        if key == "issuers":
            issuers = _issuer_tables(value, path, base)
            continue
        if key == "websub":
            out.update(_websub_table(value, path))
            continue
        if key not in SETTINGS:
            raise ConfigError(f"unknown key {key!r} in {path}")
        value = _read(SETTINGS, key, value, repr(key), path)
        if key in _KEY_VALUE_SETTINGS:
            value = _key_value(value, repr(key), path, base)
        out[key] = value
    return out, issuers


def _frozen(value: Any) -> Any:
    """A TOML value made read-only: tables as mapping proxies, arrays as tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _websub_table(value: Any, path: str) -> dict[str, Any]:
    """``[websub]``: ``public_url`` and ``allow_networks`` are settings like
    their flags; the rest is kept raw for ``websub_bridge.config``, which
    knows (and checks) every other key."""
    if not isinstance(value, dict):
        raise ConfigError(f"'websub' in {path} must be a table ([websub])")
    raw = dict(value)
    out: dict[str, Any] = {}
    for key, setting in (("public_url", "websub_public_url"), ("allow_networks", "websub_allow_networks")):
        if key in raw:
            out[setting] = _read(SETTINGS, setting, raw.pop(key), f"'websub.{key}'", path)
    out["websub"] = _frozen(raw)
    return out


def _issuer_tables(value: Any, path: str, base: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"'issuers' in {path} must be an array of tables ([[issuers]])")
    tables: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, table in enumerate(value):
        here = f"issuers[{i}]"
        out: dict[str, Any] = {}
        for key, item in table.items():
            name = f"'{here}.{key}'"
            if key == "iss":
                out["iss"] = _read({"iss": _str}, key, item, name, path)
                continue
            if key not in _ISSUER_KEYS:
                raise ConfigError(f"unknown key '{here}.{key}' in {path}")
            item = _read(_ISSUER_KEYS, key, item, name, path)
            if key.endswith("_jwt_key"):
                item = _key_value(item, name, path, base)
            out[key] = item
        iss = out.get("iss")
        if not iss:
            raise ConfigError(f"'{here}' in {path} needs an 'iss'")
        if iss in seen:
            raise ConfigError(f"issuer {iss!r} appears twice in {path}")
        seen.add(iss)
        if not any(k.endswith(("_jwt_key", "_jwks_url")) for k in out):
            raise ConfigError(f"'{here}' ({iss}) in {path} has no key and no JWKS URL")
        tables.append(out)
    return tables


# -- from merged settings to HubConfig -----------------------------------------


def _role_keys(settings: Mapping[str, Any], role: Role, issuer: str | None) -> list[KeySpec]:
    """The KeySpecs one role gets from ``{role}_jwt_key/_jwt_alg/_jwks_url``.

    The algorithm defaults to HS256 for a key; a JWKS URL without an explicit
    algorithm defaults to RS256 (an HMAC secret is never published in a JWKS).
    An algorithm without a key configures nothing (the Go hub's Docker image
    sets the ``*_ALG`` variables while the keys may come later).
    """
    key = settings.get(f"{role}_jwt_key")
    alg = settings.get(f"{role}_jwt_alg")
    jwks_url = settings.get(f"{role}_jwks_url")
    specs: list[KeySpec] = []
    if key is not None:
        specs.append(KeySpec(role=role, alg=alg or "HS256", key=key, issuer=issuer))
    if jwks_url is not None:
        specs.append(KeySpec(role=role, alg=alg or "RS256", jwks_url=jwks_url, issuer=issuer))
    return specs


def default_data_dir(environ: Mapping[str, str]) -> str:
    """Where ``twistd mercure`` keeps its files when ``data_dir`` is not set.

    systemd's ``StateDirectory=`` (``$STATE_DIRECTORY``) first, then the XDG
    data directory of the user running the hub: a sensible place that needs
    no root and survives reboots (unlike ``/tmp``).
    """
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return state
    base = environ.get("XDG_DATA_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "mercure-twisted")


def _build(settings: dict[str, Any], issuer_tables: list[dict[str, Any]]) -> HubConfig:
    dev = bool(settings.get("dev", False))
    if dev:
        for role in ROLES:
            if f"{role}_jwt_key" not in settings and f"{role}_jwks_url" not in settings:
                settings[f"{role}_jwt_key"] = DEV_JWT_SECRET
        for key, value in (
            ("anonymous", True),
            ("subscriptions", True),
            ("cors_origins", ("*",)),
            ("debug_ui", True),
        ):
            settings.setdefault(key, value)

    keys: list[KeySpec] = []
    for role in ROLES:
        keys.extend(_role_keys(settings, role, None))
    issuers: list[str] = []
    if "issuer" in settings:
        issuers.append(settings["issuer"])
    for table in issuer_tables:
        iss = table["iss"]
        if iss not in issuers:
            issuers.append(iss)
        for role in ROLES:
            keys.extend(_role_keys(table, role, iss))

    hub_fields = {a.name for a in attrs.fields(HubConfig)} - {"keys", "issuers"}
    fields: dict[str, Any] = {k: v for k, v in settings.items() if k in hub_fields}
    fields["keys"] = tuple(keys)
    fields["issuers"] = tuple(issuers)
    return HubConfig(**fields)


# -- validation ----------------------------------------------------------------


def _is_origin(origin: str) -> bool:
    if origin == "*":
        return True
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return (
        parts.scheme != ""
        and parts.hostname is not None
        and origin == f"{parts.scheme}://{parts.netloc}"
        and "@" not in parts.netloc
    )


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def validate(config: HubConfig) -> None:
    """Raise `ConfigError` (one line) for the first setting that cannot work."""
    if not config.listen:
        raise ConfigError("listen must name at least one endpoint")
    for endpoint in config.listen:
        if not endpoint.strip():
            raise ConfigError("listen: empty endpoint description")
    for name in _FLOAT_SETTINGS:
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a non-negative number of seconds, not {value!r}")
    for name in _INT_SETTINGS:
        value = getattr(config, name)
        if value < 0:
            raise ConfigError(f"{name} must be non-negative, not {value!r}")
    if config.max_body_size <= 0:
        raise ConfigError(f"max_body_size must be a positive number of bytes, not {config.max_body_size!r}")
    if config.protocol not in ("0", "1", "both"):
        raise ConfigError(f'protocol must be "0" (draft-07), "1" (draft-08) or "both", not {config.protocol!r}')
    if config.public_url is not None and not _is_http_url(config.public_url):
        raise ConfigError(f"public_url must be an absolute http(s) URL, not {config.public_url!r}")
    for name in ("cors_origins", "publish_origins"):
        for origin in getattr(config, name):
            if not _is_origin(origin):
                raise ConfigError(
                    f'{name}: {origin!r} is not "*" or an origin like https://example.com[:port]'
                )
    if config.cookie_name is not None and (
        not config.cookie_name
        or any(c in config.cookie_name for c in ' \t\r\n;,="()<>@:\\/[]?{}')
    ):
        raise ConfigError(f"cookie_name {config.cookie_name!r} is not a valid cookie name")
    if urlsplit(config.transport).scheme not in SUPPORTED_TRANSPORTS:
        raise ConfigError(
            f"unsupported transport {config.transport!r}: use one of "
            + ", ".join(scheme + "://" for scheme in SUPPORTED_TRANSPORTS)
        )
    for iss in config.issuers:
        if not iss:
            raise ConfigError("issuer must not be empty")
    if config.log_level not in LOG_LEVELS:
        raise ConfigError(
            f"log_level must be one of {', '.join(LOG_LEVELS)}, not {config.log_level!r}"
        )
    if config.log_format not in ("text", "json"):
        raise ConfigError(f'log_format must be "text" or "json", not {config.log_format!r}')
    if config.websub_public_url is not None and not _is_http_url(config.websub_public_url):
        raise ConfigError(
            f"websub_public_url must be an absolute http(s) URL, not {config.websub_public_url!r}"
        )
    if config.metrics_listen is not None and not config.metrics_listen.strip():
        raise ConfigError("metrics_listen: empty endpoint description")

    # Late import: auth imports config, and config re-exports load_config.
    from .auth import check_key_spec

    for spec in config.keys:
        who = spec.role + (f" key for issuer {spec.issuer!r}" if spec.issuer else " key")
        if spec.alg not in SUPPORTED_ALGORITHMS:
            raise ConfigError(
                f"{who}: unsupported algorithm {spec.alg!r} (supported: {', '.join(SUPPORTED_ALGORITHMS)})"
            )
        if spec.key is not None and spec.key == "":
            raise ConfigError(f"{who}: empty key")
        if spec.jwks_url is not None and not _is_http_url(spec.jwks_url):
            raise ConfigError(f"{who}: JWKS URL must be an absolute http(s) URL, not {spec.jwks_url!r}")
        check_key_spec(spec)


# -- entry point ---------------------------------------------------------------


def load_config(
    *,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    toml_path: str | None,
) -> HubConfig:
    """The validated configuration: defaults < TOML file < environment < flags.

    ``flags`` holds only the options actually given on the command line, by
    their names with underscores (``publisher_jwt_key``), with the same value
    types as the TOML file; ``environ`` is usually ``os.environ``.
    """
    settings: dict[str, Any] = {}
    issuer_tables: list[dict[str, Any]] = []
    if toml_path is not None:
        from_file, issuer_tables = _from_toml(toml_path)
        settings.update(from_file)
    settings.update(_from_environ(environ))
    settings.update(_from_flags(flags))
    if not settings.get("data_dir"):
        settings["data_dir"] = default_data_dir(environ)
    settings["data_dir"] = os.path.abspath(os.path.expanduser(settings["data_dir"]))
    # The embedded default: durable history in one SQLite file.
    settings.setdefault(
        "transport", "sqlite://" + os.path.join(settings["data_dir"], "mercure.db")
    )
    config = _build(settings, issuer_tables)
    validate(config)
    return config


# At the bottom, not the top: ``config`` re-exports ``load_config`` by
# importing this module at its end, so whichever of the two modules is
# imported first, the other finds every name it needs already defined.
from .config import (  # noqa: E402
    DEV_JWT_SECRET,
    SUPPORTED_ALGORITHMS,
    ConfigError,
    HubConfig,
    KeySpec,
    Role,
)
