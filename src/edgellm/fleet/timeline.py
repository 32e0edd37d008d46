"""The clock's parts: node slots, loaded models, the cloud's rate limit.

The simulator's nodes (``NodeState``) advance with what tasks really took; the
center (fleet/center.py) keeps its own slot clocks, what it expects (it cannot know
an answer's length before it is generated), re-synced to the nodes' at the start of
every round, as if nodes reported in.
"""

import heapq

import numpy as np


class SlotClock:
    """Free times of a node's parallel slots."""

    def __init__(self, slots):
        self.free = [0.0] * slots

    def earliest(self):
        return min(self.free)

    def busy_at(self, time_s):
        """Slots still serving at ``time_s``."""
        return sum(1 for free in self.free if free > time_s)

    def take(self, start, busy_s):
        """Occupy the earliest-free slot from ``start`` for ``busy_s``."""
        k = self.free.index(min(self.free))
        self.free[k] = start + busy_s

    def copy_from(self, other):
        self.free = list(other.free)


class NodeState:
    """One edge node on the timeline."""

    def __init__(self, node):
        self.node = node
        self.actual = SlotClock(node.slots)
        self.ready_at = {}          # catalog index -> time the model is usable
        self.link_free = 0.0        # the link moves one model at a time
        self.in_system = []         # heap of actual finish times of tasks sent here
        self.busy_s = 0.0

    def queue_len(self, now):
        """Tasks sent here that have not finished by ``now`` (waiting or running)."""
        heap = self.in_system
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        return len(heap)


class TokenBucket:
    """A provider's rate limit: ``rate`` requests/s, bursts up to ``burst``."""

    def __init__(self, rate, burst=None):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.tokens = self.burst
        self.t_last = 0.0

    def admit(self, t):
        """When a request made at ``t`` may start (and take its token)."""
        te = max(t, self.t_last)
        tokens = min(self.burst, self.tokens + (te - self.t_last) * self.rate)
        if tokens >= 1.0:
            start, self.tokens = te, tokens - 1.0
        else:
            start, self.tokens = te + (1.0 - tokens) / self.rate, 0.0
        self.t_last = start
        return start

    def peek(self, t):
        """``admit`` without taking the token."""
        saved = self.tokens, self.t_last
        start = self.admit(t)
        self.tokens, self.t_last = saved
        return start

    def copy_from(self, other):
        self.tokens, self.t_last = other.tokens, other.t_last


class CandidateTable:
    """The (node, model) pairs loaded or loading, as arrays for vectorised estimates;
    ``ready_at[i]`` maps catalog index to the time the model is usable on node ``i``."""

    def __init__(self, ready_at, topology):
        rows = [(i, m, ready) for i, models in enumerate(ready_at)
                for m, ready in sorted(models.items())]
        self.node = np.array([r[0] for r in rows], dtype=np.int64)
        self.model = np.array([r[1] for r in rows], dtype=np.int64)
        self.ready_at = np.array([r[2] for r in rows], dtype=np.float64)
        models, nodes = topology.models, topology.nodes
        speed = np.array([nodes[i].speed for i in self.node], dtype=np.float64)
        self.s_per_prompt_token = 1.0 / (np.array(
            [models[m].prefill_tokens_per_s for m in self.model], dtype=np.float64) * speed)
        self.overhead = np.array([models[m].overhead_s for m in self.model],
                                 dtype=np.float64) / speed
        self.itl = 1.0 / (np.array(
            [models[m].decode_tokens_per_s for m in self.model], dtype=np.float64) * speed)
        # attention's terms (CatalogModel.prefill_s, token_s); most catalogs have none
        self.s_per_prompt_token2 = np.array(
            [models[m].prefill_s_per_token2 for m in self.model], dtype=np.float64) / speed
        self.s_per_context_token = np.array(
            [models[m].decode_s_per_context_token for m in self.model], dtype=np.float64) \
            / speed
        self.attention = bool(self.s_per_prompt_token2.any() or self.s_per_context_token.any())
        self.rtt = np.array([nodes[i].rtt_s for i in self.node], dtype=np.float64)
        self.half_rtt = self.rtt / 2
        self.s_per_byte = np.array([1.0 / (nodes[i].bandwidth_mbps * 1e6) for i in self.node],
                                  dtype=np.float64) * 8

    def __len__(self):
        return len(self.node)
