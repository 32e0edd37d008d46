"""Metrics of a fleet of edge nodes: latency SLO, model cache, transfers, load.

Same calling convention as ``edgellm.metrics.joint_inference`` (``edgellm.metrics.
catalog`` registers these with the others): ``f(y_true, y_pred)`` over
``[is_hard, res, edge_result, cloud_result]`` results. They read the extras the fleet
adds to each response (docs/metrics.md, "Fleet metrics"):

- ``slo_s`` (the offloader's latency SLO or None), ``cache_hit`` (True/False on edge
  tasks, None on cloud ones), ``perf.arrival_s``/``finish_s``/``busy_s``;
- ``fleet``, on a few responses only: ``{"nodes": {node: slots}}`` and
  ``{"transfers": [{"node", "model", "gb", "seconds"}]}``, fleet-level facts charged
  to the task that triggered them, so that their sum over responses is the total.

A metric with nothing to measure (no SLO, no fleet) is NaN, never 0.
"""

import math

import numpy as np

from edgellm.metrics.responses import answers, duration, produced


def _slo_met(y_pred):
    """Booleans, one per answered request with an SLO: E2E latency within it."""
    pairs = [(r["perf"].get("e2e_latency"), r.get("slo_s")) for r in answers(y_pred)]
    met = [e2e is not None and e2e <= slo for e2e, slo in pairs if slo is not None]
    return np.array(met, dtype=bool)


def slo_attainment(y_true, y_pred):
    """SLO Attainment (%): answered requests whose E2E latency is within their
    ``slo_s`` / answered requests that have an ``slo_s``. NaN when none has one."""
    met = _slo_met(y_pred)
    return round(100.0 * float(met.mean()), 2) if met.size else math.nan


def goodput(y_true, y_pred):
    """Goodput (req/s): answered requests within their SLO / duration (the makespan,
    max finish_s - min arrival_s over answered requests; the sum of their E2E
    latencies where they carry no timestamps, as Request Throughput). NaN when no
    request has an SLO."""
    met = _slo_met(y_pred)
    span = duration(answers(y_pred))
    return round(int(met.sum()) / span, 4) if met.size and span > 0 else math.nan


def cache_hit_ratio(y_true, y_pred):
    """Cache Hit Ratio (%): edge responses with ``cache_hit`` True / edge responses
    with ``cache_hit`` not None (the task's preferred model was loaded and ready on the
    node that served it when it arrived). NaN when no response says."""
    hits = [r["cache_hit"] for r in produced(y_pred)
            if r.get("tier") == "edge" and r.get("cache_hit") is not None]
    return round(100.0 * float(np.mean(hits)), 2) if hits else math.nan


def _transfers(y_pred):
    return [t for r in produced(y_pred) for t in (r.get("fleet") or {}).get("transfers", ())]


def models_transferred(y_true, y_pred):
    """Models Transferred (count): model transfers to nodes at caching rounds, summed
    over the responses' ``fleet.transfers``."""
    return len(_transfers(y_pred))


def transfer_gb(y_true, y_pred):
    """Transfer GB: gigabytes of models moved to nodes (sum of the transfers' ``gb``)."""
    return round(float(sum(t["gb"] for t in _transfers(y_pred))), 3)


def transfer_seconds(y_true, y_pred):
    """Transfer Seconds (s): transfer plus load time of the moved models, summed over
    transfers (the time they were unusable on their node, not wall time: nodes
    transfer in parallel)."""
    return round(float(sum(t["seconds"] for t in _transfers(y_pred))), 3)


def _nodes(responses):
    """{node: slots} of the fleet, from the responses' ``fleet.nodes`` facts."""
    nodes = {}
    for r in responses:
        nodes.update((r.get("fleet") or {}).get("nodes") or {})
    return nodes


def _busy_per_slot(responses, nodes):
    """Busy seconds per slot of each node in ``nodes`` (idle nodes 0), an array in
    the order of ``nodes``."""
    busy = dict.fromkeys(nodes, 0.0)
    for r in responses:
        if r.get("tier") != "edge":
            continue
        node = r.get("node")
        if node not in busy:
            raise ValueError(f"edge response served on node {node!r}, which is not in the "
                             f"fleet's nodes {sorted(nodes)}")
        busy[node] += float(r["perf"].get("busy_s") or 0.0)
    return np.array([busy[n] / nodes[n] for n in nodes], dtype=np.float64)


