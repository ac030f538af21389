"""The platform limit on Twisted: a bare twisted.web SSE broadcaster.

A few dozen lines, no framework: GET /sub?topic=T opens a stream, POST /pub
(form ``topic``, ``data``; HS256 bearer token checked with pyjwt, the same
check an authenticated hub does) writes one frame to every stream of that
topic, GET /count answers the number of open streams.  Its POST handler is
also the "bare twisted.web POST handler" the hub's publish rate is compared
with.  Usage: python raw_twisted.py PORT KEY
"""

import resource
import sys
from urllib.parse import parse_qs

import jwt
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

PORT, KEY = int(sys.argv[1]), sys.argv[2]
streams: dict[bytes, set] = {}
counter = 0


class Broadcaster(Resource):
    isLeaf = True

    def render_GET(self, request):
        if request.path == b"/count":
            return str(sum(len(s) for s in streams.values())).encode()
        topic = (request.args.get(b"topic") or [b""])[0]
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        request.write(b":\n\n")
        bucket = streams.setdefault(topic, set())
        bucket.add(request)
        request.notifyFinish().addBoth(lambda _: bucket.discard(request))
        return NOT_DONE_YET

    def render_POST(self, request):
        global counter
        auth = request.getHeader(b"authorization") or b""
        try:
            claims = jwt.decode(auth[7:], KEY, algorithms=["HS256"])
            assert "*" in claims["mercure"]["publish"]
        except Exception:
            request.setResponseCode(401)
            return b"unauthorized"
        form = parse_qs(request.content.read().decode())
        counter += 1
        event_id = str(counter)
        frame = f"id: {event_id}\ndata: {form['data'][0]}\n\n".encode()
        for stream in list(streams.get(form["topic"][0].encode(), ())):
            stream.write(frame)
        return event_id.encode()


reactor.listenTCP(PORT, Site(Broadcaster()), backlog=4096, interface="127.0.0.1")
reactor.run()
