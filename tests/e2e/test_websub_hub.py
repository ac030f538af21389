"""The bridge's WebSub hub role, end to end, against subscribers nobody here wrote.

``twistd mercure`` with ``[websub.hub]`` answers ``POST <public>/websub/hub``
(W3C WebSub sections 5-8).  Two third-party subscribers, each in its own
process on loopback, subscribe to an offered Mercure topic with a secret:

* Flask-WebSub's client (``websub_subscriber_app.py``).  It refuses to send a
  secret to an ``http://`` hub (section 5.1: a secret SHOULD only travel over
  HTTPS), so its hub is the bridge's TLS listener (a test CA made here,
  trusted with ``REQUESTS_CA_BUNDLE``); it checks ``X-Hub-Signature`` itself,
  with the default ``sha256``.
* npm ``pubsubhubbub`` 1.0.2 (``pubsubhubbub_subscriber.js``, installed at
  test time into the git-ignored ``tests/e2e/.node/``), an old PubSubHubbub
  0.4 client, over plain HTTP; it checks the signature with whichever
  algorithm the header names, and here the hub is configured with ``sha1``,
  the 0.4 algorithm.  It sends the hub ``HMAC-SHA1(secret, topic)`` as
  ``hub.secret`` but verifies with the raw secret (its issue #9); the runner
  works around that, so the test's own HMAC check uses the derived secret.

A public update published to Mercure reaches each with the exact body, the
configured content type, ``Link`` rel=hub and rel=self (section 7) and a
signature (section 8) the subscriber and the test both check; private
updates and updates to other topics never do; after a verified
unsubscription nothing more arrives.  A subscription to a topic not offered
is denied (section 5.2), a renewal replaces rather than adds, and the
hub's log (both subscribers on one hub, ``sha512``) holds neither a secret
nor a capability (callback path or query, challenge) nor a traceback.  A
subscription a third party forges for a Flask-WebSub callback fails its
verification of intent (section 5.3) and is never honoured, and its
failure is logged without the callback's path.

The hub's only observable sign that it stored a verified (un)subscription is
its log line (``websub hub: subscribe of TOPIC for ORIGIN verified``): a
subscriber reports the verification while it answers it, a moment before the
hub records it, so the tests wait for both before they publish.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.certs import CertAuthority

from ._support import KEY_FLAGS, HubProcess, _die_with_parent, draft07_token, free_port, until
from .conftest import StartHub

pytestmark = pytest.mark.e2e

WAIT = 20.0
#: How long a delivery that must not happen is given to happen anyway, after
#: a positive control (a delivery published later or alongside) arrived.
QUIET = 2.0

HERE = Path(__file__).parent
FLASK_APP = HERE / "websub_subscriber_app.py"
NODE_APP = HERE / "pubsubhubbub_subscriber.js"
NODE_DIR = HERE / ".node"
PUBSUBHUBBUB_VERSION = "1.0.2"

BOOK = "https://example.com/books/1"  # offered by the template selector
OTHER_BOOK = "https://example.com/books/2"  # offered, but nobody subscribes
NEWS = "https://example.com/news"  # offered exactly
NOT_OFFERED = "https://example.com/elsewhere"
BOOK_TYPE = "application/ld+json"  # configured for the books; the news get application/json


def hmac_hex(algorithm: str, key: str, body: bytes) -> str:
    return hmac.new(key.encode("utf-8"), body, getattr(hashlib, algorithm)).hexdigest()


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Attached:
    """A subscriber process whose log is attached to a failed test's report."""

    port: int
    log_path: Path
    title: str

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no log: {e})"


def attach(request: pytest.FixtureRequest, process: Attached) -> None:
    request.node.__dict__.setdefault("_websub_subscribers", []).append(process)


