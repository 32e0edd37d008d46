"""The pages' HTML. Every URL in them is relative (``static/...``, ``api/...``), so a
page works at ``/`` on 127.0.0.1 and behind a reverse proxy that serves the app under
a path prefix (``/edgellm/``). Whatever a user or a node named (nodes, models, queries,
algorithms) is escaped here, and the scripts put it in the page as text only."""

import math
from html import escape
from urllib.parse import quote

from fastapi.responses import HTMLResponse

# scripts and styles from this app only; plotly adds inline styles and data: images
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'")


def html_page(title, script, body, charts=True):
    scripts = ["dom.js"] + (["plotly.min.js", "charts.js"] if charts else []) + [script]
    head = "".join(f"<script src='static/{s}' defer></script>" for s in scripts)
    text = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><link rel='icon' href='data:,'>"
            f"<link rel='stylesheet' href='static/monitor.css'>{head}</head>"
            f"<body>{body}</body></html>")
    return HTMLResponse(text, headers={"Content-Security-Policy": POLICY,
                                       "Cache-Control": "no-cache"})


def _nav(links):
    return "<nav>" + " ".join(f"<a href='{escape(href)}'>{escape(label)}</a>"
                              for label, href in links) + "</nav>"


def center_page(topology, leaderboard):
    links = [("Prometheus metrics", "metrics")] + ([("Leaderboard", "leaderboard")]
                                                   if leaderboard else [])
    charts = "".join(f"<div class='chart' id='chart-{name}'></div>" for name in
                     ("latency", "tasks", "quality", "fallbacks"))
    body = (f"<header><h1>edgellm center <span class='sub'>{escape(topology)}</span></h1>"
            f"<span id='run' class='sub'></span>{_nav(links)}"
            f"<span id='conn' class='conn'>connecting</span></header>"
            "<section><h2>Nodes</h2><table id='nodes'><thead><tr><th>node</th><th>state</th>"
            "<th>heartbeat</th><th>engine</th><th>models</th><th>slots in use</th>"
            "<th>queue</th><th>CPU</th><th>memory</th></tr></thead><tbody></tbody></table>"
            "</section>"
            f"<section><h2>Rounds <span id='rounds-run' class='sub'></span></h2>"
            f"<div class='charts'>{charts}</div></section>"
            "<section><h2>Cache contents</h2><div class='chart wide' id='chart-cache'></div>"
            "</section>"
            "<section><h2>Events</h2><div class='filters'>"
            "<select id='event-kind' aria-label='kind'><option value=''>every kind</option>"
            "</select><select id='event-node' aria-label='node'><option value=''>every node"
            "</option></select><input id='event-text' type='search' placeholder='filter' "
            "aria-label='filter events'></div><table id='events'><thead><tr><th>time</th>"
            "<th>kind</th><th>node</th><th>what happened</th></tr></thead><tbody></tbody>"
            "</table></section>")
    return html_page(f"edgellm center: {topology}", "center.js", body)


def edge_page(node_id):
    body = (f"<header><h1>edgellm edge <span class='sub' id='node'>{escape(node_id)}</span>"
            "</h1><span id='engine' class='sub'></span><span id='center' class='sub'></span>"
            "<span id='conn' class='conn'>connecting</span></header>"
            "<section><h2>Models</h2><div id='models'></div></section>"
            "<section><h2>Tasks now</h2><table id='current'><thead><tr><th>task</th>"
            "<th>type</th><th>model</th><th>for</th></tr></thead><tbody></tbody></table>"
            "</section>"
            "<section><h2>Recent tasks <span class='sub'>(the last 25)</span></h2><table id='recent'><thead><tr><th>finished</th>"
            "<th>type</th><th>model</th><th>latency (s, measured here)</th><th>score</th>"
            "<th>error</th></tr></thead><tbody></tbody></table></section>"
            "<section><h2>CPU and memory</h2><div class='chart wide' id='chart-load'></div>"
            "</section>"
            "<section><h2>Transfers</h2><table id='transfers'><thead><tr><th>started</th>"
            "<th>model</th><th>state</th><th>progress</th><th>seconds</th><th>retries</th>"
            "<th>SHA-256</th></tr></thead><tbody></tbody></table></section>")
    return html_page(f"edgellm edge: {node_id}", "edge.js", body)


def leaderboard_page(workspace, home=None):
    links = [("Center", home)] if home else []
    body = (f"<header><h1>edgellm leaderboard <span class='sub'>{escape(workspace)}</span>"
            f"</h1>{_nav(links)}</header><div id='boards'><p class='note'>loading...</p>"
            "</div>")
    return html_page("edgellm leaderboard", "leaderboard.js", body, charts=False)


def case_page(case_id, row, view):
    """A case's page, rendered here (escaped): its leaderboard row, metrics, config,
    first results and plots; the round charts are drawn by case.js."""
    title = f"{row.get('algorithm', '?')}: {case_id}"
    badge = "<span class='badge simulated'>SIMULATED</span>" if row.get("_simulated") else ""
    parts = [f"<header><h1>edgellm case <span class='sub'>{escape(title)}</span> {badge}"
             f"</h1>{_nav([('Leaderboard', 'leaderboard')])}</header>"]
    if view["error"]:
        parts.append(f"<section><h2>Error</h2><pre>{escape(view['error'])}</pre></section>")
    metrics = view["metrics"] or {}
    if metrics:
        parts.append("<section><h2>Metrics</h2>" + _table(
            ["metric", "value"], [[k, v] for k, v in metrics.items()]) + "</section>")
    if view["has_rounds"]:
        charts = "".join(f"<div class='chart' id='chart-{name}'></div>" for name in
                         ("latency", "tasks", "quality", "fallbacks"))
        parts.append(f"<section><h2>Rounds</h2><div class='charts' id='rounds' "
                     f"data-case='{escape(case_id)}'>{charts}</div>"
                     "<div class='chart wide' id='chart-cache'></div></section>")
    if view["results"]:
        header = list(view["results"][0])
        parts.append(f"<section><h2>First {len(view['results'])} results</h2>" + _table(
            header, [[r[h] for h in header] for r in view["results"]]) + "</section>")
    if view["plots"]:
        parts.append("<section><h2>Plots</h2>" + "".join(
            f"<img alt='{escape(name)}' src='case-file?id={quote(case_id, safe='')}"
            f"&amp;name={quote(name, safe='')}'>" for name in view["plots"]) + "</section>")
    if view["config"]:
        parts.append(f"<section><h2>config.yaml</h2><pre>{escape(view['config'])}</pre>"
                     "</section>")
    return html_page(f"edgellm case: {title}", "case.js", "".join(parts),
                     charts=view["has_rounds"])


def _table(header, rows):
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))
