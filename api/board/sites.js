// A street office's communities on the duty board: one card per site with its figures, and a
// site filter. Someone who sees one site (a community's staff) gets neither.
"use strict";

const Sites = {
  list: [],
  timer: null,

  async start(person) {
    Sites.list = await App.api("/sites").catch(() => []);
    if (Sites.list.length < 2) return;  // one community: no switcher, the board as before
    if (Board.site && !Sites.list.some((s) => s.code === Board.site)) Board.site = null;
    await Sites.loadNames();
    const select = document.getElementById("site-filter");
    select.addEventListener("change", () => Sites.choose(select.value || null));
    document.getElementById("site-filter-box").hidden = false;
    document.getElementById("sites-panel").hidden = false;
    document.addEventListener("langchange", Sites.render);
    Sites.render();
    Sites.links();
    setInterval(Sites.refresh, 30000);
  },

  // Grid, building and people names of every site: the "all sites" list names them all.
  async loadNames() {
    const screens = await Promise.all(
      Sites.list.map((s) => App.api(`/screen?site=${encodeURIComponent(s.code)}`).catch(() => null)));
    for (const ctx of screens.filter(Boolean)) {
      Object.assign(App.ctx.grids, ctx.grids);
      Object.assign(App.ctx.buildings, ctx.buildings);
      Object.assign(App.ctx.people, ctx.people);
    }
  },

  async refresh() {
    Sites.list = await App.api("/sites").catch(() => Sites.list);
    Sites.render();
  },

  // Incidents change the figures: refresh once shortly after a burst, not per event.
  changed() {
    if (Sites.list.length < 2 || Sites.timer) return;
    Sites.timer = setTimeout(() => { Sites.timer = null; Sites.refresh(); }, 1500);
  },

  choose(code) {
    Board.site = code;
    const url = new URL(location.href);
    if (code) url.searchParams.set("site", code); else url.searchParams.delete("site");
    history.replaceState(null, "", url);
    Sites.links();
    Board.selected = null;
    document.getElementById("detail").hidden = true;
    Sites.render();
    Board.loadIncidents();
    Board.loadOverview();
  },

  // The ledger and closed-loop pages follow the chosen community.
  links() {
    document.querySelectorAll('header a[href^="reports.html"], header a[href^="loop.html"]').forEach((a) => {
      const url = new URL(a.getAttribute("href"), location.href);
      if (Board.site) url.searchParams.set("site", Board.site); else url.searchParams.delete("site");
      a.setAttribute("href", `${url.pathname.split("/").pop()}${url.search}`);
    });
  },

  render() {
    if (Sites.list.length < 2) return;
    const select = document.getElementById("site-filter");
    select.replaceChildren(
      App.el("option", { value: "" }, App.t("all_sites")),
      ...Sites.list.map((s) => App.el("option", { value: s.code }, s.name)));
    select.value = Board.site || "";
    const streets = [...new Set(Sites.list.map((s) => s.street_name).filter(Boolean))];
    document.getElementById("sites-title").textContent =
      `${streets.length ? `${streets.join("、")} · ` : ""}${App.t("sites_title")}`;
    document.getElementById("site-cards").replaceChildren(...Sites.list.map(Sites.card));
  },

  card(s) {
    const f = s.figures;
    const rate = f.rectification_rate == null ? App.t("site_no_hazards")
      : App.t("site_rectified", { r: `${Math.round(f.rectification_rate * 100)}%` });
    const chosen = Board.site === s.code;
    return App.el("button", {
      type: "button",
      class: `site-card${f.unacknowledged ? " has-open" : ""}${chosen ? " chosen" : ""}`,
      dataset: { site: s.code },
      "aria-pressed": String(chosen),
      title: App.t("site_open_board"),
      onclick: () => Sites.choose(chosen ? null : s.code),
    },
    App.el("b", { class: "site-name" }, s.name),
    App.el("span", { class: "meta devices" },
      App.t("site_devices", {
        n: f.devices, on: f.online, off: f.offline, unknown: f.devices - f.online - f.offline })),
    App.el("span", { class: "meta counts" },
      App.el("span", { class: "open-n" }, App.t("site_open", { n: f.open_incidents })), " · ",
      App.el("span", { class: `unacked-n${f.unacknowledged ? " alert" : ""}` },
        App.t("site_unacked", { n: f.unacknowledged })), " · ",
      App.el("span", { class: `overdue-n${f.overdue ? " alert" : ""}` },
        App.t("site_overdue", { n: f.overdue }))),
    App.el("span", { class: "meta rate" }, rate));
  },
};