class _SubscriberLogs:
    """Like the conftest's hub logs: each subscriber's log on a failed report."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed:
            for process in getattr(item, "_websub_subscribers", []):
                report.sections.append((f"{process.title} log ({report.when})", process.log()))
        return report


@pytest.fixture(scope="module", autouse=True)
def _subscriber_logs(pytestconfig: pytest.Config) -> Iterator[None]:
    plugin = _SubscriberLogs()
    pytestconfig.pluginmanager.register(plugin, "websub-hub-subscriber-logs")
    try:
        yield
    finally:
        pytestconfig.pluginmanager.unregister(plugin)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# -- the hub ------------------------------------------------------------------


class WebSubHub:
    """``twistd mercure`` with ``[websub.hub]``, plain HTTP and optionally TLS."""

    def __init__(self, process: HubProcess, public: str) -> None:
        self.process = process
        self.public = public
        self.hub_url = public + "/websub/hub"
        self._publisher = httpx.Client(
            headers={"Authorization": f"Bearer {draft07_token(publish=['*'])}"}, timeout=5
        )

    def publish(self, topic: str, data: str, *, private: bool = False) -> str:
        form = {"topic": topic, "data": data}
        if private:
            form["private"] = "on"
        response = self._publisher.post(self.process.url, data=form)
        assert response.status_code == 200, response.text
        return response.text

    def verified(self, mode: str, topic: str, origin: str) -> int:
        """How many (un)subscriptions of ``topic`` for ``origin`` the hub logged as verified."""
        line = re.compile(
            rf"websub hub: {mode} of {re.escape(topic)} for {re.escape(origin)} verified"
        )
        return len(line.findall(self.process.log()))

    def wait_verified(self, mode: str, topic: str, origin: str, count: int = 1) -> None:
        until(lambda: self.verified(mode, topic, origin) >= count,
              f"the hub to record {count} verified {mode} of {topic} for {origin}",
              context=self.process.log)

    def close(self) -> None:
        self._publisher.close()


def start_websub_hub(
    start_hub: StartHub, tmp_path: Path, *, algorithm: str | None, ca: CertAuthority | None = None,
) -> WebSubHub:
    config = tmp_path / "hub-role.toml"
    config.write_text(
        "[websub]\n"
        "[websub.hub]\n"
        # The books with a content type of their own, the news with the default.
        "topics = [\n"
        f'  {{ selector = "https://example.com/books/{{id}}", content_type = "{BOOK_TYPE}" }},\n'
        f'  "{NEWS}",\n'
        "]\n"
        + (f'signature_algorithm = "{algorithm}"\n' if algorithm else "")
    )
    port = free_port()
    flags: list[str] = [*KEY_FLAGS, "--config", str(config), "--websub-allow-network", "127.0.0.0/8"]
    if ca is None:
        public = f"http://127.0.0.1:{port}"
    else:
        leaf = ca.leaf("hub")
        tls_port = free_port()
        flags += ["--listen", f"ssl:{tls_port}:interface=127.0.0.1:privateKey={leaf.key}:certKey={leaf.cert}"]
        public = f"https://127.0.0.1:{tls_port}"
    return WebSubHub(start_hub(*flags, "--websub-public-url", public, port=port), public)


@pytest.fixture
def websub_hubs() -> Iterator[list[WebSubHub]]:
    hubs: list[WebSubHub] = []
    yield hubs
    for hub in hubs:
        hub.close()


# -- Flask-WebSub's subscriber ------------------------------------------------


class FlaskSubscriber(Attached):
    """``websub_subscriber_app.py`` in a subprocess on a loopback port."""

    def __init__(self, tmp_path: Path, ca: CertAuthority, name: str = "flask-subscriber") -> None:
        self.port = free_port()
        self.title = f"Flask-WebSub subscriber on port {self.port}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "REQUESTS_CA_BUNDLE": str(ca.path)}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(FLASK_APP), str(self.port), str(tmp_path / f"{name}.db")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=str(tmp_path), env=env,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        self.api = httpx.Client(base_url=self.base, timeout=30)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the Flask-WebSub subscriber exited:\n{self.log()}")
            return listening(self.port)

        until(up, "the Flask-WebSub subscriber to listen")

    def subscribe(self, topic: str, hub_url: str, **options: Any) -> str:
        response = self.api.post(
            "/control/subscribe", json={"topic_url": topic, "hub_url": hub_url, **options}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["callback_id"])

    def renew(self, callback_id: str) -> None:
        response = self.api.post("/control/renew", json={"callback_id": callback_id})
        assert response.status_code == 200, response.text

    def unsubscribe(self, callback_id: str) -> None:
        response = self.api.post("/control/unsubscribe", json={"callback_id": callback_id})
        assert response.status_code == 200, response.text

    def events(self) -> dict[str, list[dict[str, Any]]]:
        response = self.api.get("/control/events")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def of(self, kind: str, callback_id: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e for e in self.events()[kind]
            if e.get("callback_id", "") == callback_id
            and all(e.get(k) == v for k, v in match.items())
        ]

    def posts_to(self, callback_id: str) -> list[dict[str, Any]]:
        """Every POST the hub made to this callback, whatever Flask-WebSub did with it."""
        return [
            r for r in self.events()["requests"]
            if r["method"] == "POST" and r["path"] == f"/callbacks/{callback_id}"
        ]

    def describe(self) -> str:
        return json.dumps(self.events(), indent=1)[:20000]

    def stop(self) -> None:
        self.api.close()
        stop_process(self.proc)


@pytest.fixture
def flask_subscribers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[CertAuthority], FlaskSubscriber]]:
    started: list[FlaskSubscriber] = []

    def start(ca: CertAuthority) -> FlaskSubscriber:
        subscriber = FlaskSubscriber(tmp_path, ca, name=f"flask-subscriber-{len(started)}")
        started.append(subscriber)
        attach(request, subscriber)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.stop()


# -- npm pubsubhubbub -----------------------------------------------------------


@pytest.fixture(scope="session")
def pubsubhubbub_modules() -> Path:
    """``tests/e2e/.node/node_modules`` holding pubsubhubbub at the pinned version."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the npm pubsubhubbub subscriber")
    modules = NODE_DIR / "node_modules"
    manifest = modules / "pubsubhubbub" / "package.json"

    def installed() -> bool:
        try:
            return bool(json.loads(manifest.read_text())["version"] == PUBSUBHUBBUB_VERSION)
        except (OSError, ValueError, KeyError):
            return False

    if not installed():
        NODE_DIR.mkdir(exist_ok=True)
        try:
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(NODE_DIR),
                 f"pubsubhubbub@{PUBSUBHUBBUB_VERSION}"],
                capture_output=True, text=True, timeout=180, cwd=str(NODE_DIR),
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm install pubsubhubbub took more than 180 s")
        if done.returncode != 0 or not installed():
            pytest.skip(f"npm install pubsubhubbub@{PUBSUBHUBBUB_VERSION} failed:\n{done.stderr[-2000:]}")
    return modules


