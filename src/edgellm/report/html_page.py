"""The report's index.html: one self-contained page (no scripts, no external assets)
with the leaderboard, the routers' figures and the two plots beside it."""

import math
from html import escape

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;margin:1em 0;border:1px solid #eee}.note{color:#555}"""

PERCENT_KEYS = ("CPT(50%)", "CPT(80%)", "train share", "test share")


class Raw(str):
    """A cell's HTML, shown as it is (the links a page makes itself)."""


def _cell(key, value):
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if key in PERCENT_KEYS:
            return f"{100 * value:.1f}%"
        return f"{value:.4g}"
    if isinstance(value, bool):
        return "yes" if value else ""
    return escape(str(value))


def table(header, rows):
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(h, row.get(h, ''))}</td>" for h in header)
                   + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page_head(heading):
    """The page's start: its title and heading (with the SIMULATED label, when
    simulated models made the figures, in both)."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>edgellm report: {escape(heading)}</title><style>{STYLE}</style>"
            f"</head><body><h1>edgellm report: {escape(heading)}</h1>")


def render(report, images):
    parts = [page_head(report.heading)]
    parts += [f"<p class='note'>{escape(note)}</p>" for note in report.notes]
    parts.append(f"<p>Edge model <b>{escape(report.edge_model)}</b>: accuracy "
                 f"{100 * report.edge_accuracy:.2f}%; cloud model "
                 f"<b>{escape(report.cloud_model)}</b>: {100 * report.cloud_accuracy:.2f}%.</p>")
    if report.leaderboard is not None:
        header, rows = report.leaderboard
        parts.append("<h2>Leaderboard</h2>" + table(header, rows))
    if report.points:
        points, mask = report.front_mask()
        rows = [{"#": i, "test case": p.label, "cloud share": p.cloud_share,
                 "accuracy": p.accuracy,
                 "cost (USD)": p.cost, "p95 latency (s)": p.p95_latency,
                 "Pareto front": bool(on)}
                for i, (p, on) in enumerate(zip(points[:len(report.points)], mask), 1)]
        parts.append("<h2>Test cases on the plots</h2>"
                     "<p class='note'>Pareto front over accuracy (max), cost (min) and p95 "
                     "end-to-end latency (min).</p>"
                     + table(list(rows[0]), [
                         {**r, "cloud share": f"{100 * r['cloud share']:.1f}%",
                          "accuracy": f"{100 * r['accuracy']:.2f}%"} for r in rows]))
    if report.router_rows:
        header = []
        for row in report.router_rows:
            header += [k for k in row if k not in header]
        parts.append("<h2>Routers</h2><p class='note'>APGR and CPT as RouteLLM computes "
                     "them (11 quantile thresholds), AIQ as RouterBench does "
                     "(docs/routing-evaluation.md).</p>" + table(header, report.router_rows))
    parts.append("<h2>Plots</h2>")
    parts += [f"<img src='{escape(name)}' alt='{escape(name)}'>" for name in images]
    parts.append("<p class='note'>The points: <a href='curves.csv'>curves.csv</a>.</p>"
                 "</body></html>\n")
    return "".join(parts)
