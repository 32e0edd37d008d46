"""``edgellm report``: the cost-quality view of a job or of routers on an outcome matrix.

Writes to one folder (a job's: ``<workspace>/<job>/report/``):

- ``curves.csv``: every point drawn: the routers' threshold sweeps, the random router
  (mean of 10 seeds), the oracle, and a job's test cases, with cloud share, accuracy,
  performance gap recovered, cost, p95 latency and whether the point is on the Pareto
  front over (accuracy max, cost min, p95 latency min);
- ``accuracy_vs_share.png`` and ``accuracy_vs_cost.png``;
- ``index.html``: the leaderboard, the routers' APGR, CPT(50 %), CPT(80 %), AIQ and
  threshold calibration, and the plots.

Everything is computed before the first file is written, and each file is replaced
atomically: bad input leaves the folder as it was.
"""

import csv
import io
import os
from dataclasses import dataclass, field

import numpy as np

from edgellm.files import write_files
from edgellm.metrics.routing_curves import pareto_front
from edgellm.outcomes import OutcomeSet
from edgellm.report import html_page, plots
from edgellm.report.fleet_report import FleetReport, fleet_report, write_fleet_report
from edgellm.report.job_results import read_job_results, read_rank_rows
from edgellm.report.router_curves import DEFAULT_LABEL, baselines, evaluate_routers

FILES = ("curves.csv", "accuracy_vs_share.png", "accuracy_vs_cost.png", "index.html")


@dataclass
class PlotPoint:
    label: str
    cloud_share: float
    accuracy: float
    cost: float
    p95_latency: float


@dataclass
class Report:
    title: str
    source: str
    edge_model: str
    cloud_model: str
    edge_accuracy: float
    cloud_accuracy: float
    random: object  # Curve
    oracle: object  # Curve
    router_curves: list = field(default_factory=list)
    router_rows: list = field(default_factory=list)  # one dict per curve for the table
    points: list = field(default_factory=list)  # a job's test cases (CasePoint)
    leaderboard: tuple = None  # (header, rows)
    notes: list = field(default_factory=list)
    simulated: bool = False  # figures from simulated models: every page and plot says so
    # the random and oracle curves of the job's other edge models: Baseline
    other_baselines: list = field(default_factory=list)

    @property
    def heading(self):
        return f"{self.title} (SIMULATED)" if self.simulated else self.title

    def _candidates(self):
        """Points that can be on the Pareto front: the test cases and every point of
        the routers' sweeps (not the random mean nor the oracle, which no router is)."""
        points = [PlotPoint(p.label, p.cloud_share, p.accuracy, p.cost, p.p95_latency)
                  for p in self.points]
        for curve in self.router_curves:
            points += [PlotPoint(f"{curve.name} @ {t:.4g}", s, a, c, lat) for t, s, a, c, lat in
                       zip(curve.threshold, curve.cloud_share, curve.accuracy, curve.cost,
                           curve.p95_latency)]
        return points

    def front_mask(self):
        points = self._candidates()
        if not points:
            return points, np.zeros(0, dtype=bool)
        return points, pareto_front([p.accuracy for p in points], [p.cost for p in points],
                                    [p.p95_latency for p in points])

    def front_points(self):
        points, mask = self.front_mask()
        return [p for p, on in zip(points, mask) if on]

    def curves_csv(self):
        _, mask = self.front_mask()  # cases first, then each router's points in order
        out = io.StringIO()
        columns = ["curve", "kind", "threshold", "cloud_share", "accuracy", "pgr", "cost_usd",
                   "p95_latency_s", "pareto"]
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        offset = len(self.points)
        for curve in self.router_curves:
            for i, row in enumerate(curve.rows()):
                writer.writerow({**row, "pareto": bool(mask[offset + i])})
            offset += len(curve.threshold)
        for curve in (self.random, self.oracle):
            writer.writerows({**row, "pareto": ""} for row in curve.rows())
        for baseline in self.other_baselines:
            for curve in (baseline.random, baseline.oracle):
                writer.writerows({**row, "curve": f"{row['curve']} ({baseline.edge_model})",
                                  "pareto": ""} for row in curve.rows())
        gap = self.cloud_accuracy - self.edge_accuracy
        for i, p in enumerate(self.points):
            writer.writerow({"curve": p.label, "kind": "case", "threshold": "",
                             "cloud_share": p.cloud_share, "accuracy": p.accuracy,
                             "pgr": (p.accuracy - self.edge_accuracy) / gap if gap else "",
                             "cost_usd": p.cost, "p95_latency_s": p.p95_latency,
                             "pareto": bool(mask[i])})
        return out.getvalue()


def write_report(report, folder):
    """Render every file, then write them; returns their paths."""
    if isinstance(report, FleetReport):
        return write_fleet_report(report, folder)
    contents = {
        "curves.csv": report.curves_csv(),
        "accuracy_vs_share.png": plots.render(report, "share"),
        "accuracy_vs_cost.png": plots.render(report, "cost"),
    }
    contents["index.html"] = html_page.render(report, FILES[1:3])
    return write_files(folder, {name: contents[name] for name in FILES})


@dataclass
class Baseline:
    """The random and oracle curves of one edge model with the job's cloud model."""

    edge_model: str
    edge_accuracy: float
    random: object
    oracle: object
    rows: list