class NodeSubscriber(Attached):
    """``pubsubhubbub_subscriber.js``: commands on stdin, JSON events on stdout."""

    def __init__(self, modules: Path, tmp_path: Path, secret: str | None,
                 ca: CertAuthority | None = None, name: str = "pubsubhubbub") -> None:
        self.port = free_port()
        self.title = f"npm pubsubhubbub subscriber on port {self.port}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"{name}.log"
        self.secret = secret
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        env = {**os.environ, "NODE_PATH": str(modules)}
        if ca is not None:
            env["NODE_EXTRA_CA_CERTS"] = str(ca.path)
        self._stderr = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["node", str(NODE_APP), str(self.port), *([secret] if secret else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            cwd=str(tmp_path), env=env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the pubsubhubbub subscriber exited:\n{self.log()}")
            return bool(self.of("listen"))

        until(up, "the pubsubhubbub subscriber to listen", context=self.describe)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"event": "unparsed", "line": raw.decode("utf-8", "replace")}
            with self._lock:
                self._events.append(event)
            with open(self.log_path, "ab") as log:
                log.write(raw)

    def command(self, cmd: str, topic: str, hub_url: str, callback: str | None = None) -> None:
        assert self.proc.stdin is not None
        line: dict[str, Any] = {"cmd": cmd, "topic": topic, "hub": hub_url}
        if callback is not None:
            line["callback"] = callback
        self.proc.stdin.write((json.dumps(line) + "\n").encode())
        self.proc.stdin.flush()

    def callback_for(self, path: str, topic: str, hub_url: str) -> str:
        """A callback URL the package handles: the topic and hub in its query."""
        query = urllib.parse.urlencode({"topic": topic, "hub": hub_url})
        return f"{self.base}{path}?{query}"

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [
                e for e in self._events
                if e["event"] == kind and all(e.get(k) == v for k, v in match.items())
            ]

    def feeds_to(self, path: str) -> list[dict[str, Any]]:
        return [e for e in self.of("feed") if urllib.parse.urlsplit(e["callback"]).path == path]

    def posts_to(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.of("request", method="POST") if urllib.parse.urlsplit(r["url"]).path == path]

    def describe(self) -> str:
        with self._lock:
            return "\n".join(json.dumps(e) for e in self._events)[-20000:]

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()  # the runner exits when stdin closes
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
        self._reader.join(timeout=5)
        self._stderr.close()


@pytest.fixture
def node_subscribers(
    request: pytest.FixtureRequest, tmp_path: Path, pubsubhubbub_modules: Path
) -> Iterator[Callable[..., NodeSubscriber]]:
    started: list[NodeSubscriber] = []

    def start(secret: str | None, ca: CertAuthority | None = None) -> NodeSubscriber:
        subscriber = NodeSubscriber(pubsubhubbub_modules, tmp_path, secret, ca,
                                    name=f"pubsubhubbub-{len(started)}")
        started.append(subscriber)
        attach(request, subscriber)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.stop()


# -- shared checks ----------------------------------------------------------------


def assert_distribution(headers: dict[str, str], body: bytes, *, data: str, hub_url: str,
                        topic: str, content_type: str, algorithm: str, secret: str) -> None:
    """One content distribution request as sections 7 and 8 want it."""
    h = {k.lower(): v for k, v in headers.items()}
    assert body == data.encode("utf-8")
    assert h["content-type"] == content_type
    assert h["link"] == f'<{hub_url}>; rel="hub", <{topic}>; rel="self"'
    assert h["x-hub-signature"] == f"{algorithm}={hmac_hex(algorithm, secret, body)}"


# -- Flask-WebSub -------------------------------------------------------------------


def test_flask_websub_gets_only_offered_public_updates_signed_until_it_unsubscribes(
    start_hub: StartHub, websub_hubs: list[WebSubHub],
    flask_subscribers: Callable[[CertAuthority], FlaskSubscriber], tmp_path: Path,
) -> None:
    ca = CertAuthority(tmp_path)
    hub = start_websub_hub(start_hub, tmp_path, algorithm=None, ca=ca)  # sha256 by default
    websub_hubs.append(hub)
    flask = flask_subscribers(ca)
    secret, control_secret = "flask-first-secret-0123456789", "flask-control-secret-9876543210"

    # Two callbacks on the same topic: the second is the positive control
    # that shows a publish went out after the first unsubscribed.
    first = flask.subscribe(BOOK, hub.hub_url, secret=secret, lease_seconds=7200)
    control = flask.subscribe(BOOK, hub.hub_url, secret=control_secret)
    for callback_id in (first, control):
        until(lambda: flask.of("successes", callback_id, mode="subscribe", topic=BOOK),
              f"Flask-WebSub to confirm the subscription {callback_id}", context=flask.describe)
    hub.wait_verified("subscribe", BOOK, flask.base, count=2)

    # Section 5.1: a renewal (the same topic and callback again) replaces the
    # subscription; were it added, the first callback would get two copies.
    flask.renew(first)
    until(lambda: len(flask.of("successes", first, mode="subscribe")) == 2,
          "Flask-WebSub to confirm the renewal", context=flask.describe)
    hub.wait_verified("subscribe", BOOK, flask.base, count=3)

    # Section 5.3: the verification carries the granted lease, the
    # subscriber's wish when within the hub's bounds, else the default.
    leases = [
        (r["path"].rsplit("/", 1)[1], dict(r["query"]).get("hub.lease_seconds"))
        for r in flask.events()["requests"] if r["method"] == "GET"
    ]
    assert sorted(leases) == sorted([(first, "7200"), (control, str(10 * 86_400)), (first, "7200")])

    # Published first: a private update, one to an offered topic nobody
    # subscribed to, one to a topic not offered.  Then the public one.
    hub.publish(BOOK, '{"secret": "private"}', private=True)
    hub.publish(OTHER_BOOK, '{"other": "book"}')
    hub.publish(NOT_OFFERED, '{"not": "offered"}')
    data = '{"title": "Dune — Frank Herbert", "tags": ["sf", "épopée"]}'
    hub.publish(BOOK, data)

    for callback_id, key in ((first, secret), (control, control_secret)):
        (note,) = until(lambda: flask.of("notifications", callback_id),
                        f"the update at {callback_id}", context=flask.describe)
        assert note["topic"] == BOOK
        assert_distribution(
            note["headers"], base64.b64decode(note["body_b64"]), data=data, hub_url=hub.hub_url,
            topic=BOOK, content_type=BOOK_TYPE, algorithm="sha256", secret=key,
        )
    time.sleep(QUIET)  # anything published before it would have arrived by now
    for callback_id in (first, control):
        assert len(flask.of("notifications", callback_id)) == 1, flask.describe()
        assert len(flask.posts_to(callback_id)) == 1, flask.describe()
    assert flask.events()["errors"] == []

    # Unsubscribe the first: once verified, nothing more reaches it.
    flask.unsubscribe(first)
    until(lambda: flask.of("successes", first, mode="unsubscribe", topic=BOOK),
          "Flask-WebSub to confirm the unsubscription", context=flask.describe)
    hub.wait_verified("unsubscribe", BOOK, flask.base)
    later = '{"title": "Dune Messiah"}'
    hub.publish(BOOK, later)
    until(lambda: len(flask.of("notifications", control)) == 2, "the later update at the control",
          context=flask.describe)
    assert base64.b64decode(flask.of("notifications", control)[1]["body_b64"]) == later.encode()
    time.sleep(QUIET)
    assert len(flask.posts_to(first)) == 1, flask.describe()  # only the one from before
    assert "Traceback" not in hub.process.log()


def test_flask_websub_is_denied_a_topic_not_offered(
    start_hub: StartHub, websub_hubs: list[WebSubHub],
    flask_subscribers: Callable[[CertAuthority], FlaskSubscriber], tmp_path: Path,
) -> None:
    ca = CertAuthority(tmp_path)
    hub = start_websub_hub(start_hub, tmp_path, algorithm=None, ca=ca)
    websub_hubs.append(hub)
    flask = flask_subscribers(ca)
    denied = flask.subscribe(NOT_OFFERED, hub.hub_url, secret="flask-denied-secret-0123")  # 202 first
    (error,) = until(lambda: flask.of("errors", denied), "Flask-WebSub to report the denial",
                     context=flask.describe)
    assert error["topic"] == NOT_OFFERED
    assert error["reason"] == "this hub does not offer that topic"
    (verification,) = [r for r in flask.events()["requests"] if r["method"] == "GET"]
    assert dict(verification["query"])["hub.mode"] == "denied"
    assert dict(verification["query"])["hub.topic"] == NOT_OFFERED
    assert flask.events()["successes"] == []

    # Nothing was stored: an update to that topic goes nowhere, while a
    # subscription to an offered topic (the positive control) does work.
    control = flask.subscribe(NEWS, hub.hub_url, secret="flask-control-secret-0123")
    hub.wait_verified("subscribe", NEWS, flask.base)
    hub.publish(NOT_OFFERED, "not offered")
    hub.publish(NEWS, "offered")
    until(lambda: flask.of("notifications", control), "the control's update", context=flask.describe)
    time.sleep(QUIET)
    assert flask.posts_to(denied) == []
    assert hub.verified("subscribe", NOT_OFFERED, flask.base) == 0


# -- npm pubsubhubbub -----------------------------------------------------------------


def test_pubsubhubbub_gets_only_offered_public_updates_sha1_signed_until_it_unsubscribes(
    start_hub: StartHub, websub_hubs: list[WebSubHub],
    node_subscribers: Callable[..., NodeSubscriber], tmp_path: Path,
) -> None:
    hub = start_websub_hub(start_hub, tmp_path, algorithm="sha1")  # plain HTTP
    websub_hubs.append(hub)
    raw_secret = "pubsubhubbub-raw-secret-0123456789"
    node = node_subscribers(raw_secret)
    # What the package sends as hub.secret (see pubsubhubbub_subscriber.js).
    secret = hmac_hex("sha1", raw_secret, NEWS.encode())

    node.command("subscribe", NEWS, hub.hub_url)  # its default callback, /callback?topic=..&hub=..
    control = node.callback_for("/control", NEWS, hub.hub_url)
    node.command("subscribe", NEWS, hub.hub_url, callback=control)
    until(lambda: len(node.of("subscribe", topic=NEWS)) == 2, "pubsubhubbub to confirm both",
          context=node.describe)
    hub.wait_verified("subscribe", NEWS, node.base, count=2)
    assert node.of("denied") == []

    hub.publish(NEWS, '{"secret": "private"}', private=True)
    hub.publish(OTHER_BOOK, '{"other": "book"}')
    hub.publish(NOT_OFFERED, '{"not": "offered"}')
    data = '{"headline": "Ünïcode and \\"quotes\\"", "n": 1}'
    hub.publish(NEWS, data)

    for path in ("/callback", "/control"):
        (feed,) = until(lambda: node.feeds_to(path), f"the update at {path}", context=node.describe)
        assert feed["topic"] == NEWS  # from the callback's query, which the hub kept (5.3, 7)
        assert feed["hub"] == hub.hub_url  # the package reads the first Link value: rel=hub
        assert_distribution(
            feed["headers"], base64.b64decode(feed["body_b64"]), data=data, hub_url=hub.hub_url,
            topic=NEWS, content_type="application/json", algorithm="sha1", secret=secret,
        )
    time.sleep(QUIET)
    for path in ("/callback", "/control"):
        assert len(node.feeds_to(path)) == 1, node.describe()
        assert len(node.posts_to(path)) == 1, node.describe()  # nothing unsigned or missigned either

    node.command("unsubscribe", NEWS, hub.hub_url)
    until(lambda: node.of("unsubscribe", topic=NEWS), "pubsubhubbub to confirm the unsubscription",
          context=node.describe)
    hub.wait_verified("unsubscribe", NEWS, node.base)
    later = '{"headline": "later"}'
    hub.publish(NEWS, later)
    until(lambda: len(node.feeds_to("/control")) == 2, "the later update at the control",
          context=node.describe)
    assert base64.b64decode(node.feeds_to("/control")[1]["body_b64"]) == later.encode()
    time.sleep(QUIET)
    assert len(node.posts_to("/callback")) == 1, node.describe()
    assert node.of("error") == []
    assert "Traceback" not in hub.process.log()


def test_pubsubhubbub_is_denied_a_topic_not_offered(
    start_hub: StartHub, websub_hubs: list[WebSubHub],
    node_subscribers: Callable[..., NodeSubscriber], tmp_path: Path,
) -> None:
    hub = start_websub_hub(start_hub, tmp_path, algorithm="sha1")
    websub_hubs.append(hub)
    node = node_subscribers("pubsubhubbub-denied-secret-0123")
    node.command("subscribe", NOT_OFFERED, hub.hub_url)
    (denied,) = until(lambda: node.of("denied"), "pubsubhubbub to report the denial",
                      context=node.describe)
    assert denied["topic"] == NOT_OFFERED
    assert denied.get("error") is None  # a hub.mode=denied GET, not a failed request
    (get,) = node.of("request", method="GET")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(get["url"]).query))
    assert query["hub.mode"] == "denied" and query["hub.topic"] == NOT_OFFERED
    assert query["hub.reason"]  # section 5.2: MAY, and this hub says why
    assert query["topic"] == NOT_OFFERED  # the callback's own query kept (5.2)
    assert node.of("subscribe") == []
    hub.publish(NOT_OFFERED, "not offered")
    time.sleep(QUIET)
    assert node.of("request", method="POST") == []


