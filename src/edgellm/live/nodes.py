"""The edge nodes the center knows: who they are, how they are, what they hold.

A node registers with the join token and gets a node token (kept here only as its
SHA-256). Its heartbeats carry its load and models. States, as GPUStack's workers
have them: READY; NOT_READY when heartbeats stop for ``not_ready_after_s``; UNREACHABLE
after ``unreachable_after_s`` (it must register again); DRAINING when asked to leave
(it finishes what it has and gets nothing new). A NOT_READY node whose heartbeats
resume is READY again.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

READY, NOT_READY, UNREACHABLE, DRAINING = "READY", "NOT_READY", "UNREACHABLE", "DRAINING"
STATES = (READY, NOT_READY, UNREACHABLE, DRAINING)


def token_digest(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class NodeRecord:
    id: str
    index: int                    # the node's index in the topology
    token_sha256: str
    engine: str = "simulated"
    address: str = ""
    pid: int = None               # the agent's process id, when it runs on this host
    monitor_url: str = ""         # the agent's own page (http/https only), "" when none
    state: str = READY
    registered_at: float = field(default_factory=time.monotonic)
    last_heartbeat: float = field(default_factory=time.monotonic)
    slots: int = 1
    slots_busy: int = 0
    queue: int = 0
    cpu_percent: float = None
    memory_percent: float = None
    models_ready: list = field(default_factory=list)     # catalog ids loaded
    models_loading: dict = field(default_factory=dict)   # catalog id -> {bytes, total, state}
    target: list = field(default_factory=list)           # catalog ids the center wants there
    failures: int = 0             # times it left READY
    transport: str = None         # how its tasks travel: "stream" (open), "http" (polls)

    def token_ok(self, token):
        return bool(token) and hmac.compare_digest(token_digest(token), self.token_sha256)

    def view(self, now=None):
        """The node as ``GET /api/nodes`` shows it (no token, no digest)."""
        now = time.monotonic() if now is None else now
        return {"id": self.id, "state": self.state,
                "heartbeat_age_s": round(now - self.last_heartbeat, 3),
                "engine": self.engine, "address": self.address, "pid": self.pid,
                "monitor_url": self.monitor_url,
                "slots": self.slots, "slots_in_use": self.slots_busy, "queue": self.queue,
                "cpu_percent": self.cpu_percent, "memory_percent": self.memory_percent,
                "models_ready": list(self.models_ready),
                "models_loading": dict(self.models_loading), "target_models": list(self.target),
                "failures": self.failures, "transport": self.transport}


class NodeTable:
    """The registered nodes, and the rules of their states (the module docstring)."""

    def __init__(self, topology, events, heartbeat_s=1.0, not_ready_after_s=3.0,
                 unreachable_after_s=5.0):
        if not 0 < heartbeat_s < not_ready_after_s < unreachable_after_s:
            raise ValueError("heartbeat interval < NOT_READY after < UNREACHABLE after, "
                             f"all above 0; got {heartbeat_s}, {not_ready_after_s}, "
                             f"{unreachable_after_s}")
        self.topology = topology
        self.index = {n.id: i for i, n in enumerate(topology.nodes)}
        self.events = events
        self.heartbeat_s = float(heartbeat_s)
        self.not_ready_after_s = float(not_ready_after_s)
        self.unreachable_after_s = float(unreachable_after_s)
        self.nodes = {}               # node id -> NodeRecord

    def register(self, node_id, engine="simulated", address="", pid=None, monitor_url=""):
        """A new node token for ``node_id`` (a topology node); a node that registers
        again (it was UNREACHABLE, or restarted) replaces its old record and token."""
        token = secrets.token_urlsafe(32)
        old = self.nodes.get(node_id)
        spec = self.topology.nodes[self.index[node_id]]
        record = NodeRecord(id=node_id, index=self.index[node_id], token_sha256=token_digest(token),
                            engine=engine, address=address, pid=pid, slots=spec.slots,
                            monitor_url=monitor_url,
                            target=list(old.target) if old else list(spec.models),
                            failures=old.failures if old else 0)
        self.nodes[node_id] = record
        self.events.add("register", f"{node_id} registered ({engine} engine"
                                    f"{', again' if old else ''})", node=node_id)
        return record, token

    def authenticate(self, node_id, token):
        record = self.nodes.get(node_id)
        return record if record is not None and record.token_ok(token) else None

    def heartbeat(self, record, report):
        """A heartbeat's report (load, models); returns the changes of state made."""
        record.last_heartbeat = time.monotonic()
        for key in ("slots_busy", "queue", "cpu_percent", "memory_percent"):
            if report.get(key) is not None:
                setattr(record, key, report[key])
        if report.get("models_ready") is not None:
            record.models_ready = list(report["models_ready"])
        if report.get("models_loading") is not None:
            record.models_loading = dict(report["models_loading"])
        if record.state == NOT_READY:
            record.state = READY
            self.events.add("back", f"{record.id} is back (heartbeats resumed)", node=record.id)
            return [(record, READY)]
        return []

    def drain(self, node_id):
        record = self.nodes[node_id]
        if record.state != DRAINING:
            record.state = DRAINING
            self.events.add("draining", f"{node_id} is draining: no new tasks", node=node_id)
        return record

    def forgive(self, seconds):
        """The center itself stalled for ``seconds``: heartbeats sent meanwhile could not
        be heard, so the nodes' silence is shortened by as much."""
        for record in self.nodes.values():
            record.last_heartbeat += seconds

    def sweep(self, now=None):
        """Nodes whose heartbeats stopped move on: [(record, new state)]."""
        now = time.monotonic() if now is None else now
        changed = []
        for record in self.nodes.values():
            age = now - record.last_heartbeat
            if record.state == READY and age > self.not_ready_after_s:
                record.state = NOT_READY
                record.failures += 1
                self.events.add("not_ready", f"{record.id}: no heartbeat for {age:.1f} s",
                                node=record.id)
                changed.append((record, NOT_READY))
            if record.state in (NOT_READY, DRAINING) and age > self.unreachable_after_s:
                record.state = UNREACHABLE
                self.events.add("unreachable", f"{record.id}: no heartbeat for {age:.1f} s",
                                node=record.id)
                changed.append((record, UNREACHABLE))
        return changed

    def ready(self):
        return [r for r in self.nodes.values() if r.state == READY]

    def views(self):
        now = time.monotonic()
        return [r.view(now) for r in self.nodes.values()]
