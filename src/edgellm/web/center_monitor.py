"""What the center's page shows, kept current and pushed as it changes.

``CenterMonitor`` listens to the center: its event log (a node changing state, a
transfer, a re-dispatch: pushed at once with the node table, so a node that goes
UNREACHABLE is on the page as soon as the center's sweep notices), the nodes'
heartbeats (their load and transfer progress: pushed at most every ``load_every_s``)
and the answered tasks (per-round figures, scored off the event loop and pushed at
most every ``rounds_every_s``). A page that connects gets a snapshot of it all.

Messages (server-sent events): ``snapshot``, ``nodes``, ``event``, ``rounds``,
``cache``, ``run``; each carries ``server_time`` so that a page can age heartbeats
on its own clock.
"""

import asyncio
import threading
import time

from edgellm.live.nodes import UNREACHABLE
from edgellm.live.warm_up import answer_and_score
from edgellm.web.broadcast import Broadcast
from edgellm.web.cache_timeline import CacheTimeline
from edgellm.web.round_stats import RoundStats, score_pending

EVENTS_SHOWN = 500  # the newest events a page gets with its snapshot


class CenterMonitor:
    def __init__(self, center, load_every_s=0.25, rounds_every_s=0.5):
        self.center = center
        self.load_every_s, self.rounds_every_s = float(load_every_s), float(rounds_every_s)
        self.broadcast = Broadcast()
        self.rounds = RoundStats()
        self.cache = CacheTimeline()
        self.run_id = None
        self._load_due = self._rounds_due = None
        self._scoring = False
        # the scorers' libraries load now, in a thread of their own, not while tasks of a
        # new type are in flight (live/warm_up.py)
        threading.Thread(target=answer_and_score, args=(center.topology.models[0].profile,),
                         name="scorers-warm-up", daemon=True).start()
        center.events.listeners.append(self.event)
        center.on_heartbeat.append(self.heartbeat)
        center.on_answer.append(self.answered)

    # -- what the center tells -----------------------------------------------------------

    def event(self, event):
        if event["kind"] == "run_start" and self.center.run is not None:
            self.rounds, self.run_id = RoundStats(), self.center.run.id
        mark = self.cache.mark(event)
        node = self.center.nodes.nodes.get(event.get("node"))
        spans = self._cache_of(node) if event["kind"] == "unreachable" and node else []
        if not self.broadcast:
            return
        self.broadcast.publish("event", {"server_time": time.time(), "event": event})
        if event.get("node") is not None:  # its state may have changed: the table, now
            self.broadcast.publish("nodes", self.nodes())
        if mark is not None or spans:
            self.broadcast.publish("cache", {"marks": [mark] if mark else [], "spans": spans})
        if event["kind"] in ("run_start", "run_end", "error"):
            self.broadcast.publish("run", self.run())

    def heartbeat(self, record):
        spans = self._cache_of(record)
        if spans and self.broadcast:
            self.broadcast.publish("cache", {"spans": spans, "marks": []})
        self._later("_load_due", self.load_every_s, self._push_nodes)

    def answered(self, task, response):
        self.rounds.add(response, task.sample.get("gold"), task.sample.get("task_type"))
        self._later("_rounds_due", self.rounds_every_s, self._push_rounds)

    def _cache_of(self, record):
        """An UNREACHABLE node's models are unknown: their spans end."""
        models = [] if record.state == UNREACHABLE else record.models_ready
        return self.cache.update(record.id, models, time.time())

    # -- pushing -----------------------------------------------------------------------

    def _later(self, slot, delay, push):
        """Run ``push`` once within ``delay`` (however many changes come meanwhile)."""
        if getattr(self, slot) is None and self.broadcast:
            setattr(self, slot, asyncio.get_running_loop().call_later(delay, push))

    def _push_nodes(self):
        self._load_due = None
        self.broadcast.publish("nodes", self.nodes())

    def _push_rounds(self):
        self._rounds_due = None
        if not self._scoring:
            asyncio.get_running_loop().create_task(self._score_and_push())

    async def _score_and_push(self):
        """Score what was answered in a thread (a scorer's library may take seconds to
        load), then push the rounds that changed."""
        self._scoring = True
        try:
            stats = self.rounds
            pending = stats.take_pending()
            if pending:
                stats.apply_scores(pending, await asyncio.to_thread(score_pending, pending))
            if stats is self.rounds:
                self.broadcast.publish("rounds", {"run": self.run_id,
                                                  "rows": stats.take_changed()})
                self.broadcast.publish("run", self.run())
        finally:
            self._scoring = False
        if self.rounds.pending:
            self._later("_rounds_due", self.rounds_every_s, self._push_rounds)

    # -- what a page gets ----------------------------------------------------------------

    def nodes(self):
        now = time.time()
        return {"server_time": now, "nodes": self.center.nodes.views()}

    def run(self):
        center = self.center
        run = center.run
        info = {"server_time": time.time(), "topology": center.topology.name,
                "time_scale": center.time_scale, "run": None, "error": center.run_error}
        if run is not None:
            info["run"] = {"id": run.id, "offloader": run.settings.get("offloader"),
                           "caching": run.settings.get("caching"), "tasks": len(run.tasks),
                           "answered": len(run.finished_keys)}
        return info

    async def snapshot(self):
        """Everything a page shows (pending answers scored first, off the loop)."""
        stats = self.rounds
        pending = stats.take_pending()
        if pending:
            stats.apply_scores(pending, await asyncio.to_thread(score_pending, pending))
        return "snapshot", {**self.nodes(), "run": self.run(),
                "events": self.center.events.since(0, limit=EVENTS_SHOWN),
                "rounds": {"run": self.run_id, "rows": stats.rows()},
                "cache": self.cache.view()}
