// The problem ledger (问题台账): device incidents and reported matters, the figures a community
// reports each month, per grid and per worker; CSV and Excel downloads; print-ready.
"use strict";

Object.assign(I18N.zh, {
  ledger_title: "问题台账", download_xlsx: "下载 Excel", print: "打印月报", tier: "层级",
  by_grid: "分网格", by_worker: "分网格员", ledger_rows: "台账明细", incidents: "事件数",
  closed_n: "已结案", closed_within_grid_share: "网格内办结占比", ack_median_s: "确认用时中位数(分)",
  ack_p90_s: "确认用时P90(分)", arrive_median_s: "到场用时中位数(分)", arrive_p90_s: "到场用时P90(分)",
  resolve_median_s: "办结用时中位数(分)", resolve_p90_s: "办结用时P90(分)", ack_on_time_rate: "按时确认率",
  arrive_on_time_rate: "按时到场率", resolve_on_time_rate: "按时办结率", hazards: "隐患数",
  rectification_rate: "整改完成率", overdue_hazards: "逾期隐患", false_alarm_rate: "误报率",
  satisfaction: "满意率", opened: "发生时间",
});
Object.assign(I18N.en, {
  ledger_title: "Problem ledger", download_xlsx: "Download Excel", print: "Print report", tier: "Tier",
  by_grid: "By grid", by_worker: "By worker", ledger_rows: "Ledger", incidents: "Incidents",
  closed_n: "Closed", closed_within_grid_share: "Closed within grid", ack_median_s: "Ack median (min)",
  ack_p90_s: "Ack p90 (min)", arrive_median_s: "Arrive median (min)", arrive_p90_s: "Arrive p90 (min)",
  resolve_median_s: "Resolve median (min)", resolve_p90_s: "Resolve p90 (min)", ack_on_time_rate: "Ack on time",
  arrive_on_time_rate: "Arrived on time", resolve_on_time_rate: "Resolved on time", hazards: "Hazards",
  rectification_rate: "Rectification rate", overdue_hazards: "Overdue hazards", false_alarm_rate: "False alarms",
  satisfaction: "Satisfaction", opened: "Opened",
});

const COLUMNS = ["incidents", "closed_within_grid_share", "ack_median_s", "ack_p90_s", "arrive_median_s",
  "arrive_p90_s", "resolve_median_s", "resolve_p90_s", "ack_on_time_rate", "arrive_on_time_rate",
  "resolve_on_time_rate", "hazards", "rectification_rate", "overdue_hazards", "false_alarm_rate", "satisfaction"];

