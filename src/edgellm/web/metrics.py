"""The center's Prometheus metrics (``GET /metrics``), one registry per center.

Counters and histograms grow as tasks are answered and as the event log records
transfers and re-dispatches; the nodes' gauges are read from the node table when
Prometheus scrapes. A registry of its own per center (not prometheus-client's
global one): a process may hold several centers (tests do), each with its own figures.
docs/monitor.md lists every metric.
"""

import bisect
import itertools

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.utils import floatToGoString

from edgellm.live.nodes import STATES

FLEET_SECONDS = ("in the fleet's seconds: what a node measured divided by the center's "
                 "time scale, plus the real time spent in HTTP")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class _Counter:
    """A counter by label values. Counted on the center's event loop, read there at
    scrape time: plain dicts, no locks (prometheus-client's own cost several
    microseconds a task)."""

    def __init__(self, name, doc, labels):
        self.name, self.doc, self.labels = name, doc, labels
        self.values = {}

    def inc(self, key, amount=1.0):
        self.values[key] = self.values.get(key, 0.0) + amount

    def family(self):
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(list(key), value)
        return family


class _Histogram(_Counter):
    def __init__(self, name, doc, labels, bounds):
        super().__init__(name, doc, labels)
        self.bounds = tuple(bounds)

    def observe(self, key, value):
        series = self.values.get(key)
        if series is None:
            series = self.values[key] = [[0] * (len(self.bounds) + 1), 0.0]
        series[0][bisect.bisect_left(self.bounds, value)] += 1  # buckets count value <= le
        series[1] += value

    def family(self):
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        for key, (counts, total) in self.values.items():
            cumulative = list(itertools.accumulate(counts))
            buckets = [(floatToGoString(b), n) for b, n in zip(self.bounds, cumulative)]
            family.add_metric(list(key), buckets + [("+Inf", cumulative[-1])], total)
        return family


class CenterMetrics:
    def __init__(self, center):
        self.center = center
        self.tasks = _Counter("edgellm_tasks", "Tasks answered, by the node that answered "
                              "('cloud' for the cloud), tier and task type",
                              ["node", "tier", "task_type"])
        self.latency = _Histogram("edgellm_task_latency_seconds", "End-to-end latency of "
                                  f"answered tasks (sent to last token), {FLEET_SECONDS}",
                                  ["tier"], LATENCY_BUCKETS)
        self.ttft = _Histogram("edgellm_task_ttft_seconds", "Time to first token of answered "
                               f"tasks, {FLEET_SECONDS}", ["tier"], TTFT_BUCKETS)
        self.transfers = _Counter("edgellm_transfers", "Model transfers to nodes that ended, "
                                  "by outcome (done: installed with its SHA-256 checked; "
                                  "failed: given up after retries)", ["node", "outcome"])
        self.transfer_bytes = _Counter("edgellm_transfer_bytes", "Bytes of model files "
                                       "installed on nodes", ["node"])
        self.redispatches = _Counter("edgellm_redispatches", "Tasks placed again because "
                                     "their node left READY, by the node they left", ["node"])
        self.late_answers = _Counter("edgellm_late_answers", "Answers dropped because their "
                                     "task had gone elsewhere", ["node"])
        self.registry = CollectorRegistry()
        self.registry.register(self)
        center.on_answer.append(self.answered)
        center.events.listeners.append(self.event)

    def answered(self, task, response):
        tier = response.get("tier") or "?"
        task_type = response.get("task_type") or (task.sample.get("task_type")
                                                  if task is not None else None)
        self.tasks.inc((response.get("node") or tier, tier, task_type or ""))
        perf = response.get("perf") or {}
        if perf.get("e2e_latency") is not None:
            self.latency.observe((tier,), perf["e2e_latency"])
        if perf.get("time_to_first_token") is not None:
            self.ttft.observe((tier,), perf["time_to_first_token"])

    def event(self, event):
        kind, node = event["kind"], event.get("node") or ""
        if kind == "transfer_done":
            self.transfers.inc((node, "done"))
            self.transfer_bytes.inc((node,), event.get("bytes") or 0)
        elif kind == "transfer_failed":
            self.transfers.inc((node, "failed"))
        elif kind == "redispatch":
            self.redispatches.inc((node,))
        elif kind == "late_answer":
            self.late_answers.inc((node,))

    def collect(self):
        for metric in (self.tasks, self.latency, self.ttft, self.transfers,
                       self.transfer_bytes, self.redispatches, self.late_answers):
            yield metric.family()
        yield from _node_gauges(self.center)

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


def _node_gauges(center):
    """The node table as gauges, read at scrape time."""
    state = GaugeMetricFamily("edgellm_node_state", "1 for the state the node is in, 0 "
                              "for the others", labels=["node", "state"])
    gauges = {key: GaugeMetricFamily(name, text, labels=["node"])
              for key, name, text in NODE_GAUGES}
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
    return [state, *gauges.values()]
