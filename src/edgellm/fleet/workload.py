"""The fleet's dataset processor: samples become tasks arriving in rounds.

Ianvs scores ``y_pred`` against the dataset's ``y`` in file order, so tasks keep the
dataset's order and count; what changes over time (the task mix, the load) is the
dataset's order plus the arrival process chosen here.
"""

import csv
import math

import numpy as np

from edgellm.errors import ConfigError
from edgellm.registry import check_settings
from edgellm.tasks.processor import SampleProcessor

ARRIVALS = ("fixed", "poisson", "trace")


class RoundWorkload(SampleProcessor):
    """Ianvs ``dataset_processor``: each sample gets ``round`` and ``arrival_s``.

    - ``fixed``: round r's ``tasks_per_round`` tasks all arrive at r * ``round_interval_s``;
    - ``poisson``: exponential gaps at ``rate_per_s`` (seeded), rounds of ``tasks_per_round``;
    - ``trace``: arrival times (seconds, non-decreasing) from ``trace_file``, one per task:
      a CSV with an ``arrival_s`` column, or plain lines of numbers.
    """

    def __init__(self, tasks_per_round=10, arrival="fixed", round_interval_s=1.0,
                 rate_per_s=10.0, trace_file=None, seed=0, task_type=None):
        super().__init__(task_type=task_type)
        if arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
        if int(tasks_per_round) < 1:
            raise ValueError(f"tasks_per_round must be at least 1, got {tasks_per_round!r}")
        if arrival == "trace" and not trace_file:
            raise ValueError("arrival 'trace' needs a trace_file")
        self.tasks_per_round = int(tasks_per_round)
        self.arrival = arrival
        self.round_interval_s = float(round_interval_s)
        self.rate_per_s = float(rate_per_s)
        self.trace_file = trace_file
        self.seed = int(seed)

    @classmethod
    def check_config(cls, params, source=None):
        """Before the first test case: the settings, and a trace file that is there
        and reads (whether it has enough times for the dataset is known when the case
        runs). True: a dataset processor runs no model."""
        check_settings(cls, params)
        workload = cls(**params)
        if workload.arrival == "trace":
            read_trace(workload.trace_file, 0)
        return True

    def arrivals(self, n):
        """Arrival time of each of ``n`` tasks, in seconds from the start."""
        rounds = np.arange(n) // self.tasks_per_round
        if self.arrival == "fixed":
            return rounds * self.round_interval_s
        if self.arrival == "poisson":
            gaps = np.random.default_rng(self.seed).exponential(1.0 / self.rate_per_s, n)
            return np.cumsum(gaps) - gaps[0]  # the first task arrives at 0
        return read_trace(self.trace_file, n)

    def __call__(self, dataset):
        dataset = super().__call__(dataset)
        times = self.arrivals(len(dataset.x)).tolist()
        for i, (sample, t) in enumerate(zip(dataset.x, times)):
            sample["round"] = i // self.tasks_per_round
            sample["arrival_s"] = t
        return dataset


def read_trace(path, n):
    """``n`` arrival times from a trace file (0: check all of them, return none);
    errors name the file and line."""
    try:
        with open(path, newline="") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise ConfigError(path, f"trace file unreadable: {err.strerror}") from None
    first = 1 if lines and "arrival_s" in lines[0] else 0
    column = 0
    if first:
        header = next(csv.reader([lines[0]]))
        column = header.index("arrival_s")
    times = []
    for number, line in enumerate(lines[first:], start=first + 1):
        if not line.strip():
            continue
        cells = next(csv.reader([line]))
        try:
            value = float(cells[column])
        except (ValueError, IndexError):
            raise ConfigError(path, f"line {number}: expected an arrival time in seconds, "
                                    f"got {line.strip()[:60]!r}") from None
        if not math.isfinite(value) or value < 0 or (times and value < times[-1]):
            raise ConfigError(path, f"line {number}: arrival times must be finite, "
                                    f">= 0 and non-decreasing, got {value}")
        times.append(value)
        if len(times) == n:
            break
    if len(times) < n:
        raise ConfigError(path, f"{len(times)} arrival times for {n} tasks")
    return np.array(times)
