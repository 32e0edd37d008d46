"""The agent's end of the task stream (the protocol: live/stream.py).

One WebSocket to the center carries the node's tasks in and its results out, instead
of an HTTP request each way per task (an HTTP client costs milliseconds of CPU per
task); the node's heartbeats ride on it too while it is open. A dropped stream (the
center restarting) is opened again after ``RETRY_S``; a close with ``REGISTER_AGAIN``
registers the node again first. Result batches are kept
until the center acks them and are sent again on the next stream. A center without
streams (an older one: HTTP 403 or 404 on the handshake), or an agent without the
``websockets`` package, ends ``TaskStream.run`` with the reason: the agent then uses
the HTTP long poll.
"""

import asyncio
import contextlib
import itertools
import logging
import urllib.parse

import orjson

from edgellm.live.stream import PATH, REGISTER_AGAIN

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
except ImportError:  # the live extra brings it; without it, HTTP
    connect = None

log = logging.getLogger(__name__)

RETRY_S = 0.5               # as the HTTP loops retry
NO_STREAM = (403, 404, 426)  # the center has no stream endpoint: HTTP instead
MAX_RESULTS = 256           # per message: far below the center's 16 MiB message limit
MAX_MESSAGE = 64 << 20      # a full message of tasks (1,000 samples) fits


class TaskStream:
    """Tasks from the center into ``agent.take``; results from ``agent.results`` back."""

    def __init__(self, agent):
        self.agent = agent
        self.unacked = {}  # batch number -> its results, in order, until the center acks
        self._numbers = itertools.count(1)
        self.socket = None  # while a stream is open

    def url(self):
        base = urllib.parse.urlsplit(self.agent.center_url)
        scheme = "wss" if base.scheme == "https" else "ws"
        query = urllib.parse.urlencode({"node_id": self.agent.node_id})
        return urllib.parse.urlunsplit((scheme, base.netloc, base.path + PATH, query, ""))

    async def run(self):
        """Streams until the agent stops; returns why not where the center cannot."""
        if connect is None:
            return "the websockets package is missing"
        while True:
            token, code = self.agent.token, None
            try:
                async with connect(self.url(), **_options(token)) as socket:
                    self.socket = socket
                    try:
                        with contextlib.suppress(ConnectionClosed):
                            await self._exchange(socket)
                    finally:
                        self.socket = None
                code = socket.close_code  # once closed: what the center said, or 1006
            except InvalidStatus as err:
                status = err.response.status_code
                if status in NO_STREAM:
                    self._unsent_to_http()
                    return f"the center has no task stream (HTTP {status})"
            except (OSError, asyncio.TimeoutError, WebSocketException):
                pass  # no center there (yet): it may be restarting
            except Exception:  # a bug here must not end the node's tasks: said, retried
                log.exception("%s's task stream failed", self.agent.node_id)
            if code == REGISTER_AGAIN:
                try:
                    await self.agent.register_again(token)
                    continue
                except Exception as err:  # the center went away again, or refused it
                    log.warning("%s could not register again: %s", self.agent.node_id, err)
            await asyncio.sleep(RETRY_S)

    async def _exchange(self, socket):
        """Until the stream closes (ConnectionClosed from either side)."""
        tasks = [asyncio.create_task(self._receive(socket)),
                 asyncio.create_task(self._send(socket))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()

    async def _receive(self, socket):
        async for message in socket:
            body = orjson.loads(message)
            acked = body.get("acked")
            if acked is not None:
                self._acked(acked)
            else:
                self.agent.take(body)

    async def _send(self, socket):
        for number, batch in list(self.unacked.items()):  # what the last stream left
            await socket.send(_encode(number, batch))
        results = self.agent.results
        while True:
            batch = [await results.get()]
            while not results.empty() and len(batch) < MAX_RESULTS:
                batch.append(results.get_nowait())
            number = next(self._numbers)
            self.unacked[number] = batch  # before sending: a failed send leaves it here
            await socket.send(_encode(number, batch))

    async def heartbeat(self, report):
        """Send the node's heartbeat on the open stream; False when none is open (the
        agent then sends it over HTTP)."""
        socket = self.socket
        if socket is None:
            return False
        try:
            await socket.send(orjson.dumps({"heartbeat": report}))
        except (ConnectionClosed, OSError):
            return False
        return True

    def _acked(self, number):
        """The center took every batch up to ``number``: it reads one stream in order,
        and every earlier batch still kept was sent again on this one before it."""
        for kept in [n for n in self.unacked if n <= number]:
            del self.unacked[kept]

    def _unsent_to_http(self):
        for batch in self.unacked.values():
            for result in batch:
                self.agent.results.put_nowait(result)
        self.unacked.clear()


def _options(token):
    return {"additional_headers": {"Authorization": f"Bearer {token}"},
            "compression": None,  # small messages: deflate would cost more than it saves
            "max_size": MAX_MESSAGE, "open_timeout": 10, "close_timeout": 1,
            # edgellm's logger, which the CLI sets to INFO at most: websockets' DEBUG
            # lines would show the handshake's headers, the token with them
            "logger": log}


def _encode(number, batch):
    # orjson: a NaN becomes null (json.dumps would write NaN): the center reads a
    # result's perf seconds (finite: clock differences) and passes its answer on, and
    # its outcomes go out through orjson, NaN as null, anyway. Anything orjson cannot
    # write goes as its text rather than failing the batch.
    return orjson.dumps({"batch": number, "results": batch}, default=str,
                        option=orjson.OPT_SERIALIZE_NUMPY)
