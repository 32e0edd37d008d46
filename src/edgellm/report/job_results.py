"""A benchmarking job's test cases as points of the report: each case's cloud share,
accuracy, cost and p95 end-to-end latency, recomputed from its ``results.jsonl``
(the folder its leaderboard row's ``url`` names), and the outcome set the random and
oracle baselines are drawn from (a case that answered every query on the edge and one
that did on the cloud, for the same pair of models)."""

import csv
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from edgellm.bench.config import read_job
from edgellm.bench.rank import SIMULATED, Standings, configuration_columns, latest_rows
from edgellm.errors import ConfigError
from edgellm.metrics.joint_inference import accuracy, cost
from edgellm.outcomes import OutcomeSet, read_results
from edgellm.records import joint_result


@dataclass
class CasePoint:
    label: str
    cloud_share: float
    accuracy: float  # 0-1, the leaderboard's Accuracy
    cost: float  # USD, every response produced
    p95_latency: float  # seconds, answering responses (NaN when not recorded)
    edge_model: str
    cloud_model: str
    results: str  # the results.jsonl


@dataclass
class JobResults:
    name: str
    output_dir: str  # <workspace>/<job>
    rank_file: str
    leaderboard: tuple  # (header, rows) of selected_rank.csv, as Ianvs prints it
    points: list
    baseline: OutcomeSet
    missing: int  # leaderboard rows whose results folder is gone
    other_baselines: list = field(default_factory=list)  # OutcomeSets of other edge models
    simulated: bool = False


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


ROUTER_PREFIX = "hard_example_mining-"


def varying_router_settings(rows):
    """Per router, the settings whose values differ between its rows: the ones that
    tell its test cases apart on a plot (the others would only lengthen the labels)."""
    values = {}
    for row in rows:
        router = values.setdefault(row.get("hard_example_mining") or "", {})
        for key, value in row.items():
            if key.startswith(ROUTER_PREFIX):
                router.setdefault(key, set()).add(value or "")
    return {router: {k for k, seen in settings.items() if len(seen) > 1}
            for router, settings in values.items()}


def _label(row, edge_used=True, varying=None):
    """``algorithm (router, its settings that vary, edge model)``; every set setting
    where ``varying`` is None."""
    shown = None if varying is None else varying.get(row.get("hard_example_mining") or "", ())
    router_params = [f"{k[len(ROUTER_PREFIX):]}={v}" for k, v in row.items()
                     if k.startswith(ROUTER_PREFIX) and v not in (None, "")
                     and (shown is None or k in shown)]
    parts = [row.get("hard_example_mining") or "", *router_params]
    edge = (row.get("edgemodel-model") or "").rsplit("/", 1)[-1]
    if edge and edge_used:
        parts.append(edge)
    return f"{row.get('algorithm', '?')} ({', '.join(p for p in parts if p)})"


def case_point(label, results_path, records, edge_model="", cloud_model=""):
    """The point of one test case from its results.jsonl records."""
    y_pred = [joint_result(r) for r in records]
    golds = [r.get("gold") for r in records]
    latencies = np.array([(res[1].get("perf") or {}).get("e2e_latency") or np.nan
                          for res in y_pred if res[1] is not None and not res[1].get("error")],
                         dtype=np.float64)
    p95 = float(np.percentile(latencies, 95)) if latencies.size and \
        np.isfinite(latencies).all() else float("nan")
    return CasePoint(label, float(np.mean([bool(r["is_hard"]) for r in records])),
                     float(accuracy(golds, y_pred)) / 100.0, float(cost(golds, y_pred)), p95,
                     edge_model, cloud_model, results_path)


@dataclass
class RankRows:
    """A job's rank rows as the report reads them: each configuration once, from its
    latest run (rows accumulate across runs; an older run's would count twice)."""

    job: object
    rank_file: str
    rows: list
    leaderboard: tuple  # (header, rows) of selected_rank.csv, latest runs only

    @property
    def simulated(self):
        """Whether any row's figures come from simulated models."""
        return any(r.get(SIMULATED) == "True" for r in self.rows)

    @property
    def fleet(self):
        """Whether the job's edge model is a fleet of nodes (a topology)."""
        return any(r.get("edgemodel-topology") for r in self.rows)


    def standings(self):
        """The rows as the printed leaderboard takes them (``bench.rank.Standings``)."""
        header = self.leaderboard[0]
        metrics = header[header.index("algorithm") + 1:header.index("paradigm")] \
            if "algorithm" in header and "paradigm" in header else []
        sort = [m for m, _ in self.job.rank.sort_by if m in metrics]
        return Standings(self.rank_file, [c for c in header if c != "rank"], self.rows,
                         metrics, sort)


