"""The common Python SSE choice: sse-starlette on uvicorn, with a broadcaster.

GET /sub?topic=T streams through ``EventSourceResponse`` from one asyncio
queue per subscriber; POST /pub (form ``topic``, ``data``; HS256 bearer
token checked with pyjwt) puts the event on every queue of the topic; GET
/count answers the number of subscribers.  Run by uvicorn (uvloop,
httptools) from the peers' virtual environment:
``uvicorn starlette_app:app`` with BENCH_KEY in the environment.
"""

import asyncio
import itertools
import os
import resource
from urllib.parse import parse_qs

import jwt
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

KEY = os.environ["BENCH_KEY"]
queues: dict[str, set[asyncio.Queue]] = {}
ids = itertools.count(1)


async def subscribe(request):
    topic = request.query_params.get("topic", "")
    queue: asyncio.Queue = asyncio.Queue()
    bucket = queues.setdefault(topic, set())

    async def events():
        bucket.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            bucket.discard(queue)

    return EventSourceResponse(events())


async def publish(request):
    try:
        claims = jwt.decode(request.headers.get("authorization", "")[7:], KEY, algorithms=["HS256"])
        assert "*" in claims["mercure"]["publish"]
    except Exception:
        return PlainTextResponse("unauthorized", 401)
    form = parse_qs((await request.body()).decode())
    event = {"id": str(next(ids)), "data": form["data"][0]}
    for queue in queues.get(form["topic"][0], ()):
        queue.put_nowait(event)
    return PlainTextResponse(event["id"])


async def count(request):
    return PlainTextResponse(str(sum(len(b) for b in queues.values())))


app = Starlette(routes=[
    Route("/sub", subscribe), Route("/pub", publish, methods=["POST"]), Route("/count", count),
])
