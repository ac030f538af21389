"""``[websub.hub]`` validated into a HubRoleConfig: defaults, selectors, and
one clear line for every setting that cannot work."""

from __future__ import annotations

import pathlib

import pytest

from mercure_twisted.config import ConfigError, HubConfig, load_config
from websub_bridge.config import bridge_config
from websub_bridge.hub._config import HubRoleConfig, hub_role_config


def load(tmp_path: pathlib.Path, hub_table: str) -> HubConfig:
    path = tmp_path / "hub.toml"
    path.write_text('[websub]\npublic_url = "https://hub.example.com"\n' + hub_table)
    return load_config(flags={}, environ={}, toml_path=str(path))


def test_no_hub_table_offers_nothing(tmp_path: pathlib.Path) -> None:
    bridge = bridge_config(load(tmp_path, ""))
    assert bridge is not None and bridge.hub is None


def test_selectors_with_their_content_types_and_the_defaults(tmp_path: pathlib.Path) -> None:
    bridge = bridge_config(load(tmp_path, """
[websub.hub]
topics = [
  "https://app.example/books/{id}",
  { selector = "https://app.example/feed", content_type = "application/atom+xml" },
]
"""))
    assert bridge is not None and bridge.hub is not None
    hub: HubRoleConfig = bridge.hub
    offered = hub.offered("https://app.example/books/7")
    assert offered is not None and offered.content_type == "application/json"
    feed = hub.offered("https://app.example/feed")
    assert feed is not None and feed.content_type == "application/atom+xml"
    assert hub.offered("https://app.example/private") is None
    assert (hub.lease_seconds, hub.min_lease_seconds, hub.max_lease_seconds) == (864000, 3600, 2592000)
    assert hub.signature_algorithm == "sha256"
    assert not hub.may_be_pinged("https://app.example/feed")


def test_publish_topics_are_their_own_list() -> None:
    hub = hub_role_config({"topics": ["https://a.example/x"], "publish_topics": ["https://a.example/{p}"]})
    assert hub is not None and hub.may_be_pinged("https://a.example/anything")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "offers no topic"),
        ({"topics": "https://a.example"}, "must be an array"),
        ({"topics": [""]}, "non-empty 'selector'"),
        ({"topics": [{"selector": "x", "type": "y"}]}, "unknown key 'type'"),
        ({"topics": [{"selector": "x", "content_type": "json"}]}, "media type"),
        ({"topics": ["x"], "signature_algorithm": "md5"}, "must be one of sha1, sha256"),
        ({"topics": ["x"], "lease_seconds": 10}, "min_lease_seconds <= lease_seconds"),
        ({"topics": ["x"], "max_lease_seconds": 0}, "positive integer"),
        ({"topics": ["x"], "rate_per_host": float("nan")}, "positive number"),
        ({"topics": ["x"], "concurency_per_host": 4}, "unknown key 'websub.hub.concurency_per_host'"),
        ("yes", "must be a table"),
    ],
)
def test_settings_that_cannot_work_stop_the_start(table: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        hub_role_config(table)


def test_sha1_stays_available_for_old_subscribers() -> None:
    hub = hub_role_config({"topics": ["x"], "signature_algorithm": "sha1"})
    assert hub is not None and hub.signature_algorithm == "sha1"
