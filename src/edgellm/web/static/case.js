"use strict";
// A fleet case's page: its recorded rounds drawn as the center draws live ones
// (api/case-rounds: round rows from results.jsonl, the cache timeline from rounds.csv).
(() => {
  const host = document.getElementById("rounds");
  if (!host) return;
  fetch("api/case-rounds?id=" + encodeURIComponent(host.getAttribute("data-case")))
    .then((response) => {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then((data) => {
      Charts.rounds(data.rows, "fleet seconds");
      Charts.cache(data.cache, "chart-cache", {axis: "round"});
    })
    .catch((err) => Dom.fail("the rounds", err));
})();
