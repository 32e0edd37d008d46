"use strict";
// The round charts and the cache timeline (plotly, served by the app itself), shared by
// the center's page (live rounds, wall-clock timeline) and a case's page (recorded
// rounds, timeline in rounds). Plotly reads a few HTML tags in labels: every name is
// escaped first, so it shows as the text it is.
const Charts = (() => {
  const CONFIG = {displaylogo: false, responsive: true, displayModeBar: false};
  const MARKS = {
    start: {symbol: "triangle-right", color: "#888", name: "transfer started"},
    done: {symbol: "circle", color: "#2a9d3f", name: "transfer done"},
    failed: {symbol: "x", color: "#d62828", name: "transfer failed"},
  };

  function label(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function layout(title, ytitle, xtitle, extra) {
    return Object.assign({
      title: {text: title, font: {size: 13}}, height: 280, font: {size: 11},
      margin: {l: 50, r: 10, t: 34, b: 40}, showlegend: true, legend: {font: {size: 10}},
      xaxis: {title: {text: xtitle}, automargin: true},
      yaxis: {title: {text: ytitle}, rangemode: "tozero", automargin: true},
    }, extra || {});
  }

  function draw(id, traces, settings) {
    const div = document.getElementById(id);
    if (!div) return;
    if (typeof Plotly === "undefined") {
      div.textContent = "charts need plotly (pip install plotly)";
      return;
    }
    Plotly.react(div, traces, settings, CONFIG);
  }

  function keys(rows, field, last) {
    const seen = new Set();
    for (const row of rows) for (const key of Object.keys(row[field] || {})) seen.add(key);
    const out = [...seen].filter((k) => k !== last).sort();
    return seen.has(last) ? out.concat([last]) : out;
  }

  // rows: {round, tasks: {node: n}, e2e_p50_s, e2e_p95_s, quality: {type: 0-1}, cloud,
  // redispatched}; seconds: the unit the latencies are in (a label)
  function rounds(rows, seconds) {
    rows = [...rows].sort((a, b) => a.round - b.round);
    const x = rows.map((r) => r.round);
    draw("chart-latency", [
      {x, y: rows.map((r) => r.e2e_p50_s), name: "p50", mode: "lines+markers", type: "scatter"},
      {x, y: rows.map((r) => r.e2e_p95_s), name: "p95", mode: "lines+markers", type: "scatter"},
    ], layout("End-to-end latency per round", seconds, "round"));
    draw("chart-tasks", keys(rows, "tasks", "cloud").map((node) => ({
      x, y: rows.map((r) => (r.tasks || {})[node] || 0), name: label(node), type: "bar"})),
    layout("Tasks per node", "tasks", "round", {barmode: "stack"}));
    draw("chart-quality", keys(rows, "quality").map((kind) => ({
      x, y: rows.map((r) => {
        const q = (r.quality || {})[kind];
        return q === undefined ? null : q;
      }), name: label(kind || "?"), mode: "lines+markers", type: "scatter", connectgaps: true})),
    layout("Quality per task type", "mean score (0-1)", "round",
           {yaxis: {title: {text: "mean score (0-1)"}, range: [0, 1.05]}}));
    draw("chart-fallbacks", [
      {x, y: rows.map((r) => r.cloud), name: "cloud fallbacks", type: "bar"},
      {x, y: rows.map((r) => r.redispatched), name: "re-dispatched", type: "bar"},
    ], layout("Cloud fallbacks and re-dispatches", "tasks", "round", {barmode: "group"}));
  }

  // timeline: {spans: [{node, model, start, end}], marks: [{time, node, model, kind}]};
  // opts.axis: "time" (epoch seconds) or "round"; opts.now: where open spans end
  function cache(timeline, id, opts) {
    if (!timeline) return;
    const time = opts.axis === "time";
    const at = (t) => (time ? new Date(t * 1000) : t);
    const lane = (node, model) => label(node) + " · " + label(model);
    const spans = timeline.spans || [];
    const end = opts.now !== undefined ? opts.now :
      Math.max(0, ...spans.map((s) => (s.end === null ? s.start : s.end))) + 1;
    const byNode = new Map();
    for (const span of spans) {
      if (!byNode.has(span.node)) byNode.set(span.node, {x: [], y: []});
      const trace = byNode.get(span.node);
      const y = lane(span.node, span.model);
      trace.x.push(at(span.start), at(span.end === null ? end : span.end), null);
      trace.y.push(y, y, null);
    }
    const traces = [...byNode.entries()].sort().map(([node, t]) => ({
      x: t.x, y: t.y, name: label(node), mode: "lines", type: "scatter",
      line: {width: 10}, hoverinfo: "y"}));
    for (const [kind, style] of Object.entries(MARKS)) {
      const marks = (timeline.marks || []).filter((m) => m.kind === kind);
      if (!marks.length) continue;
      traces.push({x: marks.map((m) => at(m.time)), y: marks.map((m) => lane(m.node, m.model)),
                   name: style.name, mode: "markers", type: "scatter", hoverinfo: "x+y+name",
                   marker: {symbol: style.symbol, color: style.color, size: 11}});
    }
    const lanes = new Set(traces.flatMap((t) => t.y.filter((y) => y !== null)));
    draw(id, traces, layout("", "",
                            time ? "time" : "round", {
      height: Math.max(220, 60 + 24 * lanes.size),
      xaxis: {title: {text: time ? "time" : "round"}, type: time ? "date" : "linear",
              automargin: true},
      yaxis: {type: "category", automargin: true, categoryorder: "category descending"},
    }));
  }

  return {rounds, cache, label};
})();
