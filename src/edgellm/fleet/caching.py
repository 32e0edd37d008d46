"""Model caching: which models each node keeps loaded, re-planned every K rounds.

A policy is one method, ``plan(node, topology, demand, resident) -> [model ids]``:
the models the node should hold from now on (they must fit its memory). The
simulator evicts what is dropped and transfers and loads what is new, paying the
time on the timeline.

What a task "requests" is its preferred model on that node: the catalog's best
for its task type among the models that fit the node (``Topology.preferred_model``).
"""

from dataclasses import dataclass, field


@dataclass
class Demand:
    """Task-type statistics the center keeps (seen at arrival)."""

    window: dict = field(default_factory=dict)     # task type -> count since the last plan
    total: dict = field(default_factory=dict)      # task type -> count since the start
    last_seen: dict = field(default_factory=dict)  # task type -> arrival index of the latest
    horizon_s: float = 0.0     # seconds the last window lasted: how long a plan will stand

    def add(self, task_type, index):
        self.window[task_type] = self.window.get(task_type, 0) + 1
        self.total[task_type] = self.total.get(task_type, 0) + 1
        self.last_seen[task_type] = index

    def next_window(self):
        self.window = {}


class CachingPolicy:
    def plan(self, node, topology, demand, resident):
        raise NotImplementedError


def _fill(node, topology, model_ids):
    """Models from ``model_ids`` in order while they fit the node's memory."""
    chosen, used = [], 0.0
    for model_id in model_ids:
        size = topology.model(model_id).size_gb
        if model_id not in chosen and used + size <= node.memory_gb + 1e-9:
            chosen.append(model_id)
            used += size
    return chosen


def _keep_requested(node, topology, task_types, resident):
    """The models ``task_types`` request on the node, in that order, then what is
    loaded, while they fit."""
    wanted = [topology.preferred_model(t, node) for t in task_types]
    return _fill(node, topology, [m for m in wanted if m] + list(resident))


class StaticCaching(CachingPolicy):
    """Keep the initial placement."""

    def plan(self, node, topology, demand, resident):
        return list(resident)


class LruCaching(CachingPolicy):
    """Keep the models requested most recently (then what is loaded, by recency)."""

    def plan(self, node, topology, demand, resident):
        recent = sorted(demand.last_seen, key=demand.last_seen.get, reverse=True)
        return _keep_requested(node, topology, recent, resident)


class LfuCaching(CachingPolicy):
    """Keep the models requested most often since the start."""

    def plan(self, node, topology, demand, resident):
        frequent = sorted(demand.total, key=lambda t: (-demand.total[t], t))
        return _keep_requested(node, topology, frequent, resident)


class DemandKnapsackCaching(CachingPolicy):
    """Maximise expected quality x demand under the node's memory.

    The value of a set S is sum over task types t of d_t * max over m in S of
    b_t + u(m) * (q(m, t) - b_t): d_t the share of t among the last window's tasks,
    b_t the best quality for t among the loaded models S keeps (they serve while new
    ones arrive), u(m) the share of the planning horizon the model will be usable (1
    if loaded; else what is left after its transfer and load), so a model that cannot
    arrive in time is not worth evicting another for. The horizon is ``horizon_windows`` times the last window's
    length: how long the planner expects today's demand to last. Greedy by
    marginal value, per GB and absolute, and the best single model: the best of the
    three (the classic guarantee for this submodular knapsack); ties keep what is
    loaded."""

    def __init__(self, horizon_windows=4, min_gain=0.0):
        self.horizon_windows = float(horizon_windows)
        self.min_gain = float(min_gain)

    def plan(self, node, topology, demand, resident):
        counts = demand.window or demand.total
        total = sum(counts.values())
        if not total:
            return list(resident)
        share = {t: c / total for t, c in counts.items()}
        fitting = [m for m in topology.models if m.size_gb <= node.memory_gb]
        horizon = demand.horizon_s * self.horizon_windows
        usable = {m.id: 1.0 if m.id in resident else _usable(node, m, horizon)
                  for m in fitting}

        def value(models):
            """Expected quality under the demand: while a new model is on its way the
            node serves with the loaded ones it keeps."""
            kept = [m for m in models if m.id in resident]
            total = 0.0
            for t, d in share.items():
                base = max((m.quality_for(t) for m in kept), default=0.0)
                total += d * max([base] + [base + usable[m.id] * (m.quality_for(t) - base)
                                           for m in models])
            return total

        candidates = [_greedy(fitting, value, node.memory_gb, resident, per_gb)
                      for per_gb in (True, False)]
        candidates += [[m] for m in fitting]
        chosen = max(candidates, key=lambda c: (value(c) - self.min_gain * len(c),
                                                sum(m.id in resident for m in c)))
        # leftover memory keeps what is loaded: free to keep, costly to bring back
        return _fill(node, topology, [m.id for m in chosen] + list(resident))


def _greedy(fitting, value, memory_gb, resident, per_gb):
    """Add the model of the best marginal value (per GB, or absolute) while one fits."""
    chosen, used = [], 0.0
    while True:
        base = value(chosen)
        best, best_key = None, None
        for m in fitting:
            if m in chosen or used + m.size_gb > memory_gb + 1e-9:
                continue
            gain = value(chosen + [m]) - base
            if gain <= 1e-12:
                continue
            key = (gain / m.size_gb if per_gb else gain, m.id in resident, m.id)
            if best_key is None or key > best_key:
                best, best_key = m, key
        if best is None:
            return chosen
        chosen.append(best)
        used += best.size_gb


def _usable(node, model, horizon_s):
    """Share of the next ``horizon_s`` seconds a model not loaded yet would serve."""
    if horizon_s <= 0:
        return 1.0
    delay = node.transfer_s(model.size_gb) + model.size_gb * model.load_s_per_gb / node.speed
    return max(0.0, 1.0 - delay / horizon_s)
