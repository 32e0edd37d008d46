"""The center's HTTP API (FastAPI; served by uvicorn, ``edgellm center``).

Nodes: ``POST /api/register`` (join token) -> node id and node token; then, with the
node token: ``POST /api/heartbeat``; the task stream ``/api/stream`` (a WebSocket: the
node's tasks and target models pushed as they are dispatched, its results back;
live/stream.py), or, for agents without it, ``GET /api/tasks`` (long poll) and ``POST
/api/results``; ``POST /api/transfers``, ``GET /models/{model_id}`` (the file, with
``Range``). A token travels in the ``Authorization: Bearer`` header only, never in a
URL, and is never logged.

The fleet module (live/client.py): ``POST /api/runs``, ``POST /api/runs/{id}/tasks``,
``GET /api/runs/{id}/outcomes`` (long poll), ``DELETE /api/runs/{id}``. Anyone:
``GET /healthz``, ``GET /api/nodes``, ``GET /api/events``; ``POST /api/nodes/{id}/drain``
needs the join token.
"""

import asyncio
import contextlib
import hmac
import os

from fastapi import FastAPI, Request
import orjson
from fastapi.responses import FileResponse, Response

from edgellm.fleet.registry import part_settings
from edgellm.live.center import RunError
from edgellm.live.nodes import UNREACHABLE
from edgellm.live.stream import PATH as STREAM_PATH, NodeStreams, bearer_token
from edgellm.live.transfer import CHUNK
from edgellm.registry import UnknownSetting

MAX_BODY = 16 << 20  # bytes: a round of tasks fits many times over; anything larger is refused
RUN_SETTINGS = ("offloader", "caching", "caching_every", "slo_s", "seed")


class JSONBody(Response):
    """JSON by orjson: fast, and a NaN (a round without tasks on a node) becomes null
    instead of an error. The per-task endpoints return it themselves: a dict would go
    through FastAPI's jsonable_encoder first, a tenth of the center's time per task."""

    media_type = "application/json"

    def render(self, content):
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class _ModelFile(FileResponse):
    chunk_size = CHUNK  # large reads: loopback transfers near memory speed