def _timeline_span(responses):
    """First arrival to last finish over the responses that carry both, or None."""
    times = [(r["perf"].get("arrival_s"), r["perf"].get("finish_s")) for r in responses]
    times = np.array([t for t in times if None not in t], dtype=np.float64).reshape(-1, 2)
    return float(times[:, 1].max() - times[:, 0].min()) if len(times) else None


def _utilisation(y_pred):
    """(node ids, utilisation fractions), or None without nodes or a timeline."""
    responses = produced(y_pred)
    nodes = _nodes(responses)
    span = _timeline_span(responses)
    if not nodes or not span:
        return None
    return list(nodes), _busy_per_slot(responses, nodes) / span


def node_utilisation_by_node(y_pred):
    """{node: utilisation %} (busy seconds / (slots × makespan)), every node of the
    fleet including idle ones; {} when the results carry no fleet. What the fleet
    module writes to the case folder."""
    util = _utilisation(y_pred)
    if util is None:
        return {}
    return {node: round(100.0 * float(u), 2) for node, u in zip(*util)}


def load_balance(y_true, y_pred):
    """Load Balance: Jain's fairness index (sum x)^2 / (n × sum x^2) over the fleet's n
    nodes of x = busy seconds per slot (idle nodes count as 0). 1.0 = perfectly even,
    1/n = one node did all the work. NaN without a fleet or when no node worked."""
    responses = produced(y_pred)
    nodes = _nodes(responses)
    if not nodes:
        return math.nan
    x = _busy_per_slot(responses, nodes)
    square_sum = float(np.square(x).sum())
    return round(float(x.sum()) ** 2 / (x.size * square_sum), 4) if square_sum > 0 else math.nan


def node_utilisation(y_true, y_pred):
    """Node Utilisation (%): mean over the fleet's nodes of busy seconds / (slots ×
    makespan), the makespan from the first arrival to the last finish."""
    util = _utilisation(y_pred)
    return round(100.0 * float(util[1].mean()), 2) if util is not None else math.nan


def max_node_utilisation(y_true, y_pred):
    """Max Node Utilisation (%): the busiest node's busy seconds / (slots × makespan)."""
    util = _utilisation(y_pred)
    return round(100.0 * float(util[1].max()), 2) if util is not None else math.nan


# Metric name (as in testenv.yaml) -> function (edgellm.metrics.catalog has them all).
def _fact_sum(y_pred, name):
    return int(sum(int((r.get("fleet") or {}).get(name) or 0) for r in produced(y_pred)))


def redispatched_tasks(y_true, y_pred):
    """Redispatched Tasks (count): times a task went to another node, or the cloud,
    because its node left READY (the live fleet; the responses' ``redispatched``). 0
    in the simulation, where nodes do not fail."""
    return int(sum(int(r.get("redispatched") or 0) for r in produced(y_pred)))


def node_failures(y_true, y_pred):
    """Node Failures (count): times a node stopped sending heartbeats and went
    NOT_READY during the run (the responses' ``fleet.node_failures`` facts)."""
    return _fact_sum(y_pred, "node_failures")


def transfer_retries(y_true, y_pred):
    """Transfer Retries (count): model downloads that were cut or corrupt and started
    again or resumed (the responses' ``fleet.transfer_retries`` facts)."""
    return _fact_sum(y_pred, "transfer_retries")


METRICS = {
    "SLO Attainment": slo_attainment,
    "Goodput": goodput,
    "Cache Hit Ratio": cache_hit_ratio,
    "Models Transferred": models_transferred,
    "Transfer GB": transfer_gb,
    "Transfer Seconds": transfer_seconds,
    "Load Balance": load_balance,
    "Node Utilisation": node_utilisation,
    "Max Node Utilisation": max_node_utilisation,
    "Redispatched Tasks": redispatched_tasks,
    "Node Failures": node_failures,
    "Transfer Retries": transfer_retries,
}
