"""Server-sent events: one ``Broadcast`` fans messages out to every open page.

Each page has its own bounded queue, so a slow or stalled browser costs at most
``limit`` messages of memory: when its queue is full it is emptied and the page gets
a fresh snapshot instead of what it missed. A comment line goes out every
``keepalive_s`` so that proxies keep an idle stream open. Messages are published on
the server's event loop; ``publish`` from another thread hands them over to it.
"""

import asyncio
import threading

import orjson
from starlette.responses import StreamingResponse

RESYNC = object()  # a queue that overflowed: send the page a new snapshot
CLOSE = object()   # the server is stopping: end the stream


def sse(kind, data):
    """One server-sent event: ``event: kind`` and its JSON (NaN becomes null)."""
    return b"event: " + kind.encode() + b"\ndata: " + \
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS) + b"\n\n"


class Broadcast:
    def __init__(self, limit=256, keepalive_s=15.0):
        self.limit, self.keepalive_s = int(limit), float(keepalive_s)
        self.clients = set()
        self.loop = None
        self.sent = 0        # messages put on queues
        self.resyncs = 0     # queues that overflowed
        self.closed = False

    def __bool__(self):
        return bool(self.clients)

    def publish(self, kind, data):
        """Queue one event for every page (nothing is built when none listens)."""
        if not self.clients:
            return
        if self.loop is not None and threading.get_ident() != self._loop_thread:
            self.loop.call_soon_threadsafe(self.publish, kind, data)
            return
        message = sse(kind, data)
        for queue in list(self.clients):
            try:
                queue.put_nowait(message)
                self.sent += 1
            except asyncio.QueueFull:  # a stalled page: drop its backlog, resync it
                _replace(queue, RESYNC)
                self.resyncs += 1

    def close(self):
        """End every stream (the server is stopping: it would wait for them)."""
        self.closed = True
        for queue in list(self.clients):
            _replace(queue, CLOSE)

    def response(self, snapshot):
        """A ``text/event-stream`` response: what ``await snapshot()`` returns, (kind,
        data), first, then every published event until the page goes away."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        queue = asyncio.Queue(self.limit)
        self.clients.add(queue)

        async def events():
            try:
                yield sse(*await snapshot())
                while not self.closed:
                    try:
                        message = await asyncio.wait_for(queue.get(), self.keepalive_s)
                    except asyncio.TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if message is CLOSE:
                        return
                    if message is RESYNC:  # the snapshot covers whatever came meanwhile
                        while not queue.empty() and queue.get_nowait() is not CLOSE:
                            pass
                        message = sse(*await snapshot())
                    yield message
            finally:
                self.clients.discard(queue)

        # no-cache and no proxy buffering: each event reaches the page as it happens
        return StreamingResponse(events(), media_type="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _replace(queue, marker):
    """Empty ``queue`` and leave ``marker`` alone in it."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(marker)
