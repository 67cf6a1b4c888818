// The worker app's elderly-living-alone list: last activity, emergency facts, family to call,
// and a visit (走访) recorded on the spot.
"use strict";

Object.assign(I18N.zh, {
  elderly_title: "独居老人", last_activity: "最近活动", never: "无记录", hours_ago: "{h} 小时前",
  quiet_too_long: "超过 {h} 小时无活动", record_visit: "记录走访", visit_notes: "走访情况",
  saved: "已保存", fact_mobility: "行动能力", fact_chronic_illness: "慢性病",
  fact_key_holder: "钥匙持有人", fact_language: "语言/方言", no_tier: "未评定", none_here: "您的网格暂无独居老人",
});
Object.assign(I18N.en, {
  elderly_title: "Elderly living alone", last_activity: "Last activity", never: "none recorded",
  hours_ago: "{h} h ago", quiet_too_long: "quiet for more than {h} h", record_visit: "Record visit",
  visit_notes: "What you found", saved: "Saved", fact_mobility: "Mobility",
  fact_chronic_illness: "Chronic illness", fact_key_holder: "Key holder", fact_language: "Language",
  no_tier: "Not assessed", none_here: "No elderly residents living alone in your grids",
});

const Elderly = {
  tiers: {},

  async start() {
    document.addEventListener("langchange", Elderly.load);
    const tiers = await App.api("/households/tiers");
    Elderly.tiers = Object.fromEntries(tiers.map((t) => [t.key, t]));
    await Elderly.load();
  },

  async load() {
    const rows = await App.api("/households/elderly");
    const now = Date.now();
    const el = App.el;
    const list = document.getElementById("elderly");
    if (!rows.length) { list.replaceChildren(el("li", { class: "empty" }, App.t("none_here"))); return; }
    list.replaceChildren(...rows.map((h) => {
      const tier = Elderly.tiers[h.risk_tier];
      const quietH = h.no_activity_hours || 24;
      const hours = h.last_activity_ms == null ? null : Math.floor((now - h.last_activity_ms) / 3_600_000);
      const late = hours == null || hours >= quietH;
      const notes = el("input", { name: "notes", placeholder: App.t("visit_notes") });
      return el("li", { class: `card tier-${h.risk_tier || "none"}`, dataset: { id: h.household_id } },
        el("div", { class: "title" }, el("span", { class: `tier-badge tier-${h.risk_tier || "none"}` },
          tier ? (App.lang === "en" && tier.name_en ? tier.name_en : tier.name) : App.t("no_tier")), ` ${h.address}`),
        el("div", { class: late ? "activity late" : "activity" }, `${App.t("last_activity")}：`,
          hours == null ? App.t("never") : App.t("hours_ago").replace("{h}", hours),
          late ? `（${App.t("quiet_too_long").replace("{h}", quietH)}）` : ""),
        el("div", { class: "muted" }, Object.entries(h.facts || {}).map(([k, v]) => `${App.t(`fact_${k}`)}：${v}`).join("；")),
        el("div", { class: "contacts" }, ...(h.contacts || []).map((c) =>
          el("a", { href: `tel:${c.phone}`, class: "call" }, `${c.name}${c.relation ? `（${c.relation}）` : ""} ${c.phone}`))),
        el("div", { class: "actions" }, notes, el("button", { type: "button", class: "primary visit", onclick: async () => {
          const today = new Date();
          const day = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, "0")}-${String(today.getDate()).padStart(2, "0")}`;
          try {
            await App.api(`/households/${encodeURIComponent(h.household_id)}/visits`, { method: "POST", json: { visited_on: day, notes: notes.value.trim() } });
            notes.value = "";
            document.getElementById("notice").textContent = App.t("saved");
          } catch (err) { document.getElementById("notice").textContent = err.message; }
        } }, App.t("record_visit"))));
    }));
  },
};

App.boot(Elderly.start);
