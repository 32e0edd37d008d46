"""The center's Prometheus metrics (``GET /metrics``), one registry per center.

Counters and histograms grow as tasks are answered and as the event log records
transfers and re-dispatches; the nodes' gauges are read from the node table when
Prometheus scrapes. A registry of its own per center (not prometheus-client's
global one): a process may hold several centers (tests do), each with its own figures.
docs/monitor.md lists every metric.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from edgellm.live.nodes import STATES

FLEET_SECONDS = ("in the fleet's seconds: what a node measured divided by the center's "
                 "time scale, plus the real time spent in HTTP")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class CenterMetrics:
    def __init__(self, center):
        self.center = center
        self.registry = CollectorRegistry()
        reg = self.registry
        self.tasks = Counter("edgellm_tasks", "Tasks answered, by the node that answered "
                             "('cloud' for the cloud), tier and task type",
                             ["node", "tier", "task_type"], registry=reg)
        self.latency = Histogram("edgellm_task_latency_seconds", "End-to-end latency of "
                                 f"answered tasks (sent to last token), {FLEET_SECONDS}",
                                 ["tier"], buckets=LATENCY_BUCKETS, registry=reg)
        self.ttft = Histogram("edgellm_task_ttft_seconds", "Time to first token of answered "
                              f"tasks, {FLEET_SECONDS}", ["tier"], buckets=TTFT_BUCKETS,
                              registry=reg)
        self.transfers = Counter("edgellm_transfers", "Model transfers to nodes that ended, "
                                 "by outcome (done: installed with its SHA-256 checked; "
                                 "failed: given up after retries)", ["node", "outcome"],
                                 registry=reg)
        self.transfer_bytes = Counter("edgellm_transfer_bytes", "Bytes of model files "
                                      "installed on nodes", ["node"], registry=reg)
        self.redispatches = Counter("edgellm_redispatches", "Tasks placed again because "
                                    "their node left READY, by the node they left",
                                    ["node"], registry=reg)
        self.late_answers = Counter("edgellm_late_answers", "Answers dropped because their "
                                    "task had gone elsewhere", ["node"], registry=reg)
        reg.register(_NodeGauges(center))
        center.on_answer.append(self.answered)
        center.events.listeners.append(self.event)

    def answered(self, task, response):
        tier = response.get("tier") or "?"
        task_type = response.get("task_type") or (task.sample.get("task_type")
                                                  if task is not None else None)
        self.tasks.labels(response.get("node") or tier, tier, task_type or "").inc()
        perf = response.get("perf") or {}
        if perf.get("e2e_latency") is not None:
            self.latency.labels(tier).observe(perf["e2e_latency"])
        if perf.get("time_to_first_token") is not None:
            self.ttft.labels(tier).observe(perf["time_to_first_token"])

    def event(self, event):
        kind, node = event["kind"], event.get("node") or ""
        if kind == "transfer_done":
            self.transfers.labels(node, "done").inc()
            self.transfer_bytes.labels(node).inc(event.get("bytes") or 0)
        elif kind == "transfer_failed":
            self.transfers.labels(node, "failed").inc()
        elif kind == "redispatch":
            self.redispatches.labels(node).inc()
        elif kind == "late_answer":
            self.late_answers.labels(node).inc()

    def exposition(self):
        return generate_latest(self.registry)


# the node table's gauges: (key, name, help)
NODE_GAUGES = (
    ("queue", "edgellm_node_queue_length", "Tasks waiting for the node: queued on it (its last "
                                           "heartbeat) and dispatched to it but not yet pulled"),
    ("busy", "edgellm_node_slots_in_use", "Slots running a task (its last heartbeat)"),
    ("slots", "edgellm_node_slots", "Slots of the node (tasks it runs at once)"),
    ("age", "edgellm_node_heartbeat_age_seconds", "Real seconds since the node's last heartbeat"),
    ("cpu", "edgellm_node_cpu_percent", "The node's CPU use, percent (its last heartbeat)"),
    ("memory", "edgellm_node_memory_percent", "The node's memory use, percent (its last "
                                              "heartbeat)"),
    ("models", "edgellm_node_models_ready", "Models loaded on the node"),
)


class _NodeGauges:
    """The node table as gauges, read at scrape time."""

    def __init__(self, center):
        self.center = center

    def collect(self):
        state = GaugeMetricFamily("edgellm_node_state", "1 for the state the node is in, 0 "
                                  "for the others", labels=["node", "state"])
        gauges = {key: GaugeMetricFamily(name, text, labels=["node"])
                  for key, name, text in NODE_GAUGES}
        center = self.center
        for view in center.nodes.views():
            node = view["id"]
            for name in STATES:
                state.add_metric([node, name], float(view["state"] == name))
            figures = {"queue": (view["queue"] or 0) + len(center.queues.get(node, ())),
                       "busy": view["slots_in_use"] or 0, "slots": view["slots"],
                       "age": view["heartbeat_age_s"], "cpu": view["cpu_percent"],
                       "memory": view["memory_percent"], "models": len(view["models_ready"])}
            for key, value in figures.items():
                if value is not None:  # no heartbeat yet: no CPU or memory figure
                    gauges[key].add_metric([node], value)
        yield state
        yield from gauges.values()