# -- both, and the log ---------------------------------------------------------------------


def test_the_hub_log_holds_no_secret_capability_or_traceback(
    start_hub: StartHub, websub_hubs: list[WebSubHub],
    flask_subscribers: Callable[[CertAuthority], FlaskSubscriber],
    node_subscribers: Callable[..., NodeSubscriber], tmp_path: Path,
) -> None:
    ca = CertAuthority(tmp_path)
    hub = start_websub_hub(start_hub, tmp_path, algorithm="sha512", ca=ca)
    websub_hubs.append(hub)
    flask = flask_subscribers(ca)
    flask_secret = "flask-log-secret-5f1a9c0e7b"
    raw_secret = "node-log-secret-3d8e2b6a41"
    node = node_subscribers(raw_secret, ca)  # over TLS too: NODE_EXTRA_CA_CERTS
    node_secret = hmac_hex("sha1", raw_secret, NEWS.encode())

    callback_id = flask.subscribe(BOOK, hub.hub_url, secret=flask_secret)
    node.command("subscribe", NEWS, hub.hub_url)
    hub.wait_verified("subscribe", BOOK, flask.base)
    hub.wait_verified("subscribe", NEWS, node.base)
    # Denials too, so that their log lines are checked as well.
    denied_id = flask.subscribe(NOT_OFFERED, hub.hub_url, secret=flask_secret + "-denied")
    until(lambda: flask.of("errors", denied_id), "Flask-WebSub's denial", context=flask.describe)
    node.command("subscribe", NOT_OFFERED, hub.hub_url, callback=node.callback_for(
        "/denied", NOT_OFFERED, hub.hub_url))
    until(lambda: node.of("denied", topic=NOT_OFFERED), "pubsubhubbub's denial", context=node.describe)

    hub.publish(BOOK, '{"book": 1}')
    hub.publish(NEWS, '{"news": 1}')
    (note,) = until(lambda: flask.of("notifications", callback_id), "Flask-WebSub's update",
                    context=flask.describe)
    assert note["headers"]["X-Hub-Signature"].startswith("sha512=")  # checked by Flask-WebSub
    (feed,) = until(lambda: node.feeds_to("/callback"), "pubsubhubbub's update", context=node.describe)
    assert feed["headers"]["x-hub-signature"] == "sha512=" + hmac_hex(
        "sha512", node_secret, base64.b64decode(feed["body_b64"]))

    flask.unsubscribe(callback_id)
    node.command("unsubscribe", NEWS, hub.hub_url)
    hub.wait_verified("unsubscribe", BOOK, flask.base)
    hub.wait_verified("unsubscribe", NEWS, node.base)
    # A clean exit, so the log is complete.  Bound: the hub's own shutdown
    # bound (10 s) and a little: an idle keep-alive TLS connection (Node's
    # agent keeps one to the hub) is only closed when its peer answers the
    # close_notify, which Node's agent does at its idle timeout (~5 s).
    assert hub.process.terminate(timeout=15) == 0

    log = hub.process.log()
    assert "Traceback" not in log
    assert "websub hub: delivery" not in log and "dropped" not in log  # none failed
    for secret in (flask_secret, raw_secret, node_secret):
        assert secret not in log
    # The callbacks are capabilities: neither their paths nor their queries.
    for capability in (callback_id, denied_id, "/callbacks/", "topic=https", "hub.challenge"):
        assert capability not in log
    # The challenges the hub sent (the subscribers saw them) are not logged either.
    challenges = [dict(r["query"])["hub.challenge"] for r in flask.events()["requests"]
                  if r["method"] == "GET" and "hub.challenge" in dict(r["query"])]
    challenges += [dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r["url"]).query))["hub.challenge"]
                   for r in node.of("request", method="GET") if "hub.challenge=" in r["url"]]
    assert len(challenges) == 4
    for challenge in challenges:
        assert challenge not in log


