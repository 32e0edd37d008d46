"""Every offloader on the shipped topologies, over several seeds (issue 18: the original
distribution center's DQN and active-reasoning learners against the rest).

The fleet settings are the shipped multi-edge job's (the first value of each
hyperparameter in testalgorithms/multi-edge-offloading/multi-edge.yaml: rounds of 4
tasks 8 s apart, caching every 5 rounds, SLO 5 s, latency_weight 0.02), with the
caching policy given by --caching (default DemandKnapsack, which changes the (node,
model) options every caching round). Two workloads:

- ``job``: the five-task dataset in its own order (352 tasks, type after type), as
  the job runs it. Every task type is new when it arrives, so a learner meets each
  type cold, about 70 tasks long.
- ``shuffled``: the five-task dataset --passes times, shuffled with the seed (the
  same mix throughout): how far the learners get with time.

The seed seeds the simulated answers, the learners' draws and the shuffle. Per
offloader and topology, the mean over seeds (Accuracy with its range) of: Accuracy
(the job's headline, %), p95 end-to-end latency, SLO attainment, the share of tasks
the SLO fallback sent to the cloud, the share the busiest node served; the learning
curve: the mean catalog quality of the models chosen for the tasks served at the
edge (noise-free, unlike the answers' scores) per quarter of the run; per seed, the
round from which a 25-round window of that curve first comes within 0.02 of
QualityGreedy's on the same rounds (QualityGreedy reads the catalog's quality, the
learners must learn it); and the seconds the offloader itself took in choose and
observe.

Measured on a shared 2-core machine (load average ~6), seeds 0-2: the job workload
in 29 s, shuffled x3 in 2 min 12 s. No learner reaches QualityGreedy: in the job's
order none comes within 0.02 on the large topology; shuffled, the DQN does in two
of three seeds after 81-129 rounds there (docs/fleet-offloaders.md has the tables).

    python benchmarks/fleet_offloaders.py [--workload job|shuffled] [--passes 3]
        [--seeds 0 1 2] [--topologies small large] [--offloaders ...] [--caching ...]
"""

import argparse
import json
import os
import time
from collections import Counter
from types import SimpleNamespace

import numpy as np
import yaml

from edgellm.fleet.registry import create_offloader
from edgellm.fleet.simulator import FleetSimulator
from edgellm.fleet.topology import load_topology
from edgellm.fleet.workload import RoundWorkload
from edgellm.metrics.catalog import METRICS
from edgellm.tasks.registry import get_task_type

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "examples", "edge-llm-distribution")
FLEET = os.path.join(EXAMPLE, "testalgorithms", "multi-edge-offloading")
DATA = os.path.join(EXAMPLE, "dataset", "five-tasks", "test_data", "data.jsonl")
OFFLOADERS = ["RoundRobin", "LeastLoaded", "QualityGreedy", "LinUCB", "Thompson",
              "MLPPredictor", "DQN", "ActiveReasoning"]
WINDOW = 25        # rounds in the learning-curve window
CLOSE = 0.02       # "caught up": within this much catalog quality of QualityGreedy's


def shipped_settings():
    """The first value of each workload and fleet hyperparameter of the shipped grid."""
    with open(os.path.join(FLEET, "multi-edge.yaml"), encoding="utf-8") as handle:
        algorithm = yaml.safe_load(handle)["algorithm"]
    settings = {}
    for module in algorithm["modules"]:
        if module["type"] in ("dataset_processor", "edgemodel"):
            settings[module["type"]] = {k: v["values"][0] for hp in module["hyperparameters"]
                                        for k, v in hp.items()}
    fleet = settings["edgemodel"]
    for name in ("topology", "offloader", "caching", "seed"):
        fleet.pop(name)
    return settings["dataset_processor"], fleet