class _BodyLimit:
    """A body announced over MAX_BODY is refused before it is read. Plain ASGI, not
    starlette's BaseHTTPMiddleware: that one runs every request through an extra task
    and stream (a fifth of the center's time per task at 200 tasks/s)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
                await _error(413, f"request body over {MAX_BODY} bytes")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _HotRoutes:
    """The endpoints every task and every heartbeat calls, answered as plain ASGI:
    FastAPI's routing, dependency solving and middleware stack cost more than the
    handlers themselves (the center at 100 heartbeats a second spent two thirds of its
    time there). A body that is not JSON, or a query value of the wrong kind, is a 400.
    ``sockets``: path -> ASGI app, for WebSocket scopes (the task stream)."""

    def __init__(self, app, routes, sockets):
        self.app, self.routes, self.sockets = app, routes, sockets

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "websocket" and _route_path(scope) in self.sockets:
            await self.sockets[_route_path(scope)](scope, receive, send)
            return
        handler = self.routes.get((scope["method"], _route_path(scope))) \
            if kind == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive))
        except ValueError as err:  # bad JSON (JSONDecodeError) or a bad number
            response = _error(400, f"bad request: {err}")
        await response(scope, receive, send)


def _route_path(scope):
    """The path below the app's mount point: under a reverse proxy's prefix (a Mount,
    uvicorn's ``--root-path``) ``path`` starts with ``root_path``, as Starlette reads it."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root + "/") else path


def _page_url(value):
    """A node's own page, linked from the center's: http(s) only (a ``javascript:``
    URL must never become a link)."""
    value = str(value or "")
    return value if value.startswith(("http://", "https://")) and len(value) < 300 else ""


def _error(status, message):
    return JSONBody({"error": message}, status)


def create_app(center):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        loops = [asyncio.create_task(center.monitor()), asyncio.create_task(center.scheduler())]
        yield
        for loop in loops:
            loop.cancel()

    app = FastAPI(title="edgellm center", docs_url=None, redoc_url=None,
                  default_response_class=JSONBody, lifespan=lifespan)
    hot = {}  # (method, path) -> handler: the per-task and per-second endpoints
    streams = app.state.streams = NodeStreams(center)
    app.add_middleware(_HotRoutes, routes=hot, sockets={STREAM_PATH: streams.serve})
    app.add_middleware(_BodyLimit)  # added last: outermost, before the hot routes
    app.state.center = center

    def node_of(request, body=None):
        node_id = (body or {}).get("node_id") or request.query_params.get("node_id")
        return center.nodes.authenticate(node_id, bearer_token(request.scope))

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "topology": center.topology.name,
                "time_scale": center.time_scale, "nodes": len(center.nodes.nodes)}

    @app.post("/api/register")
    async def register(request: Request):
        if not hmac.compare_digest(bearer_token(request.scope), center.join_token):
            return _error(401, "registration needs the join token")
        body = await request.json()
        node_id = body.get("node_id")
        if node_id not in center.nodes.index:
            return _error(404, f"node {node_id!r} is not in the center's topology "
                               f"({', '.join(center.nodes.index)})")
        record, token = center.nodes.register(node_id, str(body.get("engine", "simulated")),
                                              str(body.get("address", "")), body.get("pid"),
                                              _page_url(body.get("monitor_url")))
        streams.close(node_id)  # its stream holds the old token: the agent reconnects
        spec = center.topology.nodes[record.index]
        return {"node_id": node_id, "node_token": token, "heartbeat_s": center.nodes.heartbeat_s,
                "time_scale": center.time_scale, "target": record.target,
                "node": {"id": spec.id, "slots": spec.slots, "speed": spec.speed,
                         "memory_gb": spec.memory_gb, "rtt_s": spec.rtt_s,
                         "bandwidth_mbps": spec.bandwidth_mbps},
                "topology_path": os.path.abspath(center.topology_path),
                "models": center.store.manifest()}

    async def heartbeat(request: Request):
        body = orjson.loads(await request.body())  # orjson: the most frequent request
        record = node_of(request, body)
        if record is None or record.state == UNREACHABLE:
            return _error(410, "unknown node or token, or the node was UNREACHABLE: "
                               "register again")
        center.heartbeat(record, body)
        return JSONBody({"state": record.state, "target": record.target})

    async def tasks(request: Request):
        wait = float(request.query_params.get("wait", 10.0))
        limit = int(request.query_params.get("limit", 1000))
        record = node_of(request)
        if record is None or record.state == UNREACHABLE:
            return _error(410, "unknown node or token: register again")
        record.transport = "http"
        queue = center.queues[record.id]
        if not queue:
            event = center.wake(record.id)
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), timeout=max(0.0, min(wait, 30.0)))
            except asyncio.TimeoutError:
                pass
        out = [queue.popleft() for _ in range(min(len(queue), max(1, limit)))]
        return JSONBody({"tasks": out, "target": record.target, "state": record.state})

    async def results(request: Request):
        body = await request.json()  # not orjson: an agent's json may carry a NaN
        record = node_of(request, body)
        if record is None:
            return _error(410, "unknown node or token: register again")
        accepted = sum(center.accept_result(record, r) for r in body.get("results", []))
        return JSONBody({"accepted": accepted,
                         "dropped": len(body.get("results", [])) - accepted})

    hot.update({("POST", "/api/heartbeat"): heartbeat, ("GET", "/api/tasks"): tasks,
                ("POST", "/api/results"): results})

    @app.post("/api/transfers")
    async def transfers(request: Request):
        body = await request.json()
        record = node_of(request, body)
        if record is None:
            return _error(410, "unknown node or token: register again")
        center.note_transfer(record, body)
        return {"ok": True}

    @app.get("/models/{model_id}")
    async def model_file(model_id: str, request: Request):
        record = node_of(request)
        if record is None:
            return _error(401, "model files need a node token")
        entry = center.store.get(model_id)  # catalog ids only: no path comes from the URL
        if entry is None:
            return _error(404, f"no model {model_id!r} in the catalog")
        return _ModelFile(entry.path, headers={"X-Content-SHA256": entry.sha256},
                          filename=os.path.basename(entry.path))

    @app.get("/api/nodes")
    async def nodes():
        return center.nodes.views()

    @app.get("/api/events")
    async def events(after: int = 0, kind: str = None, node: str = None, limit: int = 500):
        return center.events.since(after, kind, node, limit)

    @app.post("/api/nodes/{node_id}/drain")
    async def drain(node_id: str, request: Request):
        if not hmac.compare_digest(bearer_token(request.scope), center.join_token):
            return _error(401, "draining a node needs the join token")
        if node_id not in center.nodes.nodes:
            return _error(404, f"no node {node_id!r}")
        record = center.nodes.drain(node_id)
        center.node_left(record, record.state)
        return record.view()

    @app.post("/api/runs")
    async def start_run(request: Request):
        body = await request.json()
        settings = dict(body.get("settings") or {})
        known = list(RUN_SETTINGS) + part_settings()
        try:
            for name in settings:
                if name not in known:
                    raise UnknownSetting("the live fleet", name, known)
            mismatch = _topology_mismatch(center.topology, body.get("nodes"),
                                          body.get("models"))
            if mismatch:
                raise RunError(mismatch)
            run = center.start_run(settings)
        except (RunError, ValueError) as err:
            return _error(409, str(err))
        return {"run": run.id, "time_scale": center.time_scale}

    @app.post("/api/runs/{run_id}/tasks")
    async def submit(run_id: int, request: Request):
        run = center.run
        if run is None or run.id != run_id:
            return _error(409, _run_gone(center, run_id))
        body = await request.json()
        run.submit((int(t["key"]), t["sample"]) for t in body.get("tasks", []))
        return {"accepted": len(body.get("tasks", []))}

    @app.get("/api/runs/{run_id}/outcomes")
    async def outcomes(run_id: int, after: int = 0, wait: float = 10.0):
        run = center.run
        if run is None or run.id != run_id:
            return _error(409, _run_gone(center, run_id))
        if len(run.finished_keys) <= after and not run.done:
            try:
                await asyncio.wait_for(center.changed().wait(), timeout=max(0.0, min(wait, 30)))
            except asyncio.TimeoutError:
                pass
        if center.run is not run:
            return _error(409, _run_gone(center, run_id))
        keys = run.finished_keys[after:]
        return JSONBody({"outcomes": [{"key": k, "response": run.by_key[k].response}
                                      for k in keys],
                         "next": after + len(keys), "done": run.done})

    @app.delete("/api/runs/{run_id}")
    async def finish_run(run_id: int):
        run = center.run
        if run is None or run.id != run_id:
            return _error(409, _run_gone(center, run_id))
        run.finish_round()
        # the engines of the nodes that answered: the monitor's leaderboard reads them
        result = {"summary": dict(run.summary(), engines=_engines(center, run)),
                  "rounds": run.round_rows(),
                  "engines": sorted({r.engine for r in center.nodes.nodes.values()})}
        center.finished[run.id] = result
        center.run = None
        center.events.add("run_end", f"run {run.id}: {len(run.tasks)} tasks")
        return result

    return app


def _engines(center, run):
    """Node -> engine for each node that answered in ``run`` (the center's cloud is
    simulated; None for a node the center no longer knows)."""
    engines = {}
    for task in run.tasks.values():
        node = task.response.get("node") if task.answered else None
        if node is not None and node not in engines:
            record = center.nodes.nodes.get(node)
            engines[node] = ("simulated" if node == "cloud" else
                             record.engine if record is not None else None)
    return dict(sorted(engines.items()))


def _run_gone(center, run_id):
    error = center.finished.get(run_id, {}).get("error")
    return f"run {run_id} failed: {error}" if error else f"no run {run_id} in progress"


def _topology_mismatch(topology, nodes, models):
    """Why a job's topology does not describe this center's fleet, or None."""
    ours = [n.id for n in topology.nodes], [m.id for m in topology.models]
    if nodes is not None and sorted(nodes) != sorted(ours[0]):
        return (f"the job's topology has nodes {sorted(nodes)}, the center's "
                f"{sorted(ours[0])}: start the center with the job's topology")
    if models is not None and sorted(models) != sorted(ours[1]):
        return (f"the job's topology has models {sorted(models)}, the center's "
                f"{sorted(ours[1])}: start the center with the job's topology")
    return None