def job_report(job_path, edge_model=None, cloud_model=None, rank=None):
    """(report, folder) of a job that has run: its test cases as points, the random
    and oracle baselines of each edge model from its edge-only and cloud-only cases.
    A fleet job (its edge model a topology of nodes) gets the fleet's report.
    ``rank``: the job's rank rows where the caller has read them already."""
    rank = read_rank_rows(job_path) if rank is None else rank
    if rank.fleet:
        return fleet_report(rank), os.path.join(rank.job.output_dir, "report")
    results = read_job_results(job_path, edge_model, cloud_model, rank)
    outcomes = results.baseline
    random, oracle = baselines(outcomes)
    others = []
    for other in results.other_baselines:
        other_random, other_oracle = baselines(other)
        rows = [_row(other_random), _row(other_oracle)]
        for row in rows:
            row["router"] = f"{row['router']} ({other.edge_model})"
        others.append(Baseline(other.edge_model, other.edge_accuracy, other_random.curve,
                               other_oracle.curve, rows))
    notes = [f"Points: the {len(results.points)} test cases of {results.rank_file} (each "
             f"configuration once, from its latest run); random and oracle: "
             f"{outcomes.edge_model} / {outcomes.cloud_model} on the job's "
             f"{len(outcomes)} queries ({outcomes.source})"
             + (f", and the same for {', '.join(o.edge_model for o in others)}."
                if others else ".")]
    if results.simulated:
        notes.insert(0, "SIMULATED: these figures come from simulated models' profiles, "
                        "not real inference.")
    if results.missing:
        notes.append(f"{results.missing} leaderboard rows left out: their results folders "
                     f"are gone.")
    report = Report(f"job {results.name}", job_path, outcomes.edge_model, outcomes.cloud_model,
                    outcomes.edge_accuracy, outcomes.cloud_accuracy, random.curve, oracle.curve,
                    router_rows=[_row(random), _row(oracle)] + [r for o in others
                                                                for r in o.rows],
                    points=results.points, leaderboard=results.leaderboard, notes=notes,
                    simulated=results.simulated, other_baselines=others)
    return report, os.path.join(results.output_dir, "report")


def outcomes_report(path, edge_model, cloud_model, routers=(), label=None,
                    train_fraction=0.5, seed=0, target_share=0.5):
    """The report of learned routers on an outcome matrix: fitted on its train split,
    drawn on its test split, with the random and oracle baselines. ``routers`` as
    ``evaluate_routers`` takes them; AutoRouter's choice goes into the notes and the
    table (``chosen``, ``CV APGR``)."""
    outcomes = OutcomeSet.from_matrix(path, edge_model, cloud_model)
    result = evaluate_routers(outcomes, routers, label, train_fraction, seed, target_share)
    test, split = result.test, result.split
    notes = [f"{len(outcomes)} items of {path}, split {split['train_items']} train / "
             f"{split['test_items']} test (fraction {split['fraction']}, seed {split['seed']}); "
             f"routers fitted on train with label {label or DEFAULT_LABEL!r} unless they "
             f"choose their own, every curve drawn on test."]
    if not routers:
        notes.append("No --router given: the baselines only.")
    notes += [choice_note(e) for e in result.routers if e.selection]
    rows = [_row(e, target_share) for e in result.routers] + [_row(result.random),
                                                               _row(result.oracle)]
    return Report(f"{os.path.basename(path)}", path, edge_model, cloud_model,
                  test.edge_accuracy, test.cloud_accuracy, result.random.curve,
                  result.oracle.curve, router_curves=[e.curve for e in result.routers],
                  router_rows=rows, notes=notes)


def chosen_text(selection):
    """``Router(setting=value, ...)`` of a selection's chosen configuration, and how
    many others its ensemble blends with it (``+ N blended``)."""
    chosen = selection["chosen"]
    settings = ", ".join(f"{k}={v}" for k, v in chosen["params"].items())
    members = len((selection.get("ensemble") or {}).get("members", [chosen]))
    return f"{chosen['router']}({settings})" + (f" + {members - 1} blended"
                                                  if members > 1 else "")


def choice_note(evaluation):
    """One line: what a selecting router chose on train, and its cross-validated APGR."""
    selection = evaluation.selection
    ensemble = selection.get("ensemble") or {}
    blend = (f"; the blend's out-of-fold APGR {ensemble['cv_apgr']:.4f}"
             if len(ensemble.get("members", ())) > 1 else "")
    return (f"{evaluation.name} chose {chosen_text(selection)} among "
            f"{len(selection['candidates'])} configurations by {selection['folds']}-fold "
            f"cross-validated APGR on the train items only ({selection['cv_apgr']:.4f}"
            f"{blend}; selection {selection['seconds']:.1f} s).")


def _row(evaluation, target_share=None):
    row = {"router": evaluation.name, **evaluation.metrics}
    if getattr(evaluation, "selection", None):
        row.update({"chosen": chosen_text(evaluation.selection),
                    "CV APGR": evaluation.selection["cv_apgr"]})
    if evaluation.calibration is not None:
        c = evaluation.calibration
        row.update({f"threshold @ {target_share:.0%} train share": c.threshold,
                    "train share": c.train_share, "test share": c.test_share})
    return row
