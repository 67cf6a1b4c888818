// The monthly ledger page: the table, a CSV download and trend charts drawn as inline SVG.
"use strict";

const Reports = {
  async start() {
    const input = document.getElementById("month");
    input.value = input.value || App.month(Date.now());  // this month at the site
    input.addEventListener("change", Reports.load);
    document.getElementById("csv").addEventListener("click", Reports.download);
    document.addEventListener("langchange", Reports.load);
    await Reports.load();
  },

  // What went wrong, on the page (not only in the console); "" hides it.
  say(text) {
    const box = document.getElementById("report-error");
    box.textContent = text;
    box.hidden = !text;
    document.querySelector(".report-body").hidden = Boolean(text);  // no empty table under it
  },

  async load() {
    const month = document.getElementById("month").value;
    let ledger, trend;
    try {
      [ledger, trend] = await Promise.all([
        App.api(`/reports/ledger?month=${month}${App.siteQuery("&")}`),
        App.api(`/reports/trend?month=${month}&months=6${App.siteQuery("&")}`),
      ]);
    } catch (err) {
      document.getElementById("ledger").replaceChildren();
      document.getElementById("charts").replaceChildren();
      Reports.say(err.status === 403 ? App.t("no_report_access") : App.t("load_failed", { e: err.message }));
      if (err.status === 422 && !App.siteQuery("&")) await App.pickSite(document.getElementById("report-error"));
      return;
    }
    Reports.say("");
    const mins = (s) => (s == null ? "" : (s / 60).toFixed(1));
    const rows = ledger.rows.map((r) => App.el("tr", {},
      App.el("td", {}, r.opened_at), App.el("td", {}, r.location || App.buildingName(r.building_id) || App.gridName(r.grid_id)),
      App.el("td", {}, App.title(r)), App.el("td", {}, r.handled_by ? App.personName(r.handled_by) : ""),
      App.el("td", {}, mins(r.ack_s)), App.el("td", {}, mins(r.resolve_s)),
      App.el("td", {}, r.resolution ? App.t(r.resolution) : ""), App.el("td", {}, App.t(r.status))));
    document.getElementById("ledger").replaceChildren(...(rows.length ? rows
      : [App.el("tr", {}, App.el("td", { class: "empty", colspan: "8" }, App.t("empty_month")))]));
    const labels = trend.map((p) => p.month.slice(2));
    document.getElementById("charts").replaceChildren(
      Reports.chart(App.t("incidents_by_month"), labels, trend.map((p) => p.stats.incidents), (v) => v),
      Reports.chart(App.t("ack_minutes"), labels, trend.map((p) => (p.stats.mean_ack_s || 0) / 60), (v) => v.toFixed(1)),
      Reports.chart(App.t("resolution_rate"), labels, trend.map((p) => (p.stats.resolution_rate || 0) * 100), (v) => `${v.toFixed(0)}%`),
      Reports.chart(App.t("within_deadline"), labels, trend.map((p) => (p.stats.within_deadline_share || 0) * 100), (v) => `${v.toFixed(0)}%`),
    );
  },

  // A small bar chart; SVG built by hand so the page needs no library and no network.
  chart(title, labels, values, fmt) {
    const NS = "http://www.w3.org/2000/svg";
    const w = 320, h = 160, pad = 24, max = Math.max(1, ...values);
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", title);
    const bw = (w - pad * 2) / values.length;
    values.forEach((v, i) => {
      const bh = ((h - pad * 2) * v) / max;
      const x = pad + i * bw + bw * 0.15, y = h - pad - bh;
      const rect = document.createElementNS(NS, "rect");
      Object.entries({ x, y, width: bw * 0.7, height: bh, fill: "#60a5fa", rx: 2 })
        .forEach(([k, val]) => rect.setAttribute(k, val));
      const label = document.createElementNS(NS, "text");
      Object.entries({ x: x + bw * 0.35, y: h - 8, "text-anchor": "middle" }).forEach(([k, val]) => label.setAttribute(k, val));
      label.textContent = labels[i];
      const value = document.createElementNS(NS, "text");
      Object.entries({ x: x + bw * 0.35, y: y - 4, "text-anchor": "middle" }).forEach(([k, val]) => value.setAttribute(k, val));
      value.textContent = fmt(v);
      svg.append(rect, label, value);
    });
    return App.el("figure", { class: "chart" }, App.el("figcaption", {}, title), svg);
  },

  async download() {
    const month = document.getElementById("month").value;
    const r = await fetch(`/api/v1/reports/ledger.csv?month=${month}&lang=${App.lang}`, {
      headers: { Authorization: `Bearer ${App.token}` },
    });
    if (!r.ok) {
      Reports.say(r.status === 403 ? App.t("no_report_access") : App.t("load_failed", { e: r.statusText }));
      return;
    }
    const url = URL.createObjectURL(await r.blob());
    const a = App.el("a", { href: url, download: `ledger-${month}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    URL.revokeObjectURL(url);
  },
};

App.boot(Reports.start);
