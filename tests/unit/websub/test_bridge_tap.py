"""``twistd websub-bridge``'s options: what it needs, what it refuses."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from mercure_twisted.tap import Options as HubOptions
from websub_bridge.service import BridgeService
from websub_bridge.tap import BridgeRoot, Options, makeService

KEY = "a-long-enough-secret-for-hs256-tokens!"
PUBLISHER = jwt.encode({"mercure": {"publish": ["*"]}}, KEY, algorithm="HS256")
BASE = ["--mercure-url", "http://127.0.0.1:3000/.well-known/mercure",
        "--websub-public-url", "https://bridge.example"]


def parse(args: list[str], environ: dict[str, str] | None = None, toml: str | None = None,
          tmp_path: Path | None = None) -> Options:
    options = Options(environ={"WEBSUB_BRIDGE_PUBLISHER_TOKEN": PUBLISHER} if environ is None else environ)
    if toml is not None:
        assert tmp_path is not None
        path = tmp_path / "bridge.toml"
        path.write_text(toml)
        args = ["--config", str(path), *args]
    options.parseOptions(args)
    return options


def test_defaults_and_the_service_tree(tmp_path: Path) -> None:
    options = parse([*BASE, "--data-dir", str(tmp_path)])
    assert options["hub_config"].listen == ("tcp:8090",)
    assert options["upstream"].publisher_token == PUBLISHER
    assert PUBLISHER not in repr(options["upstream"])
    top = makeService(options, reactor=MemoryReactorClock())
    services = list(top)
    bridges = [s for s in services if isinstance(s, BridgeService)]
    assert len(bridges) == 1 and bridges[0].hub_role is None
    # Stopped in reverse order: the HTTP port closes after the bridge stopped.
    closer = next(s for s in services if type(s).__name__ == "_PortCloser")
    assert services.index(closer) < services.index(bridges[0])


def test_the_default_data_dir_is_apart_from_the_hubs(tmp_path: Path) -> None:
    options = parse(BASE, environ={"WEBSUB_BRIDGE_PUBLISHER_TOKEN": PUBLISHER, "STATE_DIRECTORY": str(tmp_path)})
    assert options["hub_config"].data_dir == str(tmp_path / "websub-bridge")


def test_the_hub_role_from_toml_and_a_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "publisher.jwt"
    token_file.write_text(PUBLISHER + "\n")
    toml = (
        f'publisher_jwt_key = "{KEY}"\n'
        "[websub]\npublic_url = \"https://bridge.example\"\n"
        f'[websub.mercure]\nurl = "http://hub.internal/.well-known/mercure"\npublisher_token = "@{token_file}"\n'
        '[websub.hub]\ntopics = ["https://example.com/{x}"]\n'
    )
    options = parse(["--data-dir", str(tmp_path)], environ={}, toml=toml, tmp_path=tmp_path)
    assert options["upstream"].url == "http://hub.internal/.well-known/mercure"
    assert options["upstream"].publisher_token == PUBLISHER
    top = makeService(options, reactor=MemoryReactorClock())
    (bridge,) = [s for s in top if isinstance(s, BridgeService)]
    assert bridge.hub_role is not None and bridge.hub_role.url == "https://bridge.example/websub/hub"


@pytest.mark.parametrize(
    ("args", "environ", "message"),
    [
        (["--websub-public-url", "https://b.example"], {"WEBSUB_BRIDGE_PUBLISHER_TOKEN": PUBLISHER}, "Mercure hub's URL"),
        (BASE, {}, "needs a publisher token"),
        (["--mercure-url", "http://h/.well-known/mercure"], {"WEBSUB_BRIDGE_PUBLISHER_TOKEN": PUBLISHER}, "public URL"),
        (BASE, {"WEBSUB_BRIDGE_PUBLISHER_TOKEN": PUBLISHER,
                "WEBSUB_BRIDGE_SUBSCRIBER_TOKEN": jwt.encode({"mercure": {"subscribe": ["*"]}}, KEY)},
         "private updates"),
        (BASE, {"WEBSUB_BRIDGE_PUBLISHER_TOKEN": PUBLISHER, "WEBSUB_BRIDGE_SUBSCRIBER_TOKEN": "not-a-jwt"},
         "not a readable JWT"),
        (BASE, {"WEBSUB_BRIDGE_PUBLISHER_TOKEN": "two words"}, "not a token"),
    ],
)
def test_what_the_bridge_cannot_start_without(args: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse(args, environ=environ)


def test_a_setting_of_the_hub_itself_is_refused(tmp_path: Path) -> None:
    with pytest.raises(usage.UsageError, match="heartbeat is a setting of the Mercure hub"):
        parse(BASE, toml="heartbeat = 5\n", tmp_path=tmp_path)


def test_twistd_mercure_refuses_the_standalone_table(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[websub]\npublic_url = "https://h.example"\n[websub.mercure]\nurl = "http://x/"\n')
    with pytest.raises(usage.UsageError, match="standalone bridge"):
        HubOptions(environ={}).parseOptions(["--config", str(path)])


def test_the_root_routes_by_the_longest_prefix() -> None:
    from twisted.web.resource import Resource
    from twisted.web.test.requesthelper import DummyRequest

    class Named(Resource):
        isLeaf = True

        def __init__(self, name: bytes) -> None:
            super().__init__()
            self.name = name

        def render(self, request: object) -> bytes:
            return self.name

    root = BridgeRoot({"/websub": Named(b"follow"), "/websub/hub": Named(b"hub")})

    def get(path: bytes) -> tuple[int, bytes]:
        request = DummyRequest(path.lstrip(b"/").split(b"/"))
        request.path = path
        body = root.render(request)
        return request.responseCode or 200, body

    assert get(b"/websub/hub") == (200, b"hub")
    assert get(b"/websub/follows") == (200, b"follow")
    assert get(b"/websubx")[0] == 404
    assert get(b"/healthz") == (200, b"ok\n")