const Ledger = {
  async start() {
    const f = document.getElementById("filters");
    const now = new Date();
    f.month.value = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
    const grids = await App.api("/grids?limit=500");
    const list = Array.isArray(grids) ? grids : grids.data || [];
    f.grid.append(...list.map((g) => App.el("option", { value: g.id }, g.name)));
    Ledger.gridNames = Object.fromEntries(list.map((g) => [g.id, g.name]));
    f.addEventListener("change", Ledger.load);
    document.getElementById("csv").addEventListener("click", () => Ledger.download("csv"));
    document.getElementById("xlsx").addEventListener("click", () => Ledger.download("xlsx"));
    document.getElementById("print").addEventListener("click", () => window.print());
    document.addEventListener("langchange", Ledger.load);
    App.translate();
    await Ledger.load();
  },

  query() {
    const f = document.getElementById("filters");
    const q = new URLSearchParams();
    for (const k of ["month", "grid", "source", "category", "tier", "status"]) if (f[k].value) q.set(k, f[k].value);
    return q.toString();
  },

  cell(key, v) {
    if (v == null) return "–";
    if (key.endsWith("_s")) return (v / 60).toFixed(1);
    if (key.endsWith("rate") || key.endsWith("share") || key === "satisfaction") return `${(v * 100).toFixed(0)}%`;
    return String(v);
  },

  table(id, first, entries) {
    const head = App.el("tr", {}, App.el("th", {}, first), ...COLUMNS.map((c) => App.el("th", {}, App.t(c))));
    document.getElementById(id).replaceChildren(App.el("thead", {}, head), App.el("tbody", {},
      ...entries.map(([name, f]) => App.el("tr", {}, App.el("td", {}, name),
        ...COLUMNS.map((c) => App.el("td", {}, Ledger.cell(c, f[c])))))));
  },

  async load() {
    const r = await App.api(`/reports/loop-ledger?${Ledger.query()}`);
    const s = r.summary;
    const card = (key) => App.el("div", { class: "counter", dataset: { figure: key } },
      App.el("b", {}, Ledger.cell(key, s[key])), App.el("span", {}, App.t(key)));
    document.getElementById("summary").replaceChildren(App.el("div", { class: "counters" },
      ...["incidents", "closed_within_grid_share", "rectification_rate", "overdue_hazards", "false_alarm_rate",
        "satisfaction"].map(card)));
    const grids = Object.entries(r.by_grid);
    const names = grids.map(([g]) => Ledger.gridNames[g] || g);
    document.getElementById("charts").replaceChildren(
      Ledger.chart(App.t("incidents"), names, grids.map(([, f]) => f.incidents), String),
      Ledger.chart(App.t("rectification_rate"), names, grids.map(([, f]) => (f.rectification_rate || 0) * 100), (v) => `${v.toFixed(0)}%`),
      Ledger.chart(App.t("closed_within_grid_share"), names, grids.map(([, f]) => (f.closed_within_grid_share || 0) * 100), (v) => `${v.toFixed(0)}%`),
    );
    Ledger.table("by-grid", App.t("grid"), grids.map(([g, f]) => [Ledger.gridNames[g] || g, f]));
    Ledger.table("by-worker", App.t("handled_by"), Object.entries(r.by_worker).map(([who, f]) => [App.personName(who), f]));
    const cols = ["opened", "where", "source", "case_category", "tier", "what", "status", "handled_by", "deadline", "rating"];
    document.getElementById("rows").replaceChildren(
      App.el("thead", {}, App.el("tr", {}, ...cols.map((c) => App.el("th", {}, App.t(c))))),
      App.el("tbody", {}, ...r.rows.map((x) => App.el("tr", { dataset: { id: x.id } },
        App.el("td", {}, x.opened_at), App.el("td", {}, x.location || x.grid_id), App.el("td", {}, App.t(x.source)),
        App.el("td", {}, App.t(x.category)), App.el("td", {}, x.tier ? App.t(`tier_${x.tier}`) : "–"),
        App.el("td", {}, x.title), App.el("td", { class: x.overdue ? "overdue" : "" },
          `${App.t(x.status)}${x.hazard_state ? ` · ${App.t(x.hazard_state)}` : ""}`),
        App.el("td", {}, x.worker ? App.personName(x.worker) : ""), App.el("td", {}, x.deadline || ""),
        App.el("td", {}, x.rating ? App.t(x.rating) : "")))));
  },

  chart(title, labels, values, fmt) {
    const NS = "http://www.w3.org/2000/svg";
    const w = 320, h = 160, pad = 24, max = Math.max(1, ...values);
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", title);
    const bw = (w - pad * 2) / Math.max(1, values.length);
    const text = (x, y, s) => {
      const t = document.createElementNS(NS, "text");
      Object.entries({ x, y, "text-anchor": "middle" }).forEach(([k, v]) => t.setAttribute(k, v));
      t.textContent = s;
      return t;
    };
    values.forEach((v, i) => {
      const bh = ((h - pad * 2) * v) / max, x = pad + i * bw + bw * 0.15, y = h - pad - bh;
      const rect = document.createElementNS(NS, "rect");
      Object.entries({ x, y, width: bw * 0.7, height: bh, fill: "#60a5fa", rx: 2 }).forEach(([k, val]) => rect.setAttribute(k, val));
      svg.append(rect, text(x + bw * 0.35, h - 8, labels[i]), text(x + bw * 0.35, y - 4, fmt(v)));
    });
    return App.el("figure", { class: "chart" }, App.el("figcaption", {}, title), svg);
  },

  async download(ext) {
    const r = await fetch(`/api/v1/reports/loop-ledger.${ext}?${Ledger.query()}`, {
      headers: { Authorization: `Bearer ${App.token}` },
    });
    const url = URL.createObjectURL(await r.blob());
    const a = App.el("a", { href: url, download: `ledger.${ext}` });
    document.body.append(a);
    a.click();
    a.remove();
    URL.revokeObjectURL(url);
  },
};

App.boot(() => Ledger.start());
