"""A WebSub hub and publisher nobody on this team wrote: Flask-WebSub.

Run by ``tests/e2e/test_websub_follow.py`` in a subprocess, on loopback:

    python tests/e2e/websub_hub_app.py PORT DATABASE

* ``POST /hub``: Flask-WebSub's hub endpoint (subscribe, unsubscribe, and
  ``hub.mode=publish`` with ``PUBLISH_SUPPORTED``).  Celery runs in eager
  mode (no broker): verification of intent happens inside the subscribe
  request, before the hub answers 202, and a publish fetches the feed and
  POSTs it to every subscriber before it answers.
* ``GET /feed``: an Atom feed advertised with Flask-WebSub's ``publisher``
  decorator (``Link: <...>; rel="self", <...>; rel="hub"``).
* ``POST /entries`` (form ``title``): adds an entry to the feed (the test's
  way to change the topic before it asks the hub to publish).
* ``GET /status``: a plain-text document, also a WebSub topic;
  ``POST /status`` (form ``text``) changes it.

The hub's subscriptions live in the SQLite file ``DATABASE`` (table
``hub``), which the test reads to see what the hub holds.
"""

from __future__ import annotations

import sys
import threading
from xml.sax.saxutils import escape

from celery import Celery
from flask import Flask, Response, request
from flask_websub.hub import Hub, SQLite3HubStorage
from flask_websub.publisher import init_publisher, publisher


def build(port: int, database: str) -> Flask:
    base = f"http://127.0.0.1:{port}"
    app = Flask(__name__)
    app.config["PUBLISH_SUPPORTED"] = True
    app.config["HUB_MIN_LEASE_SECONDS"] = 60
    celery = Celery("websub-hub", broker="memory://", backend="cache+memory://")
    celery.conf.task_always_eager = True
    hub = Hub(SQLite3HubStorage(database), celery, **app.config)
    app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))
    init_publisher(app)

    entries: list[tuple[str, str]] = []
    lock = threading.Lock()

    @app.route("/feed")
    @publisher(self_url=base + "/feed", hub_url=base + "/hub")
    def feed() -> Response:
        with lock:
            items = "".join(
                f"<entry><id>{escape(id)}</id><title>{escape(title)}</title>"
                f"<updated>2026-01-01T00:00:00Z</updated></entry>"
                for id, title in reversed(entries)
            )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<id>{base}/feed</id><title>e2e feed</title>"
            "<updated>2026-01-01T00:00:00Z</updated>"
            f"{items}</feed>"
        )
        return Response(body, content_type="application/atom+xml")

    status = {"text": "all systems go"}

    @app.route("/status")
    @publisher(self_url=base + "/status", hub_url=base + "/hub")
    def status_page() -> Response:
        with lock:
            return Response(status["text"], content_type="text/plain; charset=utf-8")

    @app.route("/status", methods=["POST"])
    def set_status() -> tuple[str, int]:
        with lock:
            status["text"] = request.form["text"]
        return "", 204

    @app.route("/entries", methods=["POST"])
    def add_entry() -> tuple[str, int]:
        title = request.form["title"]
        with lock:
            id = f"urn:e2e:entry:{len(entries) + 1}"
            entries.append((id, title))
        return id, 201

    return app


if __name__ == "__main__":
    port, database = int(sys.argv[1]), sys.argv[2]
    build(port, database).run(host="127.0.0.1", port=port, threaded=True)
