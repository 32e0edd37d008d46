"""An edge agent's own page, served by the agent's process beside its work.

It shows the node's engine and models (loaded, and in transfer with their progress),
the tasks it is serving, its recent tasks with their type, latency and score, its CPU
and memory over the last minutes and its transfers. The agent tells of each change
(``agent.watchers``, from its loop or its download threads); the page gets a new
snapshot at most every ``every_s`` by server-sent events (``api/stream``;
``api/state``: the same as JSON). Scores are computed for the tasks shown only, in a
thread (a scorer's library may take seconds to load).
"""

import asyncio
import collections
import time

from fastapi import FastAPI

from edgellm.live.service import JSONBody
from edgellm.web.assets import add_assets
from edgellm.web.broadcast import Broadcast
from edgellm.web.pages import edge_page
from edgellm.web.round_stats import score

LOAD_WINDOW_S = 600.0  # CPU and memory shown for the last ten minutes


class EdgeMonitor:
    def __init__(self, agent, every_s=0.3):
        self.agent, self.every_s = agent, float(every_s)
        self.broadcast = Broadcast()
        self.scores = collections.OrderedDict()  # task seq -> score, for recent tasks
        self._due = None
        agent.watchers.append(self.changed)

    def changed(self, kind):
        """Called by the agent on its loop or from a download thread."""
        loop = self.broadcast.loop
        if loop is None or not self.broadcast:
            return
        loop.call_soon_threadsafe(self._schedule)

    def _schedule(self):
        if self._due is None:
            self._due = asyncio.get_running_loop().call_later(self.every_s, self._push)

    def _push(self):
        self._due = None
        asyncio.get_running_loop().create_task(self._push_snapshot())

    async def _push_snapshot(self):
        if self.broadcast:
            self.broadcast.publish(*await self.snapshot())

    async def snapshot(self):
        agent = self.agent
        recent = list(agent.recent)
        unscored = [r for r in recent if r["seq"] not in self.scores]
        if unscored:
            answers = [(r["task_type"], r["gold"], {"prediction": r["prediction"],
                                                    "error": r["error"]}) for r in unscored]
            for entry, value in zip(unscored, await asyncio.to_thread(score, answers)):
                self.scores[entry["seq"]] = value
            while len(self.scores) > 2 * agent.recent.maxlen:
                self.scores.popitem(last=False)
        now = time.time()
        node = getattr(agent, "node", None)
        return "snapshot", {
            "server_time": now, "node": agent.node_id, "engine": agent.engine_name,
            "center": agent.center_url, "time_scale": getattr(agent, "time_scale", None),
            "slots": node.slots if node else None, "busy": agent.busy,
            "queue": agent.queue.qsize(), "target": list(agent.target),
            "ready": sorted(m for m, e in agent.ready.items() if e.is_set()),
            "loading": {m: dict(v) for m, v in list(agent.loading.items())},
            "current": [{"task": k, **v} for k, v in list(agent.current.items())],
            "recent": [{k: r[k] for k in ("seq", "at", "model", "task_type", "e2e_s",
                                          "error")} | {"score": self.scores.get(r["seq"])}
                       for r in reversed(recent)],
            "load": [s for s in list(agent.load) if s[0] >= now - LOAD_WINDOW_S],
            "transfers": [dict(t) for t in reversed(list(agent.transfers))]}


def edge_app(agent):
    monitor = EdgeMonitor(agent)
    app = FastAPI(title=f"edgellm edge {agent.node_id}", docs_url=None, redoc_url=None,
                  openapi_url=None, default_response_class=JSONBody)
    app.state.monitor = monitor
    app.state.on_stop = [monitor.broadcast.close]
    add_assets(app)

    @app.get("/", include_in_schema=False)
    async def page():
        return edge_page(agent.node_id)

    @app.get("/api/stream", include_in_schema=False)
    async def stream():
        return monitor.broadcast.response(monitor.snapshot)

    @app.get("/api/state")
    async def state():
        return (await monitor.snapshot())[1]

    return app
