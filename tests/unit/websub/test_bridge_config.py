"""websub_bridge.config: the [websub] settings validated into a BridgeConfig."""

from __future__ import annotations

import ipaddress
import pathlib
from typing import Any

import pytest

from mercure_twisted.config import ConfigError, HubConfig, load_config
from websub_bridge.config import BridgeConfig, FollowSpec, bridge_config


def load(tmp_path: pathlib.Path, toml: str, **flags: Any) -> HubConfig:
    path = tmp_path / "hub.toml"
    path.write_text(toml)
    return load_config(flags=flags, environ={}, toml_path=str(path))


def test_no_websub_settings_means_no_bridge() -> None:
    assert bridge_config(HubConfig()) is None


def test_a_full_table(tmp_path: pathlib.Path) -> None:
    config = load(tmp_path, """
[websub]
public_url = "https://hub.example.com/"
allow_networks = ["10.0.0.0/8", "fd00::/8"]
http_secret = true
max_body_size = 4096
request_timeout = 2.5
lease_seconds = 86400
max_seen_entries = 50
max_follows = 7

[[websub.follow]]
topic = "https://blog.example.com/feed"

[[websub.follow]]
topic = "https://news.example.com/atom"
mercure_topic = "https://app.example.com/news"
private = true
lease_seconds = 3600
mode = "entries"
""")
    assert bridge_config(config) == BridgeConfig(
        public_url="https://hub.example.com",
        allow_networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")),
        http_secret=True,
        max_body_size=4096,
        request_timeout=2.5,
        lease_seconds=86400,
        max_seen_entries=50,
        max_follows=7,
        follows=(
            FollowSpec(topic="https://blog.example.com/feed"),
            FollowSpec(
                topic="https://news.example.com/atom", mercure_topic="https://app.example.com/news",
                private=True, lease_seconds=3600, mode="entries",
            ),
        ),
    )


def test_flags_alone_configure_the_bridge() -> None:
    config = load_config(
        flags={"websub_public_url": "http://127.0.0.1:3000", "websub_allow_networks": ("127.0.0.0/8",)},
        environ={}, toml_path=None,
    )
    bridge = bridge_config(config)
    assert bridge is not None
    assert bridge.callback_base == "http://127.0.0.1:3000/websub/callback/"
    assert bridge.allow_networks == (ipaddress.ip_network("127.0.0.0/8"),)


def test_the_body_bound_never_exceeds_the_hubs(tmp_path: pathlib.Path) -> None:
    config = load(tmp_path, 'max_body_size = 1000\n[websub]\npublic_url = "http://h.example"\nmax_body_size = 5000\n')
    bridge = bridge_config(config)
    assert bridge is not None and bridge.max_body_size == 1000


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[websub]\nhttp_secret = true\n", "the WebSub bridge needs a public URL"),
        ('[websub]\npublic_url = "http://h.example"\ncolour = 1\n', "unknown key 'websub.colour'"),
        ('[websub]\npublic_url = "http://h.example"\nhttp_secret = "yes"\n', "'websub.http_secret' must be a boolean"),
        ('[websub]\npublic_url = "http://h.example"\nmax_body_size = 0\n', "'websub.max_body_size' must be a positive integer"),
        ('[websub]\npublic_url = "http://h.example"\nrequest_timeout = -1\n', "'websub.request_timeout' must be a positive number"),
        ('[websub]\npublic_url = "http://h.example"\nallow_networks = ["10.0.0.1/8"]\n', "host bits set"),
        ('[websub]\npublic_url = "http://h.example/?x=1"\n', "without query"),
        ('[websub]\npublic_url = "http://h.example"\nfollow = 3\n', "array of tables"),
        ('[websub]\npublic_url = "http://h.example"\n[[websub.follow]]\nmode = "entries"\n', "websub.follow[0] needs a 'topic'"),
        ('[websub]\npublic_url = "http://h.example"\n[[websub.follow]]\ntopic = "file:///etc/passwd"\n', "absolute http(s) URL"),
        ('[websub]\npublic_url = "http://h.example"\n[[websub.follow]]\ntopic = "http://a.example/"\nmode = "all"\n', "'mode' in websub.follow[0]"),
        ('[websub]\npublic_url = "http://h.example"\n[[websub.follow]]\ntopic = "http://a.example/"\nprivate = 1\n', "'private' in websub.follow[0] must be a boolean"),
        ('[websub]\npublic_url = "http://h.example"\n[[websub.follow]]\ntopic = "http://a.example/"\nlease_seconds = -1\n', "'lease_seconds' in websub.follow[0]"),
        ('[websub]\npublic_url = "http://h.example"\n[[websub.follow]]\ntopic = "http://a.example/"\nextra = 1\n', "unknown key 'extra' in websub.follow[0]"),
        ('[websub]\npublic_url = "http://h.example"\n[[websub.follow]]\ntopic = "http://a.example/"\n[[websub.follow]]\ntopic = "http://a.example/"\n', "followed twice"),
    ],
)
def test_settings_that_cannot_work_stop_the_start(tmp_path: pathlib.Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        bridge_config(load(tmp_path, toml))
    assert message in str(info.value)
    assert "\n" not in str(info.value)
