"""How fast is the bootstrap behind ``edgellm compare`` and the leaderboard's
intervals? (issue 17)

Two runs on the same 14,000 items (MMLU's test split size): a 0/1 accuracy column and
a latency column (float seconds) each. Times, best of ``--repeat``:

- intervals: 10,000 resamples of one run's mean accuracy and mean latency (one pass
  of weights shared by both statistics);
- paired test: both runs' accuracy and latency on the same resamples, the paired
  differences' intervals and p-values, and McNemar's exact test;
- p95 latency: one run's 95th percentile, recomputed in every resample.

Prints resamples x items per second for each, wall and CPU seconds (the CPU time
says what the computation costs when the machine is shared: a loaded machine
stretches the wall time, not the CPU time). Target: the intervals in under a
second. Exit status 0 when it is met.

    python benchmarks/compare.py [--resamples 10000] [--items 14000] [--repeat 3]
"""

import argparse
import os
import time

import numpy as np

from edgellm.stats.bootstrap import Bootstrap, Percentile, difference, mean_of
from edgellm.stats.mcnemar import mcnemar_exact

TARGET_S = 1.0


def timed(repeat, work):
    """(best wall seconds, CPU seconds of that try, result) over ``repeat`` tries."""
    best = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        took = (time.perf_counter() - wall, time.process_time() - cpu, result)
        if best is None or took[0] < best[0]:
            best = took
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=14_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, b = args.items, args.resamples
    first = (rng.random(n) < 0.70).astype(float)
    second = np.where(rng.random(n) < 0.9, first, 1 - first)  # 10 % of answers flipped
    latency = [rng.lognormal(-1.0, 0.5, n), rng.lognormal(-0.95, 0.5, n)]
    bootstrap = Bootstrap(n, b, seed=0)

    def intervals():
        reps = bootstrap.replicates([mean_of(first, 100.0), mean_of(latency[0])])
        return [bootstrap.interval(r) for r in reps]

    def paired():
        stats = [mean_of(first, 100.0), mean_of(latency[0]), mean_of(second, 100.0),
                 mean_of(latency[1])]
        reps = bootstrap.replicates(stats)
        accuracy = difference(reps[0], reps[2], stats[2].estimate() - stats[0].estimate())
        seconds = difference(reps[1], reps[3], stats[3].estimate() - stats[1].estimate())
        return accuracy, seconds, mcnemar_exact(first, second)

    def p95():
        return bootstrap.interval(bootstrap.replicates([Percentile(latency[0], 95)])[0])

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"bootstrap of {n} items x {b} resamples (Poisson weights, seed 0); "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    results = {}
    for name, work, what in (
            ("intervals", intervals, "accuracy and latency means of one run"),
            ("paired test", paired, "both runs' means, paired differences, McNemar"),
            ("p95 latency", p95, "one run's 95th percentile")):
        wall, cpu, result = timed(args.repeat, work)
        results[name] = (wall, cpu, result)
        print(f"{name:12s} {wall:6.3f} s wall, {cpu:6.3f} s CPU: "
              f"{b * n / wall / 1e6:7.1f} million resamples x items per second ({what})")
    accuracy, seconds, mcnemar = results["paired test"][2]
    print(f"  accuracy difference {accuracy.value:+.2f} points "
          f"[{accuracy.interval.low:+.2f}, {accuracy.interval.high:+.2f}], bootstrap "
          f"p={accuracy.p_value:.4f}, McNemar p={mcnemar.p_value:.3g} "
          f"(discordant {mcnemar.first_only} / {mcnemar.second_only})")
    wall = results["intervals"][0]
    met = wall < TARGET_S
    print(f"target: intervals of {b} resamples x {n} items in under {TARGET_S:g} s: "
          f"{'met' if met else 'NOT met'} ({wall:.3f} s)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
