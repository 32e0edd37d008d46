"use strict";
// An edge node's own page: its engine and models, the tasks it serves and served,
// its CPU and memory, its transfers; one snapshot per server-sent event.
(() => {
  const {el, format} = Dom;
  const $ = (id) => document.getElementById(id);
  const RECENT_SHOWN = 25;
  let offset = 0;

  function models(data) {
    const chips = data.ready.map((m) => el("span", {class: "chip"}, m));
    for (const [model, info] of Object.entries(data.loading)) {
      const total = Number(info.total) || 1;
      chips.push(el("span", {class: "chip loading"}, model, " ",
                    el("progress", {max: total, value: info.state === "load" ? total : info.bytes || 0}),
                    " ", info.state === "load" ? "loading" :
                      "transfer " + Math.floor((100 * (info.bytes || 0)) / total) + " %"));
    }
    const waiting = data.target.filter((m) => !data.ready.includes(m) && !(m in data.loading));
    for (const model of waiting) chips.push(el("span", {class: "chip waiting"}, model));
    return chips.length ? chips : ["no model"];
  }

  function render(data) {
    offset = data.server_time - Date.now() / 1000;
    const now = data.server_time;
    $("engine").textContent = `${data.engine} engine, ${data.busy} of ${data.slots ?? "?"} ` +
      `slots busy, ${data.queue} queued` + (data.time_scale ? `, time scale ${data.time_scale}` : "");
    Dom.replace($("center"), ["center ", el("a", {href: data.center}, data.center)]);
    Dom.replace($("models"), models(data));
    Dom.replace($("current").tBodies[0], data.current.length ? data.current.map((t) =>
      el("tr", {}, el("td", {}, t.task), el("td", {}, t.task_type || "?"), el("td", {}, t.model),
         el("td", {}, format.age(now - t.since)))) :
      [el("tr", {}, el("td", {colspan: 4, class: "note"}, "idle"))]);
    Dom.replace($("recent").tBodies[0], data.recent.slice(0, RECENT_SHOWN).map((t) =>
      el("tr", {class: t.error ? "failed" : null}, el("td", {}, format.clock(t.at)),
         el("td", {}, t.task_type || "?"), el("td", {}, t.model), el("td", {}, format.num(t.e2e_s)),
         el("td", {}, format.num(t.score, 2)), el("td", {}, t.error || ""))));
    Dom.replace($("transfers").tBodies[0], data.transfers.map((t) =>
      el("tr", {"data-model": t.model, "data-state": t.state}, el("td", {}, format.clock(t.started)),
         el("td", {}, t.model), el("td", {}, t.state + (t.error ? ": " + t.error : "")),
         el("td", {}, el("progress", {max: t.total || 1, value: t.bytes || 0}), " ",
            format.bytes(t.bytes), " of ", format.bytes(t.total)),
         el("td", {}, format.num(t.seconds)), el("td", {}, t.retries ?? ""),
         el("td", {class: "digest", title: t.sha256 || ""}, (t.sha256 || "").slice(0, 16)))));
    drawLoad(data.load);
  }

  const drawLoad = (samples) => {
    const div = $("chart-load");
    if (typeof Plotly === "undefined") {
      div.textContent = "charts need plotly (pip install plotly)";
      return;
    }
    const x = samples.map((s) => new Date((s[0] - offset) * 1000));
    Plotly.react(div, [
      {x, y: samples.map((s) => s[1]), name: "CPU %", mode: "lines", type: "scatter"},
      {x, y: samples.map((s) => s[2]), name: "memory %", mode: "lines", type: "scatter"},
    ], {height: 240, margin: {l: 40, r: 10, t: 10, b: 30}, font: {size: 11},
        yaxis: {range: [0, 100], title: {text: "%"}}, xaxis: {type: "date"},
        legend: {orientation: "h", y: -0.25}},
    {displaylogo: false, responsive: true, displayModeBar: false});
  };

  try {
    Dom.stream("api/stream", {snapshot: render}, $("conn"));
  } catch (err) {
    Dom.fail("the node's page", err);
  }
})();
