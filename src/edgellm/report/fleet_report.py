"""``edgellm report -f`` of a fleet job (its edge model a topology of nodes): the test
cases as points of quality against cost and against p95 latency, coloured by SLO
attainment, each numbered (numbers that never overlap; the page's table names the
case: offloader, caching policy, topology) and linked to its round plots.

Files: ``fleet_cases.csv`` (one row per case, the Pareto front over accuracy max,
cost min, p95 latency min), ``quality_vs_cost.png``, ``quality_vs_p95.png`` and
``index.html``. Figures are recomputed from each case's results.jsonl with the
leaderboard's own metric functions; each configuration counts once, from its
latest run.
"""

import csv
import io
import os
from dataclasses import dataclass, field

import numpy as np

from edgellm.bench.case_items import CaseCache
from edgellm.errors import ConfigError
from edgellm.files import write_files
from edgellm.fleet.rounds import PLOTS
from edgellm.metrics.catalog import METRICS
from edgellm.metrics.routing_curves import pareto_front
from edgellm.report.html_page import Raw, escape, page_head, table
from edgellm.report.labels import place_labels

FILES = ("fleet_cases.csv", "quality_vs_cost.png", "quality_vs_p95.png", "index.html")
FIGURES = {"accuracy": "Accuracy", "cost": "Cost", "p95_latency": "E2E Latency P95",
           "slo_attainment": "SLO Attainment", "edge_ratio": "Edge Ratio"}
MARKERS = "os^Dv<>p*h"


@dataclass
class FleetPoint:
    number: int
    offloader: str
    caching: str
    topology: str
    folder: str
    accuracy: float  # %
    cost: float  # USD
    p95_latency: float  # s
    slo_attainment: float  # %
    edge_ratio: float  # %

    @property
    def label(self):
        return f"{self.offloader} / {self.caching} / {self.topology}"


@dataclass
class FleetReport:
    title: str
    source: str
    points: list
    leaderboard: tuple
    simulated: bool = False
    notes: list = field(default_factory=list)

    @property
    def heading(self):
        return f"{self.title} (SIMULATED)" if self.simulated else self.title

    def front(self):
        if not self.points:
            return np.zeros(0, dtype=bool)
        return pareto_front([p.accuracy for p in self.points], [p.cost for p in self.points],
                            [p.p95_latency for p in self.points])


def fleet_report(rank):
    """The report of a fleet job's ``RankRows``."""
    cases, points, missing = CaseCache(), [], 0
    for row in rank.rows:
        case, _ = cases.get(row.get("url"))
        if case is None:
            missing += 1
            continue
        figures = {key: float(METRICS[name](case.y_true, case.y_pred))
                   for key, name in FIGURES.items()}
        points.append(FleetPoint(len(points) + 1, row.get("edgemodel-offloader", ""),
                                 row.get("edgemodel-caching", ""),
                                 os.path.basename(row.get("edgemodel-topology", "")),
                                 row["url"], **figures))
    if not points:
        raise ConfigError(rank.rank_file, "column 'url': no test case results found (results "
                                          "folders missing: run the job again)")
    notes = [f"Points: the {len(points)} test cases of {rank.rank_file} (each configuration "
             f"once, from its latest run). Quality: Accuracy; cost: every response's "
             f"(Cost); latency: p95 end-to-end; colour: SLO attainment.",
             "No random or oracle baselines: a fleet job places tasks on nodes and models, "
             "it does not route between one edge model and the cloud."]
    if missing:
        notes.append(f"{missing} leaderboard rows left out: their results folders are gone.")
    if rank.simulated:
        notes.insert(0, "SIMULATED: these figures come from simulated models' profiles, "
                        "not real inference.")
    return FleetReport(f"job {rank.job.name}", rank.job.path, points, rank.leaderboard,
                       rank.simulated, notes)


def write_fleet_report(report, folder):
    """Render every file, then write them; returns their paths."""
    contents = {"fleet_cases.csv": _csv(report),
                "quality_vs_cost.png": _plot(report, "cost", "Cost (USD)"),
                "quality_vs_p95.png": _plot(report, "p95_latency", "p95 E2E latency (s)")}
    contents["index.html"] = _page(report, folder)
    return write_files(folder, {name: contents[name] for name in FILES})


def _csv(report):
    out = io.StringIO()
    columns = ["number", "offloader", "caching", "topology", *FIGURES, "pareto", "folder"]
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for point, on in zip(report.points, report.front()):
        writer.writerow({**{c: getattr(point, c) for c in columns[:-2]}, "pareto": bool(on),
                         "folder": point.folder})
    return out.getvalue()


def _plot(report, field_name, xlabel):
    # heavy (matplotlib): only a report draws
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 6), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    topologies = list(dict.fromkeys(p.topology for p in report.points))
    x = np.array([getattr(p, field_name) for p in report.points])
    y = np.array([p.accuracy for p in report.points])
    slo = np.array([p.slo_attainment for p in report.points])
    scatter = None
    for k, topology in enumerate(topologies):
        mask = np.array([p.topology == topology for p in report.points])
        scatter = ax.scatter(x[mask], y[mask], c=slo[mask], cmap="viridis", vmin=0, vmax=100,
                             marker=MARKERS[k % len(MARKERS)], s=36, zorder=3,
                             edgecolors="black", linewidths=0.4, label=f"topology {topology}")
    front = report.front()
    if front.any():
        ax.scatter(x[front], y[front], s=140, facecolors="none", edgecolors="red",
                   linewidths=1.3, zorder=4, label="Pareto front (accuracy, cost, p95)")
    if scatter is not None:
        figure.colorbar(scatter, ax=ax, label="SLO attainment (%)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(f"{report.heading}: quality vs {xlabel.split(' (')[0]}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=3)
    place_labels(ax, x, y, [str(p.number) for p in report.points])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _page(report, folder):
    parts = [page_head(report.heading)]
    parts += [f"<p class='note'>{escape(note)}</p>" for note in report.notes]
    if report.leaderboard is not None:
        header, rows = report.leaderboard
        parts.append("<h2>Leaderboard</h2>" + table(header, rows))
    rows = []
    for point, on in zip(report.points, report.front()):
        links = " ".join(
            f"<a href='{escape(os.path.relpath(os.path.join(point.folder, name), folder))}'>"
            f"{name.split('_')[0]}</a>" for name in PLOTS
            if os.path.isfile(os.path.join(point.folder, name)))
        rows.append({"#": point.number, "offloader": point.offloader, "caching": point.caching,
                     "topology": point.topology, "accuracy (%)": point.accuracy,
                     "cost (USD)": point.cost, "p95 latency (s)": point.p95_latency,
                     "SLO attainment (%)": point.slo_attainment,
                     "edge ratio (%)": point.edge_ratio, "Pareto front": bool(on),
                     "round plots": Raw(links)})
    parts.append("<h2>Test cases on the plots</h2>" + table(list(rows[0]), rows))
    parts.append("<h2>Plots</h2>")
    parts += [f"<img src='{name}' alt='{name}'>" for name in FILES[1:3]]
    parts.append("<p class='note'>The points: <a href='fleet_cases.csv'>fleet_cases.csv</a>."
                 "</p></body></html>\n")
    return "".join(parts)
