// The duty board's grid cards say how many household visits (走访) are overdue in each grid.
// Watches the cards render (board.js stays as it is); the figures come from /visits/overdue.
"use strict";

(() => {
  const box = document.getElementById("grids");
  if (!box) return;
  let overdue = null;
  let asked = 0;
  const label = () => ((localStorage.getItem("lang") || "zh") === "en" ? "visits overdue" : "走访逾期");
  const mark = () => {
    if (!overdue) return;
    box.querySelectorAll(".grid-card[data-grid]").forEach((card) => {
      const n = overdue[card.dataset.grid] || 0;
      let line = card.querySelector(".visits-overdue");
      if (!n) { if (line) line.remove(); return; }
      if (!line) { line = App.el("div", { class: "visits-overdue" }); card.append(line); }
      line.textContent = `${label()} ${n}`;
    });
  };
  const refresh = async () => {
    if (Date.now() - asked < 60_000) { mark(); return; }  // at most once a minute
    asked = Date.now();
    try {
      const r = await App.api("/visits/overdue");
      overdue = Object.fromEntries(r.grids.map((g) => [g.grid_id, g.overdue]));
    } catch (err) { overdue = null; return; }
    mark();
  };
  new MutationObserver(refresh).observe(box, { childList: true });
})();