def read_rank_rows(job_path):
    job = read_job(job_path)
    rank_dir = os.path.join(job.output_dir, "rank")
    rank_file = next((p for p in (os.path.join(rank_dir, "all_rank.csv"),
                                  os.path.join(rank_dir, "selected_rank.csv"))
                      if os.path.isfile(p)), None)
    if rank_file is None:
        raise ConfigError(job_path, f"no rank file in {rank_dir}: run the job first "
                                    f"(edgellm run -f {job_path})")
    header, rows = _read_csv(rank_file)
    if "algorithm" not in header:
        raise ConfigError(rank_file, "not a rank file: no column 'algorithm'")
    rows = latest_rows(rows, configuration_columns(header, [m.name for m in job.testenv.metrics]))
    selected = os.path.join(rank_dir, "selected_rank.csv")
    selected_header = _read_csv(selected)[0] if os.path.isfile(selected) else header
    # the selected columns of the latest rows, in rank order (as the printed table)
    leaderboard = [{**{c: r.get(c, "") for c in selected_header}, "rank": str(i)}
                   for i, r in enumerate(rows, 1)]
    return RankRows(job, rank_file, rows, (selected_header, leaderboard))


def read_job_results(job_path, edge_model=None, cloud_model=None, rank=None):
    """The job's points and baseline outcomes (one set per edge model); one-line
    errors naming the file."""
    rank = rank or read_rank_rows(job_path)
    job, rank_file, rows, leaderboard = rank.job, rank.rank_file, rank.rows, rank.leaderboard

    points, records_of, missing = [], {}, 0
    varying = varying_router_settings(rows)
    for line, row in enumerate(rows, 2):
        url = row.get("url") or ""
        results = os.path.join(url, "results.jsonl")
        if not url or not os.path.isfile(results):
            missing += 1  # an earlier run's folder, since removed
            continue
        records = records_of[results] = read_results(results)
        edge_used = any(r.get("edge") is not None for r in records)
        points.append(case_point(_label(row, edge_used, varying), results, records,
                                 row.get("edgemodel-model") or "",
                                 row.get("cloudmodel-model") or ""))
    if not points:
        raise ConfigError(rank_file, "column 'url': no test case results found (results "
                                     "folders missing: run the job again)")
    baselines = _baselines(job_path, points, records_of, edge_model, cloud_model)
    return JobResults(job.name, job.output_dir, rank_file, leaderboard, points, baselines[0],
                      missing, baselines[1:], rank.simulated)


def _complete_on(records, side):
    return all(r.get(side) is not None for r in records)


def _baselines(job_path, points, records_of, edge_model, cloud_model):
    """Both models' outcomes on every query, from a case that answered all of them on
    the edge and one on the cloud: for the model pair given or the one most cases use
    first, then for every other edge model with such a case and the same cloud model
    (its own random and oracle curves)."""
    if not edge_model or not cloud_model:
        pairs = Counter((p.edge_model, p.cloud_model) for p in points)
        common_edge, common_cloud = pairs.most_common(1)[0][0]
        edge_model, cloud_model = edge_model or common_edge, cloud_model or common_cloud
    first = _baseline(job_path, points, records_of, edge_model, cloud_model, required=True)
    others = [_baseline(job_path, points, records_of, model, cloud_model)
              for model in dict.fromkeys(p.edge_model for p in points) if model != edge_model]
    return [first, *(o for o in others if o is not None)]


def _baseline(job_path, points, records_of, edge_model, cloud_model, required=False):
    edge = next((p for p in points if p.edge_model == edge_model
                 and _complete_on(records_of[p.results], "edge")), None)
    cloud = next((p for p in points if p.cloud_model == cloud_model
                  and _complete_on(records_of[p.results], "cloud")), None)
    for found, tier, model in ((edge, "edge", edge_model), (cloud, "cloud", cloud_model)):
        if found is None:
            if not required:
                return None
            raise ConfigError(job_path, f"key 'test_object.algorithms': no test case answered "
                                        f"every query on the {tier} model {model!r}; the random "
                                        f"and oracle baselines need one (add an {tier}-only "
                                        f"algorithm with that model, or pick another with "
                                        f"--{tier}-model)")
    outcomes = OutcomeSet.from_results(edge.results, cloud.results)
    outcomes.edge_model, outcomes.cloud_model = edge_model or outcomes.edge_model, \
        cloud_model or outcomes.cloud_model
    return outcomes
