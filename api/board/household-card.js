// The household card on an incident (五彩档案): risk tier, address, emergency facts, the family
// to call and the acknowledgement deadline. Added to the worker's incident cards and the board's
// incident detail by watching them render, so board.js and worker.js stay as they are.
"use strict";

const HouseholdCard = {
  cache: new Map(),
  words: {
    zh: { ack_by: "须在 {t} 前确认", mobility: "行动能力", chronic_illness: "慢性病", key_holder: "钥匙持有人",
      language: "语言/方言", red: "红色", orange: "橙色", yellow: "黄色", blue: "蓝色", green: "绿色" },
    en: { ack_by: "acknowledge by {t}", mobility: "Mobility", chronic_illness: "Chronic illness",
      key_holder: "Key holder", language: "Language", red: "Red", orange: "Orange", yellow: "Yellow",
      blue: "Blue", green: "Green" },
  },

  w(key) { return (HouseholdCard.words[App.lang] || HouseholdCard.words.zh)[key] || key; },

  incident(id) {
    if (!HouseholdCard.cache.has(id)) {
      HouseholdCard.cache.set(id, App.api(`/incidents/${id}`).then((d) => d.incident || d).catch(() => null));
    }
    return HouseholdCard.cache.get(id);
  },

  node(i, withContacts = true) {
    const el = App.el;
    const h = i.household_card;
    const parts = [];
    if (i.ack_due_ms && i.status === "open") {
      parts.push(el("div", { class: "ack-due" }, HouseholdCard.w("ack_by").replace("{t}", App.time(i.ack_due_ms))));
    }
    if (h) {
      parts.push(el("div", {}, h.risk_tier ? el("span", { class: `tier-badge tier-${h.risk_tier}` }, HouseholdCard.w(h.risk_tier)) : "",
        ` ${h.address || ""}`));
      const facts = Object.entries(h.facts || {}).map(([k, v]) => `${HouseholdCard.w(k)}：${v}`).join("；");
      if (facts) parts.push(el("div", { class: "facts" }, facts));
      if (withContacts) parts.push(el("div", { class: "contacts" }, ...(h.contacts || []).map((c) =>
        el("a", { class: "call", href: `tel:${c.phone}` }, `${c.name}${c.relation ? `（${c.relation}）` : ""} ${c.phone}`))));
    }
    return parts.length ? el("div", { class: "household-card" }, ...parts) : null;
  },

  async attach(li) {
    if (li.querySelector(".household-card") || !li.dataset.id) return;
    const i = await HouseholdCard.incident(li.dataset.id);
    // the worker's card already lists the family to call (worker-card.js): not twice
    const card = i && HouseholdCard.node(i, !li.querySelector(".card-family"));
    if (card && !li.querySelector(".household-card")) li.append(card);
  },

  watch() {
    const list = document.getElementById("my-incidents");
    if (list) {
      const run = () => list.querySelectorAll("li.incident[data-id]").forEach(HouseholdCard.attach);
      new MutationObserver(run).observe(list, { childList: true });
    }
    const title = document.getElementById("detail-title");
    const box = document.getElementById("detail-household");
    if (title && box) {
      new MutationObserver(async () => {
        const m = /^#(\d+)/.exec(title.textContent || "");
        box.replaceChildren();
        if (!m) return;
        const i = await HouseholdCard.incident(m[1]);
        const card = i && HouseholdCard.node(i);
        if (card) box.replaceChildren(card);
      }).observe(title, { childList: true, characterData: true, subtree: true });
    }
  },
};

HouseholdCard.watch();
