"""A WebSub subscriber nobody on this team wrote: Flask-WebSub's client.

Run by ``tests/e2e/test_websub_hub.py`` in a subprocess, on loopback:

    python tests/e2e/websub_subscriber_app.py PORT DATABASE

* ``/callbacks/<callback_id>``: Flask-WebSub's ``Subscriber`` blueprint, as
  is: it answers the verification of intent (and records the subscription
  only then), acknowledges a denial, and accepts content distribution,
  checking ``X-Hub-Signature`` itself (any ``hashlib`` algorithm the header
  names) when the subscription has a secret.  A notification whose
  signature does not match is answered 200 but never reported: every entry
  of ``notifications`` below was correctly signed.
* ``POST /control/subscribe`` (JSON ``topic_url``, ``hub_url``, optional
  ``lease_seconds``, ``secret``): ``Subscriber.subscribe(...)``; answers
  ``{"callback_id": ...}``, or 502 with Flask-WebSub's error.  Flask-WebSub
  refuses a secret for an ``http://`` hub (section 5.1: a secret SHOULD only
  be sent over HTTPS), so the test gives it the hub's ``https://`` address;
  the environment's ``REQUESTS_CA_BUNDLE`` names the test CA.
* ``POST /control/unsubscribe`` (JSON ``callback_id``):
  ``Subscriber.unsubscribe(callback_id)``.
* ``POST /control/renew`` (JSON ``callback_id``): ``Subscriber.renew(...)``,
  the same subscription request again (same callback, topic and secret).
* ``GET /control/events``: what happened, as JSON lists:
  ``successes`` (``add_success_handler``: topic, callback_id, mode),
  ``errors`` (``add_error_handler``: topic, callback_id, reason),
  ``notifications`` (``add_listener``: topic, callback_id, the body in
  base64, and the request's headers), and ``requests`` (every
  request the hub made to a callback, before Flask-WebSub handled it:
  method, path, query, headers, body in base64), so that a delivery
  Flask-WebSub drops (unknown callback, bad signature) is still seen.

The subscriptions live in the SQLite file ``DATABASE`` (tables
``subscriber`` and ``subscriber_temp``).
"""

from __future__ import annotations

import base64
import sys
import threading
from typing import Any

from flask import Flask, jsonify, request
from flask_websub.errors import SubscriberError
from flask_websub.subscriber import (
    SQLite3SubscriberStorage,
    SQLite3TempSubscriberStorage,
    Subscriber,
)


def build(database: str) -> Flask:
    app = Flask(__name__)
    subscriber = Subscriber(
        SQLite3SubscriberStorage(database), SQLite3TempSubscriberStorage(database),
        REQUEST_TIMEOUT=10,
    )
    app.register_blueprint(subscriber.build_blueprint(url_prefix="/callbacks"))

    lock = threading.Lock()
    events: dict[str, list[dict[str, Any]]] = {
        "successes": [], "errors": [], "notifications": [], "requests": [],
    }

    def record(kind: str, **entry: Any) -> None:
        with lock:
            events[kind].append(entry)

    @app.before_request
    def seen() -> None:
        if request.path.startswith("/callbacks/"):
            record(
                "requests",
                method=request.method,
                path=request.path,
                query=list(request.args.items(multi=True)),
                headers=dict(request.headers.items()),
                body=base64.b64encode(request.get_data(cache=True)).decode("ascii"),
            )

    def succeeded(topic_url: str, callback_id: str, mode: str) -> None:
        record("successes", topic=topic_url, callback_id=callback_id, mode=mode)

    def failed(topic_url: str, callback_id: str, reason: str) -> None:
        record("errors", topic=topic_url, callback_id=callback_id, reason=reason)

    def notified(topic_url: str, callback_id: str, body: bytes) -> None:
        # Called inside the hub's POST: its headers are the request's.
        record(
            "notifications",
            topic=topic_url,
            callback_id=callback_id,
            body_b64=base64.b64encode(body).decode("ascii"),
            headers=dict(request.headers.items()),
        )

    # (Flask-WebSub's add_* return None: called, not used as decorators.)
    subscriber.add_success_handler(succeeded)
    subscriber.add_error_handler(failed)
    subscriber.add_listener(notified)

    @app.route("/control/subscribe", methods=["POST"])
    def subscribe() -> Any:
        args = request.get_json(force=True)
        try:
            callback_id = subscriber.subscribe(**args)
        except SubscriberError as e:
            return jsonify(error=str(e)), 502
        return jsonify(callback_id=callback_id)

    @app.route("/control/unsubscribe", methods=["POST"])
    def unsubscribe() -> Any:
        try:
            subscriber.unsubscribe(request.get_json(force=True)["callback_id"])
        except SubscriberError as e:
            return jsonify(error=str(e)), 502
        return jsonify(ok=True)

    @app.route("/control/renew", methods=["POST"])
    def renew() -> Any:
        try:
            callback_id = subscriber.renew(request.get_json(force=True)["callback_id"])
        except SubscriberError as e:
            return jsonify(error=str(e)), 502
        return jsonify(callback_id=callback_id)

    @app.route("/control/events")
    def listing() -> Any:
        with lock:
            return jsonify({kind: list(entries) for kind, entries in events.items()})

    return app


if __name__ == "__main__":
    port, database = int(sys.argv[1]), sys.argv[2]
    build(database).run(host="127.0.0.1", port=port, threaded=True)
