"""metrics_listen, log_format and shutdown_timeout: flags, TOML, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.python import usage

from mercure_twisted.config import ConfigError, HubConfig, load_config
from mercure_twisted.tap import Options


def parse(*argv: str) -> HubConfig:
    options = Options(environ={})
    options.parseOptions(list(argv))
    return options.hub_config


def test_defaults() -> None:
    config = HubConfig()
    assert (config.metrics_listen, config.log_format, config.shutdown_timeout) == (None, "text", 10.0)


def test_flags() -> None:
    config = parse("--metrics-listen", "tcp:9100:interface=127.0.0.1", "--log-format", "json",
                   "--shutdown-timeout", "2.5")
    assert config.metrics_listen == "tcp:9100:interface=127.0.0.1"
    assert config.log_format == "json"
    assert config.shutdown_timeout == 2.5


def test_toml(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('metrics_listen = "tcp:9100"\nlog_format = "json"\nshutdown_timeout = 30\n')
    config = load_config(flags={}, environ={}, toml_path=str(path))
    assert (config.metrics_listen, config.log_format, config.shutdown_timeout) == ("tcp:9100", "json", 30.0)
    # A flag wins over the file.
    config = load_config(flags={"log_format": "text"}, environ={}, toml_path=str(path))
    assert config.log_format == "text"


@pytest.mark.parametrize("argv", [
    ("--log-format", "xml"),
    ("--shutdown-timeout", "-1"),
    ("--shutdown-timeout", "soon"),
])
def test_bad_flags_stop_the_start(argv: tuple[str, ...]) -> None:
    with pytest.raises(usage.UsageError):
        parse(*argv)


@pytest.mark.parametrize("text, message", [
    ('log_format = "xml"', 'log_format must be "text" or "json"'),
    ("log_format = 1", "'log_format' in"),
    ('metrics_listen = " "', "metrics_listen: empty endpoint"),
    ("shutdown_timeout = -3", "shutdown_timeout must be a non-negative number"),
])
def test_bad_toml_stops_the_start(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(flags={}, environ={}, toml_path=str(path))


def test_help_lists_them() -> None:
    text = str(Options(environ={}))
    for flag in ("--metrics-listen", "--log-format", "--shutdown-timeout"):
        assert flag in text


def test_log_level_flag_toml_and_validation(tmp_path: Path) -> None:
    assert parse().log_level == "info"
    assert parse("--log-level", "debug").log_level == "debug"
    path = tmp_path / "c.toml"
    path.write_text('log_level = "warn"\n')
    assert load_config(flags={}, environ={}, toml_path=str(path)).log_level == "warn"
    path.write_text('log_level = "loud"\n')
    with pytest.raises(ConfigError, match="log_level must be one of debug, info"):
        load_config(flags={}, environ={}, toml_path=str(path))
