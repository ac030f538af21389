"""conf/mercure.service and conf/nginx-mercure.conf say what the hub accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from mercure_twisted.config import HubConfig
from mercure_twisted.tap import Options

CONF = Path(__file__).resolve().parents[2] / "conf"


def exec_start() -> list[str]:
    text = (CONF / "mercure.service").read_text()
    match = re.search(r"^ExecStart=(.*?)(?<!\\)$", text.replace("\\\n", " "), re.M)
    assert match is not None
    return shlex.split(match.group(1))


def test_the_systemd_command_line_parses() -> None:
    argv = exec_start()
    assert argv[1:4] == ["--nodaemon", "--pidfile=", "mercure"]
    flags = argv[4:]
    flags[flags.index("--config") + 1] = str(CONF / "production.toml")
    options = Options(environ={"MERCURE_PUBLISHER_JWT_KEY": "k" * 32})
    options.parseOptions(flags)
    config = options.hub_config
    assert config.log_format == "json"
    assert config.metrics_listen == "tcp:9100:interface=127.0.0.1"


def test_systemd_waits_longer_than_the_hub_drains() -> None:
    text = (CONF / "mercure.service").read_text()
    stop = int(re.search(r"^TimeoutStopSec=(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    assert stop > HubConfig().shutdown_timeout
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text


def test_nginx_never_buffers_or_times_out_a_stream_first() -> None:
    text = (CONF / "nginx-mercure.conf").read_text()
    assert "proxy_buffering off;" in text
    assert "proxy_http_version 1.1;" in text
    read = int(re.search(r"proxy_read_timeout (\d+)s;", text).group(1))  # type: ignore[union-attr]
    assert read > HubConfig().write_timeout
