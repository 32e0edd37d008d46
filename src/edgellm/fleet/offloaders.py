"""Task offloading: which node, and which model loaded there, serves a task.

An offloader is one method, ``choose(task, options) -> row``: ``options`` (a
``FleetOptions``, edgellm.records) holds one row per (node, model loaded or loading
there) with the center's expectations for this task. The simulator applies the
SLO-aware cloud fallback around any offloader, so each one only ranks edge options.
Learning offloaders also get ``observe(outcomes)`` after every round: what the tasks
really scored and took (``FleetOutcome`` records).
"""

import numpy as np


class Offloader:
    """Base class: parameters stored by ``__init__``, nothing else needed."""

    learns = False

    def choose(self, task, options):
        raise NotImplementedError

    def observe(self, outcomes):
        """Feedback after a round (learning offloaders override it)."""


class RoundRobinOffloader(Offloader):
    """Nodes in turn; on the node, its models in turn. Ignores load and quality."""

    def __init__(self):
        self._next_node = 0
        self._next_model = {}

    def choose(self, task, options):
        nodes = np.unique(options.node)
        node = nodes[np.searchsorted(nodes, self._next_node) % len(nodes)]
        self._next_node = int(node) + 1
        rows = np.flatnonzero(options.node == node)
        turn = self._next_model.get(int(node), 0)
        self._next_model[int(node)] = turn + 1
        return int(rows[turn % len(rows)])


class LeastLoadedOffloader(Offloader):
    """The option with the earliest expected finish (ties: the first). Ignores quality."""

    def choose(self, task, options):
        return int(np.argmin(options.latency_s))


class QualityGreedyOffloader(Offloader):
    """Maximise expected quality minus ``latency_weight`` x expected latency (per s)."""

    def __init__(self, latency_weight=0.02):
        self.latency_weight = float(latency_weight)

    def choose(self, task, options):
        return int(np.argmax(options.quality - self.latency_weight * options.latency_s))
