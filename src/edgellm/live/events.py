"""The center's event log: what happened to nodes, tasks and transfers, newest first.

Every event is a dict ``{"seq", "time", "kind", "node", "message", ...}``; ``seq``
increases by one per event, so a reader (the monitor, ``GET /api/events?after=N``)
asks for what is new. The log is bounded: the oldest events go first.
"""

import collections
import threading
import time

KINDS = ("register", "ready", "not_ready", "unreachable", "back", "draining", "transfer_start",
         "transfer_done", "transfer_failed", "redispatch", "late_answer", "run_start", "run_end",
         "error")


class EventLog:
    def __init__(self, limit=10000, listeners=()):
        self._events = collections.deque(maxlen=limit)
        self._seq = 0
        self._lock = threading.Lock()
        self.listeners = list(listeners)  # called with each new event (pushed to monitors)

    def add(self, kind, message, node=None, **fields):
        with self._lock:
            self._seq += 1
            event = {"seq": self._seq, "time": time.time(), "kind": kind, "node": node,
                     "message": message, **fields}
            self._events.append(event)
        for listener in self.listeners:
            listener(event)
        return event

    def since(self, after=0, kind=None, node=None, limit=500):
        """Events with ``seq > after``, newest first, optionally of one kind or node."""
        with self._lock:
            events = [e for e in reversed(self._events) if e["seq"] > after]
        if kind:
            events = [e for e in events if e["kind"] == kind]
        if node:
            events = [e for e in events if e["node"] == node]
        return events[:limit]

    def count(self, kind):
        with self._lock:
            return sum(1 for e in self._events if e["kind"] == kind)

    @property
    def last_seq(self):
        return self._seq