# -- a forged subscription -----------------------------------------------------------------


def forge_for_flask(
    start_hub: StartHub, websub_hubs: list[WebSubHub],
    flask_subscribers: Callable[[CertAuthority], FlaskSubscriber], tmp_path: Path,
) -> tuple[WebSubHub, FlaskSubscriber, str]:
    """A third party asks the hub to send ``NEWS`` to a Flask-WebSub callback
    (an unguessable capability, section 5.1) that Flask-WebSub never asked
    for; Flask-WebSub answers the verification 404.  Returns the forged
    callback's path segment once the hub logged the failed verification."""
    ca = CertAuthority(tmp_path)
    hub = start_websub_hub(start_hub, tmp_path, algorithm=None, ca=ca)
    websub_hubs.append(hub)
    flask = flask_subscribers(ca)
    forged = "forged-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
    response = httpx.post(hub.hub_url, data={
        "hub.mode": "subscribe", "hub.topic": NEWS,
        "hub.callback": f"{flask.base}/callbacks/{forged}", "hub.secret": "the-forger-s-own-secret",
    }, verify=ssl.create_default_context(cafile=str(ca.path)), timeout=5)
    assert response.status_code == 202, response.text  # accepted, then verified (5.1.2)
    until(lambda: re.search(rf"websub hub: subscribe of {re.escape(NEWS)} for "
                            rf"{re.escape(flask.base)} not verified", hub.process.log()),
          "the hub to log the failed verification", context=hub.process.log)
    (get,) = [r for r in flask.events()["requests"] if r["path"] == f"/callbacks/{forged}"]
    assert get["method"] == "GET" and dict(get["query"])["hub.mode"] == "subscribe"
    return hub, flask, forged


