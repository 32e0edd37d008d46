"use strict";
// A workspace's leaderboards: one table per job, the selected columns first and the
// others one click away, sorted by a click on a column's head (again: the other way),
// filtered by the text typed (any cell). Each row links to its case's page.
(() => {
  const {el} = Dom;

  function number(text) {
    const n = Number(text);
    return text !== "" && text !== null && text !== undefined && isFinite(n) ? n : null;
  }

  function compare(a, b) {
    const x = number(a), y = number(b);
    if (x !== null && y !== null) return x - y;
    if (x !== null) return -1;  // numbers before text and empty cells
    if (y !== null) return 1;
    return String(a ?? "").localeCompare(String(b ?? ""));
  }

  function board(data) {
    const selected = new Set(data.selected);
    const columns = data.columns;
    const rows = data.rows.map((row, i) => ({...row, order: i}));
    let sortBy = null, ascending = true;

    const filter = el("input", {type: "search", placeholder: "filter rows (any cell)",
                                "aria-label": "filter " + data.job, class: "filter"});
    const toggle = el("button", {type: "button", class: "toggle"});
    const count = el("span", {class: "note count"});
    const table = el("table", {class: "leaderboard compact", "data-job": data.job});
    const head = el("tr", {}, el("th", {}, "case"), el("th", {}, ""),
      ...columns.map((c) => el("th", {class: selected.has(c) || c === "rank" ? "sortable" : "sortable extra",
                                      "data-column": c, title: "sort by " + c,
                                      on: {click: () => sort(c)}}, c)));
    const body = el("tbody");
    table.append(el("thead", {}, head), body);

    function sort(column) {
      ascending = sortBy === column ? !ascending : true;
      sortBy = column;
      for (const th of head.querySelectorAll("th[data-column]")) {
        const on = th.getAttribute("data-column") === column;
        th.setAttribute("aria-sort", on ? (ascending ? "ascending" : "descending") : "none");
      }
      render();
    }

    function render() {
      const text = filter.value.trim().toLowerCase();
      let shown = rows.filter((r) => !text || (r.simulated ? "simulated " : "").includes(text) ||
        columns.some((c) => String(r.cells[c] ?? "").toLowerCase().includes(text)));
      if (sortBy !== null) {
        shown = [...shown].sort((a, b) => compare(a.cells[sortBy], b.cells[sortBy]) * (ascending ? 1 : -1));
      }
      Dom.replace(body, shown.map((r) => el("tr", {"data-case": r.case || ""},
        el("td", {}, r.case ? el("a", {href: "case?id=" + encodeURIComponent(r.case)}, "open") :
          el("span", {class: "note", title: "its folder is gone"}, "gone")),
        el("td", {}, r.simulated ? el("span", {class: "badge simulated",
                                               title: "figures from model profiles, not real inference"}, "SIMULATED") :
          (r.simulated === null ? el("span", {class: "note", title: "cannot tell"}, "?") : "")),
        ...columns.map((c) => el("td", {class: selected.has(c) || c === "rank" ? null : "extra",
                                        title: r.cells[c] || null}, r.cells[c] ?? "")))));
      count.textContent = `${shown.length} of ${rows.length} rows`;
    }

    function showColumns(all) {
      table.classList.toggle("compact", !all);
      toggle.textContent = all ? "selected columns only" :
        `all ${columns.length} columns (${columns.length - selected.size - 1} more)`;
    }

    toggle.addEventListener("click", () => showColumns(table.classList.contains("compact")));
    filter.addEventListener("input", render);
    showColumns(false);
    render();
    return el("section", {"data-job": data.job}, el("h2", {}, data.job),
              el("p", {class: "note"}, data.rank_file),
              el("div", {class: "filters"}, filter, " ", toggle, " ", count),
              el("div", {class: "scroll"}, table));
  }

  fetch("api/leaderboard")
    .then((response) => {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then((data) => {
      const boards = document.getElementById("boards");
      Dom.replace(boards, data.boards.length ? data.boards.map(board) :
        [el("p", {class: "note"}, "no rank files in " + data.workspace)]);
    })
    .catch((err) => Dom.fail("the leaderboard", err));
})();
