"""The center's end of the task stream: one WebSocket per edge agent, ``/api/stream``.

It replaces the per-task HTTP hot path (``GET /api/tasks`` long poll, ``POST
/api/results``), which cost an agent milliseconds of HTTP client per task. The agent
opens ``/api/stream?node_id=<id>`` with ``Authorization: Bearer <node token>``; the
center accepts and, for an unknown node or token or an UNREACHABLE node, closes at once
with ``REGISTER_AGAIN`` (4410, the stream's HTTP 410). Messages are JSON in binary
frames:

- center -> agent: ``{"tasks": [...], "target": [...], "state": ...}`` as soon as tasks
  are dispatched to the node or its target models change (what one long poll returns);
  ``{"acked": n}`` once the agent's result batches up to ``n`` are taken.
- agent -> center: ``{"batch": n, "results": [...]}``, each result taken as ``POST
  /api/results`` takes it; ``{"heartbeat": {...}}``, the body of ``POST
  /api/heartbeat`` (its answer, the target models, comes as a push when it changes).
  The agent keeps a batch until it is acked and sends it again on its next stream: a
  result is never lost to a dropped stream (a duplicate is dropped and counted as a
  late answer).

One stream per node: a newer one, or the node registering again (its old token is
void), closes the older one. Tasks leave the node's queue only as they are sent; those
sent are in flight, as after a long poll, and fail over with the node.
"""

import asyncio
import contextlib
import json
import logging
import urllib.parse

import orjson

from edgellm.live.nodes import DRAINING, READY, UNREACHABLE

log = logging.getLogger(__name__)

PATH = "/api/stream"
REGISTER_AGAIN = 4410  # unknown node or token, or UNREACHABLE: register, then reconnect
REPLACED = 4409        # a newer stream for the node took over
BAD_MESSAGE = 1007     # not a JSON object
MAX_TASKS = 1000       # per message, as a long poll's default limit


class NodeStreams:
    """The open streams, one per node id; ``serve`` is the endpoint's ASGI app."""

    def __init__(self, center):
        self.center = center
        self.open = {}  # node id -> _Stream

    async def serve(self, scope, receive, send):
        if (await receive())["type"] != "websocket.connect":
            return
        node_id = urllib.parse.parse_qs(scope["query_string"].decode("latin-1")).get(
            "node_id", [None])[0]
        record = self.center.nodes.authenticate(node_id, bearer_token(scope))
        # accepted even when refused: a close code reaches the agent, a refused handshake
        # would read as a center without streams (HTTP 403)
        await send({"type": "websocket.accept"})
        if record is None or record.state == UNREACHABLE:
            await send({"type": "websocket.close", "code": REGISTER_AGAIN,
                        "reason": "unknown node or token: register again"})
            return
        stream = _Stream(self.center, record, receive, send)
        old, self.open[node_id] = self.open.get(node_id), stream
        if old is not None:
            old.stop(REPLACED)
        record.transport = "stream"
        try:
            await stream.run()
        finally:
            if self.open.get(node_id) is stream:
                del self.open[node_id]
                record.transport = None

    def close(self, node_id, code=REGISTER_AGAIN):
        stream = self.open.get(node_id)
        if stream is not None:
            stream.stop(code)


class _Stream:
    """One agent's stream: a sender of its tasks and a receiver of its results, until
    either side closes or ``stop`` is called."""

    def __init__(self, center, record, receive, send):
        self.center, self.record = center, record
        self.receive, self.send = receive, send
        self.code = None        # the close code the center chose, if it chose to close
        self.peer_gone = False  # the agent disconnected (no close frame to send)
        self._stopping = asyncio.Event()

    def stop(self, code):
        if self.code is None:
            self.code = code
        self._stopping.set()

    async def run(self):
        tasks = [asyncio.create_task(self._push()), asyncio.create_task(self._take()),
                 asyncio.create_task(self._stopping.wait())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
        for task in tasks[:2]:
            error = task.exception() if task.done() and not task.cancelled() else None
            if error is not None and not isinstance(error, OSError):  # OSError: it left
                log.warning("%s's stream failed: %s: %s", self.record.id,
                            type(error).__name__, error)
        if self.code is not None and not self.peer_gone:
            with contextlib.suppress(Exception):  # it may be gone meanwhile
                await self.send({"type": "websocket.close", "code": self.code})

    def _current(self):
        record = self.record
        return self.center.nodes.nodes.get(record.id) is record and record.state != UNREACHABLE

    async def _push(self):
        center, node_id = self.center, self.record.id
        queue, sent_target = center.queues[node_id], None
        while True:
            if not self._current():  # registered again, or UNREACHABLE: as a 410
                self.stop(REGISTER_AGAIN)
                return
            target = self.record.target
            if queue or target != sent_target:
                tasks = [queue.popleft() for _ in range(min(len(queue), MAX_TASKS))]
                sent_target = list(target)
                body = {"tasks": tasks, "target": sent_target, "state": self.record.state}
                try:
                    await self.send({"type": "websocket.send", "bytes": orjson.dumps(
                        body, option=orjson.OPT_SERIALIZE_NUMPY)})
                except BaseException:  # not sent (the agent left, or we were stopped)
                    self._give_back(tasks)
                    raise
                continue
            event = center.wake(node_id)
            event.clear()
            await event.wait()

    def _give_back(self, tasks):
        """Tasks popped but not sent go back to the front of the queue, for the node's
        next stream or poll; not when the node left READY meanwhile (its failover has
        placed them again)."""
        if tasks and self.center.nodes.nodes.get(self.record.id) is self.record and \
                self.record.state in (READY, DRAINING):
            self.center.queues[self.record.id].extendleft(reversed(tasks))
            self.center.wake(self.record.id)

    async def _take(self):
        while True:
            message = await self.receive()
            if message["type"] == "websocket.disconnect":
                self.peer_gone = True
                return
            body = _decode(message.get("bytes") or message.get("text") or b"")
            if not isinstance(body, dict) or not isinstance(body.get("results", []), list):
                self.stop(BAD_MESSAGE)
                return
            heartbeat = body.get("heartbeat")
            if heartbeat is not None:
                if not isinstance(heartbeat, dict):
                    self.stop(BAD_MESSAGE)
                    return
                if not self._current():  # UNREACHABLE meanwhile: as the HTTP 410
                    self.stop(REGISTER_AGAIN)
                    return
                self.center.heartbeat(self.record, heartbeat)
            for result in body.get("results", []):
                self._accept(result)
            batch = body.get("batch")
            if isinstance(batch, int):
                await self.send({"type": "websocket.send", "bytes": b'{"acked":%d}' % batch})

    def _accept(self, result):
        try:
            self.center.accept_result(self.record, result)
        except Exception:  # a malformed result is dropped; the stream and its batch go on
            log.exception("%s sent a result the center could not take", self.record.id)


def _decode(data):
    """orjson; json where it refuses (a NaN from another client), None if neither reads it."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            return None


def bearer_token(scope):
    """The token of an ``Authorization: Bearer`` header ("" without one), from an ASGI
    scope: the stream's handshake and every HTTP endpoint (service.py) read it alike."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            value = value.decode("latin-1")
            return value[7:].strip() if value.lower().startswith("bearer ") else ""
    return ""
