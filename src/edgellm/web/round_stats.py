"""Per-round figures of a fleet's answered tasks, for the round charts.

One row per round: end-to-end latency p50 and p95 over its tasks, tasks per node
(the cloud included), mean quality per task type, cloud fallbacks (tasks the cloud
answered) and re-dispatched tasks. The live center feeds it as answers arrive; a
finished case's results.jsonl feeds it afterwards, so both pages draw the same rows.

Scoring an answer can load a scorer's library (seconds, once) and costs some
microseconds after: answers wait in ``pending`` until someone looks, and the live
monitor scores them off the event loop (``take_pending`` / ``apply_scores``).
"""

import math

import numpy as np

from edgellm.records import response_score

CLOUD = "cloud"


class _Round:
    __slots__ = ("e2e", "tasks", "quality", "cloud", "redispatched")

    def __init__(self):
        self.e2e, self.tasks, self.quality = [], {}, {}
        self.cloud = self.redispatched = 0


class RoundStats:
    def __init__(self, max_rounds=5000):
        self.max_rounds = int(max_rounds)
        self.rounds = {}
        self.pending = []    # (round, task type, gold, response) not scored yet
        self.changed = set()

    def add(self, response, gold, task_type=None):
        """``task_type``: the sample's, where the response names none."""
        number = response.get("round")
        number = int(number) if number is not None else 0
        entry = self.rounds.get(number)
        if entry is None:
            if len(self.rounds) >= self.max_rounds:  # a run of thousands: keep the latest
                del self.rounds[min(self.rounds)]
            entry = self.rounds[number] = _Round()
        latency = (response.get("perf") or {}).get("e2e_latency")
        if latency is not None and math.isfinite(latency):
            entry.e2e.append(float(latency))
        node = CLOUD if response.get("tier") == CLOUD else str(response.get("node") or "?")
        entry.tasks[node] = entry.tasks.get(node, 0) + 1
        entry.cloud += response.get("tier") == CLOUD
        entry.redispatched += bool(response.get("redispatched"))
        self.pending.append((number, response.get("task_type") or task_type or "", gold,
                             response))
        self.changed.add(number)

    def take_pending(self):
        pending, self.pending = self.pending, []
        return pending

    def apply_scores(self, pending, scores):
        for (number, task_type, _, _), score in zip(pending, scores):
            entry = self.rounds.get(number)
            if entry is None:
                continue
            total = entry.quality.setdefault(task_type, [0.0, 0])
            total[0] += score
            total[1] += 1
            self.changed.add(number)

    def score_all(self):
        """Score what is pending, here and now (a finished case's page)."""
        pending = self.take_pending()
        self.apply_scores(pending, score_pending(pending))

    def take_changed(self):
        changed, self.changed = self.changed, set()
        return self.rows(changed)

    def rows(self, numbers=None):
        numbers = sorted(self.rounds if numbers is None else
                         (n for n in numbers if n in self.rounds))
        return [_row(n, self.rounds[n]) for n in numbers]


def score(answers):
    """Quality 0-1 of each (task type, gold, response) (the library's item scores)."""
    return [response_score({"gold": gold, "task_type": task_type or None}, response)
            for task_type, gold, response in answers]


def score_pending(pending):
    return score([entry[1:] for entry in pending])


def _row(number, entry):
    e2e = np.asarray(entry.e2e, dtype=np.float64)
    p50, p95 = (np.percentile(e2e, [50, 95]).tolist() if e2e.size else (None, None))
    return {"round": number, "tasks": dict(entry.tasks), "e2e_p50_s": p50, "e2e_p95_s": p95,
            "quality": {k: s / n for k, (s, n) in entry.quality.items() if n},
            "cloud": entry.cloud, "redispatched": entry.redispatched}
