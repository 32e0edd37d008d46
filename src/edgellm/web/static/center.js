"use strict";
// The center's page: the node table, the round charts, the cache timeline and the event
// log, kept current by the server's event stream (api/monitor/stream). A node's state
// is drawn as soon as its message arrives; charts are redrawn at most twice a second.
(() => {
  const {el, format} = Dom;
  const $ = (id) => document.getElementById(id);
  const KINDS = ["register", "ready", "not_ready", "unreachable", "back", "draining",
                 "transfer_start", "transfer_done", "transfer_failed", "redispatch",
                 "late_answer", "run_start", "run_end", "error"];
  const MAX_EVENTS = 1000;
  const state = {
    offset: 0,                 // the server's clock minus this page's (seconds)
    nodes: [], seen: {},       // node id -> when its last heartbeat was (server clock)
    shown: {},                 // node id -> {state, at}: when this page drew that state
    events: new Map(),         // seq -> event
    roundsRun: null, rounds: new Map(),
    spans: new Map(), marks: [],
    scale: null,
  };

  const serverNow = () => Date.now() / 1000 + state.offset;
  const sync = (data) => { if (data.server_time) state.offset = data.server_time - Date.now() / 1000; };

  function models(node) {
    const chips = (node.models_ready || []).map((m) => el("span", {class: "chip"}, m));
    for (const [model, info] of Object.entries(node.models_loading || {})) {
      const total = Number(info.total) || 0;
      const done = Number(info.bytes) || 0;
      const pct = total ? Math.floor((100 * done) / total) : 0;
      const what = info.state === "load" ? "loading" : "transfer " + pct + " %";
      chips.push(el("span", {class: "chip loading", "data-model": model}, model, " ",
                    el("progress", {max: total || 1, value: info.state === "load" ? total || 1 : done}),
                    " ", el("span", {class: "what"}, what)));
    }
    return chips.length ? chips : ["–"];
  }

  function nodeRow(node) {
    const stateName = String(node.state).replace(/[^A-Z_]/g, "");
    const shown = state.shown[node.id];
    if (!shown || shown.state !== node.state) {
      // when this page first showed the state (tests measure the push's delay with it)
      state.shown[node.id] = {state: node.state, at: performance.timeOrigin + performance.now()};
    }
    const name = node.monitor_url ?
      el("a", {href: node.monitor_url, title: "the node's own page"}, node.id) : node.id;
    return el("tr", {"data-node": node.id, "data-state": node.state,
                     "data-shown-at": state.shown[node.id].at.toFixed(1)},
      el("td", {}, name),
      el("td", {}, el("span", {class: "badge state-" + stateName}, node.state)),
      el("td", {class: "age", "data-node": node.id}, format.age(serverNow() - state.seen[node.id])),
      el("td", {}, node.engine),
      el("td", {class: "models"}, models(node)),
      el("td", {}, `${node.slots_in_use ?? 0} / ${node.slots ?? "?"}`),
      el("td", {}, node.queue ?? 0),
      el("td", {}, format.pct(node.cpu_percent)),
      el("td", {}, format.pct(node.memory_percent)));
  }

  function renderNodes() {
    const rows = [...state.nodes].sort((a, b) => (a.id < b.id ? -1 : 1)).map(nodeRow);
    Dom.replace($("nodes").tBodies[0], rows.length ? rows :
      [el("tr", {}, el("td", {colspan: 9, class: "note"}, "no node has registered yet"))]);
    const select = $("event-node");
    const chosen = select.value;
    Dom.replace(select, [el("option", {value: ""}, "every node"),
                         ...state.nodes.map((n) => el("option", {value: n.id}, n.id))]);
    select.value = chosen;
  }

  function tickAges() {
    for (const cell of document.querySelectorAll("#nodes td.age")) {
      cell.textContent = format.age(serverNow() - state.seen[cell.getAttribute("data-node")]);
    }
  }

  function onNodes(data) {
    sync(data);
    state.nodes = data.nodes || [];
    for (const node of state.nodes) state.seen[node.id] = data.server_time - node.heartbeat_age_s;
    renderNodes();
  }

  const renderEvents = Dom.coalesce(() => {
    const kind = $("event-kind").value;
    const node = $("event-node").value;
    const text = $("event-text").value.trim().toLowerCase();
    const rows = [...state.events.values()].sort((a, b) => b.seq - a.seq)
      .filter((e) => (!kind || e.kind === kind) && (!node || e.node === node) &&
              (!text || `${e.kind} ${e.node || ""} ${e.message}`.toLowerCase().includes(text)))
      .slice(0, 500)
      .map((e) => el("tr", {"data-kind": e.kind},
        el("td", {}, format.clock(e.time)),
        el("td", {}, el("span", {class: "badge kind-" + String(e.kind).replace(/[^a-z_]/g, "")}, e.kind)),
        el("td", {}, e.node || ""),
        el("td", {title: e.sha256 ? "SHA-256 " + e.sha256 : null}, e.message)));
    Dom.replace($("events").tBodies[0], rows);
  }, 100);

  function addEvent(event) {
    state.events.set(event.seq, event);
    if (state.events.size > MAX_EVENTS) state.events.delete(Math.min(...state.events.keys()));
  }

  const drawRounds = Dom.coalesce(() => {
    const unit = state.scale && state.scale !== 1 ? "fleet seconds" : "seconds";
    Charts.rounds([...state.rounds.values()], unit);
  }, 500);

  const drawCache = Dom.coalesce(() => Charts.cache(
    {spans: [...state.spans.values()], marks: state.marks}, "chart-cache",
    {axis: "time", now: serverNow()}), 500);

  function onRounds(data) {
    if (data.run !== state.roundsRun) {
      state.roundsRun = data.run;
      state.rounds.clear();
    }
    for (const row of data.rows || []) state.rounds.set(row.round, row);
    $("rounds-run").textContent = data.run ? "run " + data.run : "";
    drawRounds();
  }

  function onCache(data) {
    for (const span of data.spans || []) state.spans.set(span.id, span);
    state.marks.push(...(data.marks || []));
    drawCache();
  }

  function onRun(data) {
    sync(data);
    state.scale = data.time_scale;
    const run = data.run;
    $("run").textContent = run ?
      `run ${run.id}: ${run.offloader || "?"} / ${run.caching || "?"}, ` +
      `${run.answered} of ${run.tasks} tasks answered` :
      (data.error ? "last run failed: " + data.error : "no run in progress") +
      ` (time scale ${data.time_scale})`;
  }

  function onSnapshot(data) {
    state.events.clear();
    for (const event of data.events || []) addEvent(event);
    state.spans.clear();
    state.marks = [];
    state.roundsRun = undefined;
    onNodes(data);
    onRun(data.run);
    onRounds(data.rounds);
    onCache(data.cache);
    renderEvents();
  }

  function start() {
    Dom.replace($("event-kind"), [el("option", {value: ""}, "every kind"),
                                  ...KINDS.map((k) => el("option", {value: k}, k))]);
    for (const id of ["event-kind", "event-node", "event-text"]) {
      $(id).addEventListener("input", renderEvents);
    }
    Dom.stream("api/monitor/stream", {
      snapshot: onSnapshot, nodes: onNodes, rounds: onRounds, cache: onCache, run: onRun,
      event: (data) => { sync(data); addEvent(data.event); renderEvents(); },
    }, $("conn"));
    setInterval(tickAges, 1000);
    setInterval(drawCache, 5000);  // open spans grow with time
  }

  try {
    start();
  } catch (err) {
    Dom.fail("the center's page", err);
  }
})();