def test_a_subscription_forged_for_a_flask_websub_callback_is_never_honoured(
    start_hub: StartHub, websub_hubs: list[WebSubHub],
    flask_subscribers: Callable[[CertAuthority], FlaskSubscriber], tmp_path: Path,
) -> None:
    hub, flask, forged = forge_for_flask(start_hub, websub_hubs, flask_subscribers, tmp_path)
    # The positive control: Flask-WebSub's own subscription to the same topic.
    control = flask.subscribe(NEWS, hub.hub_url, secret="flask-genuine-secret-0123")
    hub.wait_verified("subscribe", NEWS, flask.base)
    hub.publish(NEWS, '{"n": 1}')
    until(lambda: flask.of("notifications", control), "the genuine subscription's update",
          context=flask.describe)
    time.sleep(QUIET)
    assert flask.posts_to(forged) == []  # section 5.3: not verified, not a subscription
    assert hub.verified("subscribe", NEWS, flask.base) == 1  # the genuine one only


def test_a_failed_verification_does_not_log_the_callbacks_path(
    start_hub: StartHub, websub_hubs: list[WebSubHub],
    flask_subscribers: Callable[[CertAuthority], FlaskSubscriber], tmp_path: Path,
) -> None:
    """The callback is a capability URL (section 5.1): a log line names its
    origin only (``client.loggable_origin``), even when it fails to verify.

    Fails at the time of writing: ``Subscriptions._process`` logs
    ``VerificationOutcome.reason``, which ``hub/_verify.py`` builds with
    ``loggable_url`` (path included): ``websub hub: subscribe of
    https://example.com/news for http://127.0.0.1:P not verified:
    http://127.0.0.1:P/callbacks/<capability> answered 404 to the
    verification of intent``.
    """
    hub, flask, forged = forge_for_flask(start_hub, websub_hubs, flask_subscribers, tmp_path)
    log = hub.process.log()
    assert "the-forger-s-own-secret" not in log
    assert "Traceback" not in log
    assert forged not in log