def workload(kind, passes, seed, processor):
    with open(DATA, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if kind == "shuffled":
        rows = rows * passes
        rows = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    data = SimpleNamespace(x=[r["query"] for r in rows], y=[r["response"] for r in rows],
                           level_3=[r["level_3_dim"] for r in rows], level_4=None)
    data = RoundWorkload(**processor)(data)
    return data.x, data.y


class Timed:
    """An offloader with a clock on its ``choose`` and ``observe`` (its own cost, apart
    from the simulated answers, which a process generates once per model and task)."""

    def __init__(self, offloader):
        self.offloader, self.learns, self.seconds = offloader, offloader.learns, 0.0
        self.options = set()   # how many options tasks had

    def choose(self, task, options):
        self.options.add(len(options))
        start = time.perf_counter()
        row = self.offloader.choose(task, options)
        self.seconds += time.perf_counter() - start
        return row

    def observe(self, outcomes):
        start = time.perf_counter()
        self.offloader.observe(outcomes)
        self.seconds += time.perf_counter() - start


def run(topology, offloader, caching, fleet, samples, golds, seed):
    settings = {k: v for k, v in fleet.items() if k not in ("caching_every", "slo_s")}
    timed = Timed(create_offloader(offloader, seed=seed, **settings))
    sim = FleetSimulator(topology, timed, caching, seed=seed, **fleet)
    responses = sim.serve_batch([dict(s) for s in samples])
    y_pred = [[False, r, r, None] for r in responses]
    catalog = {m.id: m for m in topology.models}
    edge = [(s, r) for s, r in zip(samples, responses) if r["tier"] == "edge"]
    expected = np.array([catalog[r["model"]].quality_for(get_task_type(s["task_type"]).name)
                         for s, r in edge])
    rounds = np.array([s["round"] for s, _ in edge])
    return {"accuracy": METRICS["Accuracy"](golds, y_pred),
            "p95": float(np.percentile([r["perf"]["e2e_latency"] for r in responses], 95)),
            "slo": METRICS["SLO Attainment"](golds, y_pred),
            "cloud": 100.0 - METRICS["Edge Ratio"](golds, y_pred),
            "busiest": 100.0 * max(Counter(r["node"] for r in responses).values())
            / len(responses), "options": timed.options,
            "expected": expected, "rounds": rounds, "wall": timed.seconds,
            "n_rounds": int(max(s["round"] for s in samples)) + 1}


def windowed(result):
    """Mean catalog quality over each window of WINDOW rounds starting at each round."""
    rounds, expected, n = result["rounds"], result["expected"], result["n_rounds"]
    sums = np.bincount(rounds, weights=expected, minlength=n)
    counts = np.bincount(rounds, minlength=n)
    kernel = np.ones(WINDOW)
    return (np.convolve(sums, kernel, "valid") / np.maximum(np.convolve(counts, kernel, "valid"),
                                                            1))


def caught_up(result, greedy):
    """The first round from which a WINDOW-round window of the chosen models' catalog
    quality is within CLOSE of QualityGreedy's on the same rounds; None: never."""
    ahead = np.flatnonzero(windowed(result) >= windowed(greedy) - CLOSE)
    return int(ahead[0]) if len(ahead) else None


def quarters(result):
    parts = np.array_split(result["expected"], 4)
    return [float(p.mean()) for p in parts]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["job", "shuffled"], default="job")
    parser.add_argument("--passes", type=int, default=3,
                        help="shuffled: passes over the five-task dataset (352 tasks each)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--topologies", nargs="*", default=["small", "large"])
    parser.add_argument("--offloaders", nargs="*", default=OFFLOADERS)
    parser.add_argument("--caching", default="DemandKnapsack")
    args = parser.parse_args()
    processor, fleet = shipped_settings()
    offloaders = list(args.offloaders)
    if "QualityGreedy" not in offloaders:   # the reference of the learning curve
        offloaders.insert(0, "QualityGreedy")
    tasks = None
    for name in args.topologies:
        topology = load_topology(os.path.join(FLEET, "topologies", f"{name}.yaml"))
        results = {o: [] for o in offloaders}
        for seed in args.seeds:
            samples, golds = workload(args.workload, args.passes, seed, processor)
            tasks = len(samples)
            for offloader in offloaders:
                results[offloader].append(run(topology, offloader, args.caching, fleet,
                                              samples, golds, seed))
        options = set().union(*(r["options"] for runs in results.values() for r in runs))
        print(f"\n{topology.name} ({len(topology.nodes)} nodes, {len(topology.models)} models, "
              f"{min(options)}-{max(options)} options per task), {args.caching} caching every "
              f"{fleet['caching_every']} rounds, SLO {fleet['slo_s']:g} s; workload "
              f"{args.workload}: {tasks} tasks in rounds of {processor['tasks_per_round']}; "
              f"mean over seeds {args.seeds}")
        print(f"{'offloader':<16}{'Accuracy':>15}{'p95 s':>7}{'SLO %':>7}{'cloud %':>8}"
              f"{'busiest %':>10}"
              f"   edge choices' catalog quality by quarter   caught up at round"
              f"{'offloader s':>12}")
        for offloader in offloaders:
            runs = results[offloader]
            acc = [r["accuracy"] for r in runs]
            mean = {k: float(np.mean([r[k] for r in runs]))
                    for k in ("p95", "slo", "cloud", "busiest", "wall")}
            curve = np.mean([quarters(r) for r in runs], axis=0)
            caught = [caught_up(r, g) for r, g in zip(runs, results["QualityGreedy"])]
            caught = " ".join("never" if c is None else str(c) for c in caught)
            print(f"{offloader:<16}{np.mean(acc):>6.1f} ({min(acc):.1f}-{max(acc):.1f})"
                  f"{mean['p95']:>7.2f}{mean['slo']:>7.1f}{mean['cloud']:>8.1f}"
                  f"{mean['busiest']:>10.1f}   "
                  + " ".join(f"{q:.3f}" for q in curve)
                  + f"{'':>14}{caught:<19}{mean['wall']:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
